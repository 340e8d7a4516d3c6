"""ETMC (Han et al. 2022): TMC plus the pseudo-view, evidence from the concatenated features, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/etmc.py --workdir runs/avmnist_offline_etmc

Expected (test accuracy, mean of 3 seeds): not measured; the 3-seed run (half length, see
experiments/baselines/extra.sh) did not finish on the shared 2-core machine before the deadline.

As released (``:released``): the KL weight anneals over a fiftieth of the run (10 of 500 epochs),
epochs counted from 0 (``ETMC TPAMI``) as a staircase of epochs (55 steps of batch 64 = the 3,500
training samples), Adam weight decay 1e-5.
"""

import functools

from mmjax.methods import tmc
from mmjax.methods.tmc import EtmcConfig
from mmjax.presets import experiment


EPOCH_STEPS = 55  # ceil(3,500 / 64)


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``, ``released``)."""
    return experiment("avmnist_offline", EtmcConfig(), arg,
                      released=functools.partial(tmc.released, epoch_steps=EPOCH_STEPS))
