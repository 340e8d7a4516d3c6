"""SMIL's AE baseline on MM-IMDb (papers/004, Table 2), 100% image + 20% text: an MLP autoencoder
image -> text features (4096 -> 256 -> 256 -> 300) trained on the paired movies for 1,000 steps,
then 10,000 steps of concat fusion (the upper bound's network) on the training set with every
missing text input replaced by its reconstruction.

Command:
  mmjax train --config configs/mmimdb/ae_imputation.py --workdir runs/mmimdb_ae
  (eta: --set missing.paired_fraction=0.1)

Data, encoders, optimiser and batch are configs/mmimdb/smil.py's (``paper_experiment``); the
fusion model trains on the paper's loss, with positive labels weighted 2.0
(``method.pos_weight``), as SMIL's.

Expected: not measured (MM-IMDb is not on our machines; no result was produced with this config).
"""

import pathlib

from mmjax.config import import_file
from mmjax.methods.ae_imputation import AeImputationConfig
from mmjax.presets import parse_arg

paper_experiment = import_file(pathlib.Path(__file__).with_name("smil.py")).paper_experiment
AE_STEPS, FUSION_STEPS = 1000, 10000


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets (``quick``: 40 autoencoder + 60 fusion
    steps, one seed) or nothing."""
    args = parse_arg(arg)
    ae_steps = 40 if args.quick else AE_STEPS
    return paper_experiment(AeImputationConfig(ae_steps=ae_steps, pos_weight=2.0), args,
                            AE_STEPS + FUSION_STEPS)
