"""MMIN (missing modality imagination network) on UCI mfeat, all six views: complete training
data with simulated missing patterns. 300 steps train the full-modality teacher, then 1000 steps
train MMIN, each sample drawn with one of the 62 non-empty, non-full patterns of the six views.

Command:
  mmjax train --config configs/mfeat/mmin.py --workdir runs/mfeat_mmin

Released defaults (scripts/CAP_mmin.sh): CRA widths 256-128-64, 5 blocks, loss weights CE 1,
forward imagination 4, cycle 2; classifier on the CRA latents. --set method.head_input=imagined
classifies the joint representation with only the missing views imagined.

Expected (test accuracy, mean ± std of 3 seeds, experiments/baselines/README.md "MMIN and CRA"):
all six views 0.984 ± 0.001, average over the 63 view subsets 0.961 ± 0.001.

As released (``:released``): each network's gradient clipped to norm 0.5 (teacher, released
UttFusionModel) and 1.0 (MMIN) separately, Adam beta1 0.5 (the MMIN script's default; its
teacher script passes 0.9).
"""

from mmjax.methods import mmin
from mmjax.methods.mmin import MminConfig
from mmjax.presets import experiment, parse_arg

TEACHER_STEPS, MMIN_STEPS = 300, 1000


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 40 + 60 steps,
    ``released``)."""
    args = parse_arg(arg, released=True)
    method = MminConfig(teacher_steps=40 if args.quick else TEACHER_STEPS)
    return experiment("mfeat", method, args, released=mmin.released,
                      steps=TEACHER_STEPS + MMIN_STEPS)
