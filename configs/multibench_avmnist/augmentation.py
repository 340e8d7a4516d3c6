"""Concat fusion trained with modality dropout (p = 0.3 per modality, never all; UME-MMA),
on MultiBench's AV-MNIST.

MultiBench's AV-MNIST: 55,000 / 5,000 / 10,000 pairs; prepare it once with
  mmjax data prepare multibench_avmnist --from FOLDER

Command:
  mmjax train --config configs/multibench_avmnist/augmentation.py \\
      --workdir runs/multibench_avmnist_augmentation

Expected: not measured here (the dataset cannot be downloaded on our machines). The config and
its models are checked against the dataset's spec, and its loader against a fixture in the
published layout, in tests/test_data_papers.py.
"""

from mmjax.methods.baselines import AugmentationConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("multibench_avmnist", AugmentationConfig(dropout_p=0.3), arg)
