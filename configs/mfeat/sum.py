"""Sum fusion: each modality's features projected to a common width, masked and summed, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/sum.py --workdir runs/mfeat_sum

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  all six views 0.988, fac alone 0.702; average over the 63 subsets 0.839
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", MethodConfig(name="sum"), arg)
