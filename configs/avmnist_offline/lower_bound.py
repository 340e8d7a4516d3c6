"""Lower bound: one modality's encoder and head (image only), on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/lower_bound.py --workdir runs/avmnist_offline_lower_bound

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  @@EXPECTED@@
"""

from mmjax.methods.baselines import LowerBoundConfig

from configs.common import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``)."""
    return experiment("avmnist_offline", LowerBoundConfig(modality="image"), arg)
