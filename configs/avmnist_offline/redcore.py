"""RedCore (VIB self-modal encoders on LeNet-5 / sound-CNN features, residual cross-modal encoders, relative-advantage regulation of eta), on AV-MNIST-offline.

Command (the two-modality imbalanced setting of experiments/redcore):
  mmjax train --config configs/avmnist_offline/redcore.py --workdir runs/avmnist_redcore \
    --set missing.protocol=independent --set missing.rates=0.8,0.2

Ablations: --set method.regulate=False (Core), --set method.unimodal_ce=False (Red). With two
modalities the relative advantages are +-r (eq. 8), so Red moves eta along one direction only.
Encoders: SMIL's LeNet-5 (image, 160-d) and sound CNN (20x20 MFCC, 320-d), each followed by a
Gaussian head to the 128-d latent; the paper's Transformer encoders are for frame sequences, which
this dataset does not have. Training schedule: the avmnist_offline baselines' (600 steps, batch 64,
Adam 1e-3).

Expected: not measured with this config as is (3 seeds, 600 steps). Measured on the loaded 2-core
CPU with --set method.latent_dim=64 --set method.xenc_layers=64,32,16 --set train.steps=300
--set train.num_seeds=1 --set train.unroll=1 (experiments/redcore/README.md): weighted F1 image
0.746, audio 0.891, image+audio 0.868, average 0.835 (concat + augmentation, same setting: 0.934).
"""

from mmjax.methods.redcore import RedCoreConfig

from configs.common import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``)."""
    return experiment("avmnist_offline", RedCoreConfig(), arg)
