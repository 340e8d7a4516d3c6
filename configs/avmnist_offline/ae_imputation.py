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

from mmjax.config import MissingConfig
from mmjax.methods.ae_imputation import AeImputationConfig
from mmjax.presets import experiment, parse_arg

AE_STEPS, FUSION_STEPS = 200, 600


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 40 + 60 steps)."""
    args = parse_arg(arg)
    method = AeImputationConfig(ae_steps=40 if args.quick else AE_STEPS)
    return experiment("avmnist_offline", method, args, steps=AE_STEPS + FUSION_STEPS,
                      missing=MissingConfig(protocol="paired", paired_fraction=0.2))
