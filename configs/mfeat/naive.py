"""Naive baseline (UME-MMA Table 1): late fusion, the mean of all uni-modal outputs (missing ones fed zeros), trained end to end from scratch, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/naive.py --workdir runs/mfeat_naive

Expected (test accuracy, mean of 3 seeds): not yet measured (experiments/ume_mma/run.sh fills
experiments/ume_mma/results.md).
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", MethodConfig(name="naive"), arg)
