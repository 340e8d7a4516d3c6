"""Multi-task training: concat fusion plus a linear head per modality, losses summed, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/multi_task.py --workdir runs/mfeat_multi_task

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  all six views 0.988, fac alone 0.764; average over the 63 subsets 0.883
"""

from mmjax.methods.baselines import MultiTaskConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", MultiTaskConfig(unimodal_weight=1.0), arg)
