"""MVAE (Wu and Goodman 2018) with SMIL's linear-probe evaluation: 600 steps of sub-sampled ELBO training (product-of-experts posterior), then 300 steps of a linear classifier on the frozen PoE mean, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/mvae.py --workdir runs/avmnist_offline_mvae

Phase 1 has as many steps as the other baselines' whole run.

Expected (test accuracy, mean of 3 seeds): not measured; the 3-seed run (half length, see
experiments/baselines/extra.sh) did not finish on the shared 2-core machine before the deadline.
"""

import dataclasses

from mmjax.methods.mvae import MvaeConfig

from configs.common import experiment

VAE_STEPS, PROBE_STEPS = 600, 300


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``: 60 + 40 steps)."""
    config = experiment("avmnist_offline", MvaeConfig(vae_steps=VAE_STEPS), arg)
    if arg == "quick":
        return dataclasses.replace(config, method=MvaeConfig(vae_steps=60))
    train = dataclasses.replace(config.train, steps=VAE_STEPS + PROBE_STEPS)
    return dataclasses.replace(config, train=train)
