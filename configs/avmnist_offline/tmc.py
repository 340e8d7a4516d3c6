"""TMC (Han et al. 2021): per-modality Dirichlet evidence fused by the reduced Dempster-Shafer rule; a missing modality's opinion is dropped, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/tmc.py --workdir runs/avmnist_offline_tmc

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  image+audio 0.982, image 0.821, audio 0.947; average 0.917
Measured with --set train.steps=300 (half this config's run) to fit the shared machine.

As released (``:released``): the KL weight anneals over a tenth of the run (50 of 500 epochs),
epochs counted from 1 (``TMC ICLR/train.py``) as a staircase of epochs (55 steps of batch 64 = the
3,500 training samples), Adam weight decay 1e-5.
"""

import functools

from mmjax.methods import tmc
from mmjax.methods.tmc import TmcConfig
from mmjax.presets import experiment


EPOCH_STEPS = 55  # ceil(3,500 / 64)


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``, ``released``)."""
    return experiment("avmnist_offline", TmcConfig(), arg,
                      released=functools.partial(tmc.released, epoch_steps=EPOCH_STEPS))
