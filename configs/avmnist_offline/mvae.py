"""MVAE (Wu and Goodman 2018) with SMIL's linear-probe evaluation: 600 steps of sub-sampled ELBO training (product-of-experts posterior), then 300 steps of a linear classifier on the frozen PoE mean, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/mvae.py --workdir runs/avmnist_offline_mvae

Phase 1 has as many steps as the other baselines' whole run.

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  image+audio 0.831, image 0.265, audio 0.783; average 0.626
Measured with --set method.vae_steps=300 --set train.steps=450 (half this config's run)
to fit the shared machine.
"""

from mmjax.methods.mvae import MvaeConfig
from mmjax.presets import experiment, parse_arg

VAE_STEPS, PROBE_STEPS = 600, 300


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 60 + 40 steps)."""
    args = parse_arg(arg)
    return experiment("avmnist_offline", MvaeConfig(vae_steps=60 if args.quick else VAE_STEPS),
                      args, steps=VAE_STEPS + PROBE_STEPS)
