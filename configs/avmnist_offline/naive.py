"""Naive baseline (UME-MMA Table 1): late fusion, the mean of all uni-modal outputs (missing ones fed zeros), trained end to end from scratch, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/naive.py --workdir runs/avmnist_offline_naive

Expected (test accuracy, mean ± std of 5 seeds at --set train.steps=900, UME-MMA's Table 1 sweep,
experiments/ume_mma/README.md): image alone 80.76 ± 3.90 %, audio alone 81.64 ± 5.94 %, complete
98.00 ± 0.39 %. One seed (seed 0, --set train.num_seeds=1, measured on the 2-core
CPU): image alone 0.740, audio alone 0.837, complete 0.981.
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", MethodConfig(name="naive"), arg)
