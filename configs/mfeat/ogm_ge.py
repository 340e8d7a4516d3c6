"""OGM-GE (on-the-fly gradient modulation + Gaussian enhancement, Peng et al. 2022) on a linear concat head, on three views of UCI Multiple Features (fou, kar, mor).

Command:
  mmjax train --config configs/mfeat/ogm_ge.py --workdir runs/mfeat_ogm_ge

The same encoders (+ projection to s = 128), data and optimiser (SGD momentum 0.9, step decay) as
configs/mfeat/mla.py, so the comparison of MLA's Tables 1-2 holds the backbone fixed.
--set method.ge=False gives plain OGM; method.alpha sets eq. 10's alpha.
As released (``:released``): only the encoders' convolution kernels are modulated, the window is
epochs 0 to half the run's epochs, closed (an epoch = 22 steps of batch 64 = the 1,400 training
samples), SGD weight decay 1e-4.
On mfeat's MLP encoders the released rule modulates nothing (it touches 4-d kernels only), so
``:released`` trains as plain concat fusion with SGD weight decay.

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU by
experiments/mla/run.sh, see experiments/mla/README.md):
  fou+kar+mor 0.986, fou 0.435, kar 0.547, mor 0.344; average over the 7 subsets 0.662
"""

import dataclasses
import functools

from mmjax.config import OptimConfig
from mmjax.methods import ogm_ge
from mmjax.methods.ogm_ge import OgmGeConfig
from mmjax.presets import experiment

OPTIM = OptimConfig(name="sgd", lr=1e-2, momentum=0.9, schedule="step", decay_steps=700,
                    decay_rate=0.1)


# Steps per epoch of the released window: ceil(1,400 / 64).
EPOCH_STEPS = 22


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``, ``released``)."""
    config = experiment("mfeat", OgmGeConfig(), arg, optim=OPTIM,
                        released=functools.partial(ogm_ge.released, epoch_steps=EPOCH_STEPS))
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, views=("fou", "kar", "mor")),
        model=dataclasses.replace(config.model, feature_dim=128))
