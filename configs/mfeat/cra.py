"""CRA imputation (cascaded residual autoencoder, Tran et al. 2017) + concat fusion on UCI mfeat,
all six views: complete training data with simulated missing patterns (each sample drawn with
one of the 62 non-empty, non-full patterns of the six views, as MMIN trains); 1000 steps.

Command:
  mmjax train --config configs/mfeat/cra.py --workdir runs/mfeat_cra

Widths as MMIN's released CRA (256-128-64, 5 blocks), on the 649 concatenated input features.

Expected (test accuracy, mean ± std of 3 seeds, experiments/baselines/README.md "MMIN and CRA"):
all six views 0.987 ± 0.003, average over the 63 view subsets 0.959 ± 0.002.
"""

from mmjax.methods.mmin import CraConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", CraConfig(), arg)
