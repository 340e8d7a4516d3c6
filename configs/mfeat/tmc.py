"""TMC (Han et al. 2021): per-modality Dirichlet evidence fused by the reduced Dempster-Shafer rule; a missing modality's opinion is dropped, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/tmc.py --workdir runs/mfeat_tmc

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  all six views 0.978, fac alone 0.967; average over the 63 subsets 0.960

As released (``:released``): the KL weight anneals over a tenth of the run (50 of 500 epochs),
epochs counted from 1 (``TMC ICLR/train.py``) as a staircase of epochs (22 steps of batch 64 = the
1,400 training samples), Adam weight decay 1e-5.
"""

import functools

from mmjax.methods import tmc
from mmjax.methods.tmc import TmcConfig
from mmjax.presets import experiment


EPOCH_STEPS = 22  # ceil(1,400 / 64)


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``, ``released``)."""
    return experiment("mfeat", TmcConfig(), arg,
                      released=functools.partial(tmc.released, epoch_steps=EPOCH_STEPS))
