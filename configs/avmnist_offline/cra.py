"""CRA imputation (cascaded residual autoencoder, Tran et al. 2017) + concat fusion on
AV-MNIST-offline: complete training data with simulated missing patterns (each sample drawn with
image only or audio only, as MMIN trains); 600 steps.

Command:
  mmjax train --config configs/avmnist_offline/cra.py --workdir runs/avmnist_offline_cra

Widths as MMIN's released CRA (256-128-64, 5 blocks), on the 1,184 concatenated input values
(784 pixels and the 20x20 MFCC).

Expected (test accuracy, mean ± std of 3 seeds, experiments/baselines/README.md "MMIN and CRA";
measured with --set train.steps_per_call=2, 7 min on the shared 2-core CPU): image+audio
0.989 ± 0.002, image 0.931 ± 0.008, audio 0.943 ± 0.010, average 0.955 ± 0.002.
"""

from mmjax.methods.mmin import CraConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", CraConfig(), arg)
