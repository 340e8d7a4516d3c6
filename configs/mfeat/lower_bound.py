"""Lower bound: one modality's encoder and head (fac only), on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/lower_bound.py --workdir runs/mfeat_lower_bound

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  all six views 0.974, fac alone 0.974; average over the 63 subsets 0.544
"""

from mmjax.methods.baselines import LowerBoundConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", LowerBoundConfig(modality="fac"), arg)
