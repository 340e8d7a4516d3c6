"""OGM-GE (on-the-fly gradient modulation + Gaussian enhancement, Peng et al. 2022) on a linear concat head, on AV-MNIST-offline (image PCA 25 % energy, audio SNR -5..15 dB).

Command:
  mmjax train --config configs/avmnist_offline/ogm_ge.py --workdir runs/avmnist_offline_ogm_ge

The same encoders (+ projection to s = 128), data and optimiser (SGD momentum 0.9, step decay) as
configs/avmnist_offline/mla.py, so the comparison of MLA's Tables 1-2 holds the backbone fixed.
--set method.ge=False gives plain OGM; method.alpha sets eq. 10's alpha.
As released (``:released``): only the encoders' convolution kernels are modulated, the window is
epochs 0 to half the run's epochs, closed (an epoch = 55 steps of batch 64 = the 3,500 training
samples), SGD weight decay 1e-4.

Expected (test accuracy, mean of 3 seeds): see experiments/mla/README.md.
"""

import dataclasses
import functools

from mmjax.config import OptimConfig
from mmjax.methods import ogm_ge
from mmjax.methods.ogm_ge import OgmGeConfig
from mmjax.presets import experiment

OPTIM = OptimConfig(name="sgd", lr=1e-2, momentum=0.9, schedule="step", decay_steps=450,
                    decay_rate=0.1)


# Steps per epoch of the released window: ceil(3,500 / 64).
EPOCH_STEPS = 55


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``, ``released``)."""
    config = experiment("avmnist_offline", OgmGeConfig(), arg, optim=OPTIM,
                        released=functools.partial(ogm_ge.released, epoch_steps=EPOCH_STEPS))
    return dataclasses.replace(config, data=dataclasses.replace(
        config.data, image_pca_energy=0.25, snr_db=(-5.0, 15.0)))
