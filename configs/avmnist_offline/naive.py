"""Naive baseline (UME-MMA Table 1): late fusion, the mean of all uni-modal outputs (missing ones fed zeros), trained end to end from scratch, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/naive.py --workdir runs/avmnist_offline_naive

Expected (test accuracy, mean of 3 seeds): not yet measured (experiments/ume_mma/run.sh fills
experiments/ume_mma/results.md). One seed (seed 0, --set train.num_seeds=1, measured on the 2-core
CPU): image alone 0.740, audio alone 0.837, complete 0.981.
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", MethodConfig(name="naive"), arg)
