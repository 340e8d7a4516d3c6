"""UME-MMA: 600 steps of uni-modal training, then 300 steps of late-fusion fine-tuning with missing-modality augmentation (p = 0.3, lr 1e-4), on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/ume_mma.py --workdir runs/avmnist_offline_ume_mma

Table 4/5 switches: --set method.pretrain=False (Only Missing-Aug), method.augment=False (Only
Pre-Training), method.freeze_encoders=True (Freeze Encs), method.dropout_p=0.1 (Table 5).
Phase 1 has as many steps as the other baselines' whole run (the uni-modal models are trained as
long as the lower bound); the paper does not give phase 2's length.

Expected (test accuracy, mean ± std of 5 seeds, UME-MMA's Table 1 sweep,
experiments/ume_mma/README.md): image alone 92.70 ± 0.16 %, audio alone 94.96 ± 0.27 %, complete
99.24 ± 0.19 %. One seed (seed 0, --set train.num_seeds=1, measured on the 2-core
CPU): image alone 0.929, audio alone 0.945, complete 0.994.
"""

from mmjax.methods.ume_mma import UmeMmaConfig
from mmjax.presets import experiment, parse_arg

PHASE1_STEPS, PHASE2_STEPS = 600, 300


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 60 + 40 steps)."""
    args = parse_arg(arg)
    method = UmeMmaConfig(phase1_steps=60 if args.quick else PHASE1_STEPS)
    return experiment("avmnist_offline", method, args, steps=PHASE1_STEPS + PHASE2_STEPS)
