"""Missing detection (UME-MMA Table 1): uni-modal heads with an extra "missing" class, trained with modality dropout (p = 0.3); heads predicting "missing" are left out of the average, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/missing_detection.py --workdir runs/avmnist_offline_missing_detection

Expected (test accuracy, mean ± std of 5 seeds at --set train.steps=900, UME-MMA's Table 1 sweep,
experiments/ume_mma/README.md): image alone 93.02 ± 0.45 %, audio alone 94.80 ± 0.51 %, complete
99.22 ± 0.13 %.
"""

from mmjax.methods.missing_detection import MissingDetectionConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", MissingDetectionConfig(dropout_p=0.3), arg)
