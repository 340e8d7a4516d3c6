"""SMIL's Upper-Bound on MM-IMDb (papers/004, Table 2): concat fusion of both modalities (one FC
layer each, 4096 -> 2048 and 300 -> 2048, then 4096 -> 512 -> 23), trained on 100% image + 100%
text.

Command:
  mmjax train --config configs/mmimdb/upper_bound.py --workdir runs/mmimdb_upper_bound

Data, encoders, optimiser and batch are configs/mmimdb/smil.py's (``paper_experiment``); 10,000
steps, as SMIL's meta-iterations; the paper's loss, with positive labels weighted 2.0
(``method.pos_weight``), as SMIL's.

Expected: not measured (MM-IMDb is not on our machines; no result was produced with this config).
"""

import pathlib

from mmjax.config import import_file
from mmjax.methods.baselines import UpperBoundConfig

paper_experiment = import_file(pathlib.Path(__file__).with_name("smil.py")).paper_experiment


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets (``quick``: 100 steps, one seed) or
    nothing."""
    return paper_experiment(UpperBoundConfig(pos_weight=2.0), arg, 10000, paired=False)
