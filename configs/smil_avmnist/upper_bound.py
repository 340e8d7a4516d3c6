"""Upper bound (SMIL's Figure 4): concat fusion trained on 100 % of both modalities, i.e. every
one of SMIL's avMNIST training images paired with sound (data.per_class_num=105: 1,050 pairs),
at SMIL's budget (configs/smil_avmnist/smil.py: 15,000 steps of batch 64).

Command:
  mmjax train --config configs/smil_avmnist/upper_bound.py --workdir runs/smil_avmnist_upper_bound

Expected: not measured here (the dataset cannot be downloaded on our machines); the config is
checked against the dataset's spec and trained on a fixture in tests/test_data_papers.py.
SMIL's issue #17 reports ~96 % for the released upper bound, >98 % with pretrained encoders.
"""

from mmjax.config import DataConfig
from mmjax.methods.baselines import UpperBoundConfig
from mmjax.presets import experiment

STEPS = 15_000  # configs/smil_avmnist/smil.py's budget


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("smil_avmnist", UpperBoundConfig(), arg, steps=STEPS,
                      data=DataConfig(name="smil_avmnist", per_class_num=105))
