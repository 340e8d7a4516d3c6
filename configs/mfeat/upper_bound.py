"""Upper bound: concat fusion trained on complete samples only, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/upper_bound.py --workdir runs/mfeat_upper_bound

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  all six views 0.985, fac alone 0.706; average over the 63 subsets 0.840
"""

from mmjax.methods.baselines import UpperBoundConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", UpperBoundConfig(), arg)
