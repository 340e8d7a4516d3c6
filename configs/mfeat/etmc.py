"""ETMC (Han et al. 2022): TMC plus the pseudo-view, evidence from the concatenated features, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/etmc.py --workdir runs/mfeat_etmc

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  all six views 0.979, fac alone 0.967; average over the 63 subsets 0.952

As released (``:released``): the KL weight anneals over a fiftieth of the run (10 of 500 epochs),
epochs counted from 0 (``ETMC TPAMI``) as a staircase of epochs (22 steps of batch 64 = the 1,400
training samples), Adam weight decay 1e-5.
"""

import functools

from mmjax.methods import tmc
from mmjax.methods.tmc import EtmcConfig
from mmjax.presets import experiment


EPOCH_STEPS = 22  # ceil(1,400 / 64)


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``, ``released``)."""
    return experiment("mfeat", EtmcConfig(), arg,
                      released=functools.partial(tmc.released, epoch_steps=EPOCH_STEPS))
