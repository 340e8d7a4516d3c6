"""MMIN's released AE variant on UCI mfeat, all six views: MMIN (configs/mfeat/mmin.py) with each
cascaded residual autoencoder replaced by one fully connected autoencoder (the authors'
``models/mmin_AE_model.py``, ``scripts/CAP_mmin_AE.sh``): the "AE" baseline of MLA's Table 2.
300 steps train the full-modality teacher, then 1000 steps train the student.

Command:
  mmjax train --config configs/mfeat/mmin_ae.py --workdir runs/mfeat_mmin_ae

Released settings (scripts/CAP_mmin_AE.sh): AE widths 512-450-384-256 (the encoder of the
concatenated features, the decoder mirrored, a ReLU output), loss weights CE 1, forward
imagination 4, cycle 2; classifier on the AE's 256-wide latent.

Expected (test accuracy, mean ± std of 3 seeds, measured 2026-12-08 on the shared 2-core CPU):
all six views 0.978 ± 0.004, average over the 63 view subsets 0.958 ± 0.001 (configs/mfeat/
mmin.py: 0.984 / 0.961). In MLA's Table 2 protocol (views fou, kar, mor, 10-70 % missing):
experiments/mla/README.md.

As released (``:released``): as configs/mfeat/mmin.py's (each network's gradient clipped
separately, teacher 0.5 and student 1.0; Adam beta1 0.5).
"""

from mmjax.methods import mmin
from mmjax.methods.mmin import MminConfig
from mmjax.presets import experiment, parse_arg

TEACHER_STEPS, MMIN_STEPS = 300, 1000
AE_LAYERS = (512, 450, 384, 256)  # released CAP_mmin_AE.sh --AE_layers


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 40 + 60 steps,
    ``released``)."""
    args = parse_arg(arg, released=True)
    method = MminConfig(imagination="ae", ae_layers=AE_LAYERS,
                        teacher_steps=40 if args.quick else TEACHER_STEPS)
    return experiment("mfeat", method, args, released=mmin.released,
                      steps=TEACHER_STEPS + MMIN_STEPS)
