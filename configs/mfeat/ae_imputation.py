"""Autoencoder imputation (SMIL's AE baseline) on UCI mfeat, fou -> kar, 100% fou + 20% kar:
300 autoencoder steps, then 1000 steps of concat fusion on the imputed training set.

Command:
  mmjax train --config configs/mfeat/ae_imputation.py --workdir runs/mfeat_ae

Expected (test accuracy, mean of 3 seeds at these 1,300 steps, measured in November 2026):
eta 20%: fou+kar 0.923, fou alone (kar imputed) 0.824; eta 10%:
0.886, 0.828. Its 5-seed sweep (experiments/smil/sweeps/mfeat.txt) trains it 300 + 700 steps,
SMIL's budget: eta 20%: 0.925, 0.829; eta 10%: 0.893, 0.831.
"""

from mmjax.config import DataConfig, MissingConfig
from mmjax.methods.ae_imputation import AeImputationConfig
from mmjax.presets import experiment, parse_arg

AE_STEPS, FUSION_STEPS = 300, 1000


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 40 + 60 steps)."""
    args = parse_arg(arg)
    return experiment("mfeat", AeImputationConfig(ae_steps=40 if args.quick else AE_STEPS), args,
                      steps=AE_STEPS + FUSION_STEPS,
                      data=DataConfig(name="mfeat", views=("fou", "kar")),
                      missing=MissingConfig(protocol="paired", paired_fraction=0.2))
