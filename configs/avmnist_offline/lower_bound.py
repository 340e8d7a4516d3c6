"""Lower bound: one modality's encoder and head (image only), on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/lower_bound.py --workdir runs/avmnist_offline_lower_bound

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  image+audio 0.936, image 0.936, audio 0.100; average 0.657
  With --set method.modality=audio: audio 0.954 (image 0.100); average 0.669
"""

from mmjax.methods.baselines import LowerBoundConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", LowerBoundConfig(modality="image"), arg)
