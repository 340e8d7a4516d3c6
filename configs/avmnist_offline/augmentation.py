"""Concat fusion trained with modality dropout (p = 0.3 per modality, never all; UME-MMA's augmentation), on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/augmentation.py --workdir runs/avmnist_offline_augmentation

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  image+audio 0.992, image 0.927, audio 0.933; average 0.951
"""

from mmjax.methods.baselines import AugmentationConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", AugmentationConfig(dropout_p=0.3), arg)
