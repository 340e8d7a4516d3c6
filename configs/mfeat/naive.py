"""Naive baseline (UME-MMA Table 1): late fusion, the mean of all uni-modal outputs (missing ones fed zeros), trained end to end from scratch, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/naive.py --workdir runs/mfeat_naive

Expected (test accuracy, mean ± std of 5 seeds with --set data.views=fac,kar, UME-MMA's Table 1
sweep, experiments/ume_mma/README.md): fac alone 94.00 ± 0.85 %, kar alone 48.95 ± 15.84 %, both
97.35 ± 0.42 %.
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", MethodConfig(name="naive"), arg)
