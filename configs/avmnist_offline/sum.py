"""Sum fusion: each modality's features projected to a common width, masked and summed, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/sum.py --workdir runs/avmnist_offline_sum

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  image+audio 0.986, image 0.676, audio 0.828; average 0.830
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", MethodConfig(name="sum"), arg)
