"""MMVAE (Shi et al. 2019) with SMIL's linear-probe evaluation: 1000 steps of the stratified importance-weighted bound (mixture-of-experts posterior, DReG), then 500 steps of a linear classifier on the frozen mixture mean, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/mmvae.py --workdir runs/mfeat_mmvae

Phase 1 has as many steps as the other baselines' whole run. K = 10 importance samples per
stratum: with six strata that is the 60 samples per datum of the paper's MNIST-SVHN runs (two
strata x K = 30); K = 30 here runs at 0.28 steps/s for 5 seeds on the shared 2-core CPU.

Expected (test accuracy, mean of 5 seeds; the t1_mfeat sweep of experiments/raml, measured on
the shared 2-core CPU):
  all six views 0.979, fac alone 0.934, mor alone 0.765; average over the 63 subsets 0.950
The config runs 3 seeds (mmjax.presets); the sweep line adds --seeds 5.
"""

from mmjax.methods.mmvae import MmvaeConfig
from mmjax.presets import experiment, parse_arg

VAE_STEPS, PROBE_STEPS = 1000, 500


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 60 + 40 steps)."""
    args = parse_arg(arg)
    return experiment("mfeat", MmvaeConfig(vae_steps=60 if args.quick else VAE_STEPS,
                                           num_particles=10), args,
                      steps=VAE_STEPS + PROBE_STEPS)
