"""MLA (alternating unimodal adaptation, RLS head-gradient projection, entropy fusion) on AV-MNIST-offline with the image degraded (PCA 25 % energy) and noisier audio (SNR -5..15 dB).

Command:
  mmjax train --config configs/avmnist_offline/mla.py --workdir runs/avmnist_offline_mla

Data knobs (DataConfig, documented in experiments/mla/README.md): image_pca_energy=0.25 (the
MFAS/CentralNet AV-MNIST degradation, image alone ~0.6) and snr_db=(-5, 15) (audio alone ~0.83),
so that neither modality is near-perfect alone and the image is the weaker one.
Encoders: SMIL's LeNet-5 (160-d) and sound CNN (320-d), each + a projection FC to s = 128; one
shared linear head. SGD momentum 0.9, step decay x0.1 (MLA appendix A.3.1).
Ablations (Table 3): --set method.head_projection=none, method.fusion=average.
As released (``:released``): no head-gradient projection (the released GSPlugin never fires),
fixed fusion 0.55 f_image + 0.45 f_audio (released av_alpha), SGD weight decay 1e-4.

Expected (test accuracy, mean of 5 seeds, 600 rounds; measured on the shared 2-core CPU by
`bash experiments/mla/run.sh sweep_avmnist`, sweeps/avmnist.txt; experiments/mla/README.md,
"5-seed sweep on AV-MNIST-offline"):
  image+audio 0.959, image 0.660, audio 0.889; average 0.836
"""

import dataclasses

from mmjax.config import OptimConfig
from mmjax.methods import mla
from mmjax.methods.mla import MlaConfig
from mmjax.presets import experiment

DATA = {"image_pca_energy": 0.25, "snr_db": (-5.0, 15.0)}
METHOD = MlaConfig()
# A step is a round of M = 2 unimodal updates on one batch: the baselines' 600 steps give each
# encoder 600 updates. decay_steps counts rounds too.
OPTIM = OptimConfig(name="sgd", lr=1e-2, momentum=0.9, schedule="step", decay_steps=450,
                    decay_rate=0.1)


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``, ``released``)."""
    config = experiment("avmnist_offline", METHOD, arg, optim=OPTIM, released=mla.released)
    return dataclasses.replace(config, data=dataclasses.replace(config.data, **DATA))
