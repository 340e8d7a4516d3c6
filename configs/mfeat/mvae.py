"""MVAE (Wu and Goodman 2018) with SMIL's linear-probe evaluation: 1000 steps of sub-sampled ELBO training (product-of-experts posterior), then 500 steps of a linear classifier on the frozen PoE mean, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/mvae.py --workdir runs/mfeat_mvae

Phase 1 has as many steps as the other baselines' whole run.

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  all six views 0.969, fac alone 0.916; average over the 63 subsets 0.916
"""

from mmjax.methods.mvae import MvaeConfig
from mmjax.presets import experiment, parse_arg

VAE_STEPS, PROBE_STEPS = 1000, 500


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 60 + 40 steps)."""
    args = parse_arg(arg)
    return experiment("mfeat", MvaeConfig(vae_steps=60 if args.quick else VAE_STEPS), args,
                      steps=VAE_STEPS + PROBE_STEPS)
