"""SMIL on AV-MNIST-offline with 100% image + 20% audio: 200 steps of unimodal pretraining, 100 of
full-modality training on the paired subset, then 300 meta-training steps (batch 64, Adam 1e-3,
inner SGD lr 1e-3, one inner step, second order).

Command:
  mmjax train --config configs/avmnist_offline/smil.py --workdir runs/avmnist_offline_smil
  (eta: --set missing.paired_fraction=0.1; every released-code switch: --config
  configs/avmnist_offline/smil.py:released, see smil.released)

The paper trains 15,000 meta-iterations (the released script 8,000 after two pretraining stages);
on the 2-core CPU we train 600 steps in all, as long as the other AV-MNIST-offline baselines.
The paired memory holds every one of the 3,500 training pairs (memory_size 3584).

Expected (test accuracy, mean of 3 seeds, experiments/smil/README.md): image+audio 0.980, image
alone (reconstruction on) 0.931 (eta 10%: 0.975, 0.928). The step loop of that run: --set
train.steps_per_call=2 (experiments/smil/run.sh; the arithmetic is the same).

Longer: --set train.steps=2400 (2,100 meta-steps; `STEPS=2400 bash experiments/smil/run.sh
avmnist_offline main`, 71 min on the 2-core CPU beside a second run): image+audio 0.980, image
alone 0.959 (eta 10%: 0.977, 0.962), above the 2,400-step lower bound (0.955) with the image alone.
"""

from mmjax.config import MissingConfig
from mmjax.methods.smil import SmilConfig, released
from mmjax.presets import experiment, parse_arg

PHASE1_STEPS, PHASE2_STEPS, META_STEPS = 200, 100, 300


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets (``quick``: 40 + 20 + 40 steps;
    ``released``: mmjax.methods.smil.released)."""
    args = parse_arg(arg, released=True)
    method = SmilConfig(phase1_steps=40 if args.quick else PHASE1_STEPS,
                        phase2_steps=20 if args.quick else PHASE2_STEPS, memory_size=3584)
    return experiment("avmnist_offline", method, args, released=released,
                      steps=PHASE1_STEPS + PHASE2_STEPS + META_STEPS,
                      missing=MissingConfig(protocol="paired", paired_fraction=0.2))
