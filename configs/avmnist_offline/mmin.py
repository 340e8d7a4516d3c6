"""MMIN (missing modality imagination network) on AV-MNIST-offline: complete training data with
simulated missing patterns. 200 steps train the full-modality teacher (LeNet-5 + sound CNN), then
600 steps train MMIN, each sample drawn with image only or audio only.

Command:
  mmjax train --config configs/avmnist_offline/mmin.py --workdir runs/avmnist_offline_mmin

Released defaults (scripts/CAP_mmin.sh): CRA widths 256-128-64, 5 blocks, loss weights CE 1,
forward imagination 4, cycle 2; classifier on the CRA latents. --set method.head_input=imagined
classifies the joint representation with only the missing modality imagined.

Expected (test accuracy, mean ± std of 3 seeds, experiments/baselines/README.md "MMIN and CRA";
measured with --set train.steps_per_call=2, 55 min on the shared 2-core CPU): image+audio
0.993 ± 0.002, image 0.952 ± 0.006, audio 0.937 ± 0.006, average 0.961 ± 0.001.

As released (``:released``): each network's gradient clipped to norm 0.5 (teacher, released
UttFusionModel) and 1.0 (MMIN) separately, Adam beta1 0.5 (the MMIN script's default; its
teacher script passes 0.9).
"""

from mmjax.methods import mmin
from mmjax.methods.mmin import MminConfig
from mmjax.presets import experiment, parse_arg

TEACHER_STEPS, MMIN_STEPS = 200, 600


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 40 + 60 steps,
    ``released``)."""
    args = parse_arg(arg, released=True)
    method = MminConfig(teacher_steps=40 if args.quick else TEACHER_STEPS)
    return experiment("avmnist_offline", method, args, released=mmin.released,
                      steps=TEACHER_STEPS + MMIN_STEPS)
