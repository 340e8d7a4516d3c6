"""MLA (alternating unimodal adaptation, RLS head-gradient projection, entropy fusion) on three views of UCI Multiple Features (fou, kar, mor).

Command:
  mmjax train --config configs/mfeat/mla.py --workdir runs/mfeat_mla

Ablations (Table 3): --set method.head_projection=none (as released), method.fusion=average;
released entropy: method.entropy=per_batch.
As released (``:released``): no head-gradient projection (the released GSPlugin never fires),
fixed fusion weights 0.35/0.25/0.40 (released valid() without --dynamic), SGD weight decay 1e-4.
Encoders: two FC layers (128) + a projection FC to the shared width s = 128 (three FC layers of
width 128, MLA appendix A.3.2); one shared linear head. SGD momentum 0.9 with step decay x0.1
(appendix A.3.1) at lr 1e-2 (1e-3 reached 0.76 average accuracy in 1,000 steps, 1e-2 0.91);
1,000 steps, each a round of one update per modality (the mfeat baselines' 1,000 steps).

Expected (test accuracy, mean ± std of 5 seeds, as rounds; `bash experiments/mla/run.sh
sweep_mfeat`, the sweep of experiments/mla/sweeps/mfeat.txt, see experiments/mla/README.md):
  fou+kar+mor 0.9905 ± 0.0037, fou 0.8375, kar 0.9645, mor 0.7620; average over the 7 subsets
  0.9144 ± 0.0037
"""

import dataclasses

from mmjax.config import OptimConfig
from mmjax.methods import mla
from mmjax.methods.mla import MlaConfig
from mmjax.presets import experiment

VIEWS = ("fou", "kar", "mor")
# MLA's step is a round of M = 3 unimodal updates on one batch: the baselines' 1,000 steps give
# each encoder 1,000 updates, as in every other method. decay_steps counts rounds too.
OPTIM = OptimConfig(name="sgd", lr=1e-2, momentum=0.9, schedule="step", decay_steps=700,
                    decay_rate=0.1)


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``, ``released``)."""
    config = experiment("mfeat", MlaConfig(), arg, optim=OPTIM, released=mla.released)
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, views=VIEWS),
        model=dataclasses.replace(config.model, feature_dim=128))
