"""MLA (alternating unimodal adaptation, RLS head-gradient projection, entropy fusion) on three views of UCI Multiple Features (fou, kar, mor).

Command:
  mmjax train --config configs/mfeat/mla.py --workdir runs/mfeat_mla

Ablations (Table 3): --set method.head_projection=none (as released), method.fusion=average;
released entropy: method.entropy=per_batch.
Encoders: two FC layers (128) + a projection FC to the shared width s = 128 (three FC layers of
width 128, MLA appendix A.3.2); one shared linear head. SGD momentum 0.9 with step decay x0.1
(appendix A.3.1); lr and schedule length: see OPTIM below (measured, experiments/mla/README.md).

Expected (test accuracy, mean of 3 seeds): see experiments/mla/README.md (filled by
experiments/mla/run.sh).
"""

import dataclasses

from mmjax.config import OptimConfig
from mmjax.methods.mla import MlaConfig

from configs.common import experiment

VIEWS = ("fou", "kar", "mor")
OPTIM = OptimConfig(name="sgd", lr=1e-2, momentum=0.9, schedule="step", decay_steps=700,
                    decay_rate=0.1)


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``)."""
    config = experiment("mfeat", MlaConfig(), arg, optim=OPTIM)
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, views=VIEWS),
        model=dataclasses.replace(config.model, feature_dim=128))
