"""Late fusion: the average of unimodal logits over the present modalities, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/late.py --workdir runs/avmnist_offline_late

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  image+audio 0.977, image 0.797, audio 0.833; average 0.869
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", MethodConfig(name="late"), arg)
