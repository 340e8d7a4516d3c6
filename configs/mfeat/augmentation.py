"""Concat fusion trained with modality dropout (p = 0.3 per modality, never all; UME-MMA's augmentation), on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/augmentation.py --workdir runs/mfeat_augmentation

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  all six views 0.983, fac alone 0.930; average over the 63 subsets 0.931
"""

from mmjax.methods.baselines import AugmentationConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", AugmentationConfig(dropout_p=0.3), arg)
