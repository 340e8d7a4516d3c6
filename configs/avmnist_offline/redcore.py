"""RedCore on AV-MNIST-offline: VIB self-modal encoders on LeNet-5 / sound-CNN features, residual
cross-modal encoders, relative-advantage regulation of eta.

Command (the two-modality imbalanced setting of experiments/redcore):
  mmjax train --config configs/avmnist_offline/redcore.py --workdir runs/avmnist_redcore \
    --set missing.protocol=independent --set missing.rates=0.8,0.2

Ablations: --set method.regulate=False (Core), --set method.unimodal_ce=False (Red). Every
released-code switch at once: --config configs/avmnist_offline/redcore.py:released
(mmjax.methods.redcore.released). With two
modalities the relative advantages are +-r (eq. 8), so Red moves eta along one direction only.
Encoders: SMIL's LeNet-5 (image, 160-d) and sound CNN (20x20 MFCC, 320-d), each followed by a
Gaussian head to the 128-d latent; the paper's Transformer encoders are for frame sequences, which
this dataset does not have. Training schedule: the avmnist_offline baselines' (600 steps, batch 64,
Adam 1e-3).

Expected (experiments/redcore/README.md, 5 seeds, the command above with the experiment's halved
widths --set method.latent_dim=64 --set method.xenc_layers=64,32,16 and --set train.unroll=0
--set train.steps_per_call=2, experiments/redcore/sweeps/imb_avmnist_methods.txt): weighted F1
image 0.872, audio 0.912, image+audio 0.829, average 0.871 ± 0.031 (concat + augmentation, same
setting: 0.947). At rates (0.8, 0.2) with exact counts every training sample has exactly one
modality; with Bernoulli masks (--set missing.exact=False) the average is 0.933.
"""

from mmjax.methods.redcore import RedCoreConfig, released
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg``: variants of mmjax.presets (``quick``, ``released``)."""
    return experiment("avmnist_offline", RedCoreConfig(), arg, released=released)
