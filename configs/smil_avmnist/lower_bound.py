"""Lower bound (SMIL's Figure 4): the image encoder and head alone, on all 1,050 training images
of SMIL's avMNIST, at SMIL's budget (configs/smil_avmnist/smil.py: 15,000 steps of batch 64).

Command:
  mmjax train --config configs/smil_avmnist/lower_bound.py --workdir runs/smil_avmnist_lower_bound

Expected: not measured here (the dataset cannot be downloaded on our machines); the config is
checked against the dataset's spec and trained on a fixture in tests/test_data_papers.py.
"""

from mmjax.methods.baselines import LowerBoundConfig
from mmjax.presets import experiment

STEPS = 15_000  # configs/smil_avmnist/smil.py's budget


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("smil_avmnist", LowerBoundConfig(modality="image"), arg, steps=STEPS)
