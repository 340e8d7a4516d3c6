"""Autoencoder imputation (SMIL's AE baseline) on SMIL's avMNIST: an autoencoder image -> sound
trained on the 210 paired images (data.per_class_num=21), then concat fusion on the training set
with every missing sound replaced by its reconstruction; SMIL's budget in all
(configs/smil_avmnist/smil.py: 15,000 steps of batch 64, the first 200 the autoencoder's).

Command:
  mmjax train --config configs/smil_avmnist/ae_imputation.py --workdir runs/smil_avmnist_ae

Expected: not measured here (the dataset cannot be downloaded on our machines); the config is
checked against the dataset's spec and trained on a fixture in tests/test_data_papers.py.
"""

from mmjax.methods.ae_imputation import AeImputationConfig
from mmjax.presets import experiment, parse_arg

STEPS, AE_STEPS = 15_000, 200  # configs/smil_avmnist/smil.py's budget; the autoencoder phase


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 40 autoencoder steps)."""
    args = parse_arg(arg)
    method = AeImputationConfig(ae_steps=40 if args.quick else AE_STEPS)
    return experiment("smil_avmnist", method, args, steps=STEPS)
