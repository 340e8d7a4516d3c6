"""UME-MMA: 1000 steps of uni-modal training, then 500 steps of late-fusion fine-tuning with missing-modality augmentation (p = 0.3, lr 1e-4), on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/ume_mma.py --workdir runs/mfeat_ume_mma

Table 4/5 switches: --set method.pretrain=False (Only Missing-Aug), method.augment=False (Only
Pre-Training), method.freeze_encoders=True (Freeze Encs), method.dropout_p=0.1 (Table 5).
Phase 1 has as many steps as the other baselines' whole run (the uni-modal models are trained as
long as the lower bound); the paper does not give phase 2's length.

Expected on the views fac and kar (--set data.views=fac,kar; experiments/ume_mma, 5 seeds):
test accuracy fac+kar 97.85 ± 0.14, fac alone 97.35 ± 0.14, kar alone 96.60 ± 0.55 (%).
"""

from mmjax.methods.ume_mma import UmeMmaConfig
from mmjax.presets import experiment, parse_arg

PHASE1_STEPS, PHASE2_STEPS = 1000, 500


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 60 + 40 steps)."""
    args = parse_arg(arg)
    method = UmeMmaConfig(phase1_steps=60 if args.quick else PHASE1_STEPS)
    return experiment("mfeat", method, args, steps=PHASE1_STEPS + PHASE2_STEPS)
