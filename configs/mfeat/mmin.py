"""MMIN (missing modality imagination network) on UCI mfeat, all six views, complete training
data with simulated missing patterns: 300 steps training the full-modality teacher, then 1000
steps of MMIN (every non-empty, non-full pattern of the six views drawn per sample).

Command:
  mmjax train --config configs/mfeat/mmin.py --workdir runs/mfeat_mmin

Released defaults (scripts/CAP_mmin.sh): CRA widths 256-128-64, 5 blocks, loss weights CE 1,
forward imagination 4, cycle 2; classifier on the CRA latents. --set method.head_input=imagined
classifies the joint representation with only the missing views imagined.

Expected (test accuracy, mean ± std of 3 seeds, measured by the experiments/baselines/README.md
command): see MEASURED below.
"""

import dataclasses

from mmjax.methods.mmin import MminConfig

from configs.common import experiment

TEACHER_STEPS, MMIN_STEPS = 300, 1000


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``: 40 + 60 steps)."""
    quick = arg == "quick"
    config = experiment("mfeat", MminConfig(teacher_steps=40 if quick else TEACHER_STEPS), arg)
    if quick:
        return config
    train = dataclasses.replace(config.train, steps=TEACHER_STEPS + MMIN_STEPS)
    return dataclasses.replace(config, train=train)
