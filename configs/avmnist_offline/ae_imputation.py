"""Autoencoder imputation (SMIL's AE baseline) on AV-MNIST-offline, 100% image + 20% audio:
200 steps training an MLP autoencoder image -> MFCC on the paired samples, then 600 steps of
concat fusion (LeNet-5 + sound CNN) on the imputed training set.

Command:
  mmjax train --config configs/avmnist_offline/ae_imputation.py --workdir runs/avmnist_offline_ae
  (eta: --set missing.paired_fraction=0.1)

Expected (test accuracy, mean of 3 seeds, experiments/smil/README.md): image alone 0.934,
image+audio 0.959 (eta 10%: 0.937, 0.931). The step loop of that run: --set train.steps_per_call=2
(experiments/smil/run.sh; the arithmetic is the same).
"""

import dataclasses

from mmjax.config import MissingConfig
from mmjax.methods.ae_imputation import AeImputationConfig

from configs.common import experiment

AE_STEPS, FUSION_STEPS = 200, 600


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``: 40 + 60 steps)."""
    quick = arg == "quick"
    config = experiment("avmnist_offline", AeImputationConfig(ae_steps=40 if quick else AE_STEPS),
                        arg, missing=MissingConfig(protocol="paired", paired_fraction=0.2))
    if quick:
        return config
    train = dataclasses.replace(config.train, steps=AE_STEPS + FUSION_STEPS)
    return dataclasses.replace(config, train=train)
