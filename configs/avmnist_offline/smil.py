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

SMIL's own data regime (variant ``regime``, experiments/smil/README.md "Figure 4 in SMIL's own
data regime"): 105 training images per digit (1,050), 45 validation and 45 test pairs per digit
(data.regime=smil), 200 + 100 pretraining steps then 900 meta-steps (1,200 in all, the budget of
that table's lines), memory_size 256 (every one of the at most 210 pairs), 2 steps per call:
  mmjax train --config configs/avmnist_offline/smil.py:regime --workdir runs/smil_regime \
    --set train.num_seeds=5
Expected (5 seeds, eta 20%): image+audio 0.970, image alone 0.943 (eta 10%: 0.964, 0.942; eta 5%:
0.956, 0.944).

Longer: --set train.steps=2400 (2,100 meta-steps; `STEPS=2400 bash experiments/smil/run.sh
avmnist_offline main`, 71 min on the 2-core CPU beside a second run): image+audio 0.980, image
alone 0.959 (eta 10%: 0.977, 0.962), above the 2,400-step lower bound (0.955) with the image alone.
"""

import dataclasses

from mmjax.config import MissingConfig
from mmjax.methods.smil import SmilConfig, released
from mmjax.presets import experiment, parse_arg

PHASE1_STEPS, PHASE2_STEPS, META_STEPS = 200, 100, 300
REGIME_META_STEPS = 900  # the regime variant: 1,200 steps in all


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets (``quick``: 40 + 20 + 40 steps;
    ``released``: mmjax.methods.smil.released; ``regime``: SMIL's avMNIST sizes)."""
    args = parse_arg(arg, released=True, regime=False)
    method = SmilConfig(phase1_steps=40 if args.quick else PHASE1_STEPS,
                        phase2_steps=20 if args.quick else PHASE2_STEPS,
                        memory_size=256 if args.regime else 3584)
    config = experiment("avmnist_offline", method, args, released=released,
                        steps=PHASE1_STEPS + PHASE2_STEPS
                        + (REGIME_META_STEPS if args.regime else META_STEPS),
                        missing=MissingConfig(protocol="paired", paired_fraction=0.2))
    if not args.regime:
        return config
    # SMIL's unrolled second-order step compiles slowly on 2 cores with 10 steps per call.
    return dataclasses.replace(
        config, data=dataclasses.replace(config.data, regime="smil"),
        train=dataclasses.replace(config.train, steps_per_call=2))
