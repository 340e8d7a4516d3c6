"""OGM-GE (on-the-fly gradient modulation + Gaussian enhancement, Peng et al. 2022) on a linear concat head, on three views of UCI Multiple Features (fou, kar, mor).

Command:
  mmjax train --config configs/mfeat/ogm_ge.py --workdir runs/mfeat_ogm_ge

The same encoders (+ projection to s = 128), data and optimiser (SGD momentum 0.9, step decay) as
configs/mfeat/mla.py, so the comparison of MLA's Tables 1-2 holds the backbone fixed.
--set method.ge=False gives plain OGM; method.alpha sets eq. 10's alpha.

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU by
experiments/mla/run.sh, see experiments/mla/README.md):
  fou+kar+mor 0.986, fou 0.435, kar 0.547, mor 0.344; average over the 7 subsets 0.662
"""

import dataclasses

from mmjax.config import OptimConfig
from mmjax.methods.ogm_ge import OgmGeConfig

from configs.common import experiment

OPTIM = OptimConfig(name="sgd", lr=1e-2, momentum=0.9, schedule="step", decay_steps=700,
                    decay_rate=0.1)


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``)."""
    config = experiment("mfeat", OgmGeConfig(), arg, optim=OPTIM)
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, views=("fou", "kar", "mor")),
        model=dataclasses.replace(config.model, feature_dim=128))
