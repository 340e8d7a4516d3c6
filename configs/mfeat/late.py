"""Late fusion: the average of unimodal logits over the present modalities, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/late.py --workdir runs/mfeat_late

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  all six views 0.983, fac alone 0.784; average over the 63 subsets 0.873
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", MethodConfig(name="late"), arg)
