"""CRA imputation (cascaded residual autoencoder, Tran et al. 2017) + concat fusion on UCI mfeat,
all six views, complete training data with simulated missing patterns (every non-empty, non-full
pattern of the six views drawn per sample, as MMIN trains); 1000 steps.

Command:
  mmjax train --config configs/mfeat/cra.py --workdir runs/mfeat_cra

Widths as MMIN's released CRA (256-128-64, 5 blocks) on the 649 concatenated input features.

Expected (test accuracy, mean ± std of 3 seeds, measured by the experiments/baselines/README.md
command): see MEASURED below.
"""

from mmjax.methods.mmin import CraConfig

from configs.common import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``)."""
    return experiment("mfeat", CraConfig(), arg)
