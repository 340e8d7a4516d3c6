"""Missing detection (UME-MMA Table 1): uni-modal heads with an extra "missing" class, trained with modality dropout (p = 0.3); heads predicting "missing" are left out of the average, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/missing_detection.py --workdir runs/mfeat_missing_detection

Expected (test accuracy, mean ± std of 5 seeds with --set data.views=fac,kar, UME-MMA's Table 1
sweep, experiments/ume_mma/README.md): fac alone 97.30 ± 0.37 %, kar alone 96.60 ± 0.52 %, both
97.70 ± 0.37 %.
"""

from mmjax.methods.missing_detection import MissingDetectionConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", MissingDetectionConfig(dropout_p=0.3), arg)
