"""SMIL on UCI mfeat with two views (fou = modality 1, kar = modality 2), 100% fou + 20% kar:
300 steps of unimodal pretraining, 200 of full-modality training, 500 meta-training steps.

Command:
  mmjax train --config configs/mfeat/smil.py --workdir runs/mfeat_smil
  (every released-code switch: --config configs/mfeat/smil.py:released, see smil.released)

The two views: fou (Fourier coefficients, 76-d; 83.9% alone) plays the complete modality 1 and
kar (Karhunen-Loeve coefficients, 64-d; 96.1% alone) the severely missing modality 2.

Expected (test accuracy, mean of 5 seeds, measured by experiments/smil/run.sh mfeat):
  eta 20%: fou+kar 0.922, fou alone 0.839 (lower bound 0.841); eta 10%: 0.900, 0.833.
"""

from mmjax.config import DataConfig, MissingConfig
from mmjax.methods.smil import SmilConfig, released
from mmjax.presets import experiment, parse_arg

PHASE1_STEPS, PHASE2_STEPS, META_STEPS = 300, 200, 500


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets (``quick``: 40 + 20 + 40 steps;
    ``released``: mmjax.methods.smil.released)."""
    args = parse_arg(arg, released=True)
    method = SmilConfig(phase1_steps=40 if args.quick else PHASE1_STEPS,
                        phase2_steps=20 if args.quick else PHASE2_STEPS, memory_size=1408)
    return experiment("mfeat", method, args, released=released,
                      steps=PHASE1_STEPS + PHASE2_STEPS + META_STEPS,
                      data=DataConfig(name="mfeat", views=("fou", "kar")),
                      missing=MissingConfig(protocol="paired", paired_fraction=0.2))
