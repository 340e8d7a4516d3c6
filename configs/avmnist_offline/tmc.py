"""TMC (Han et al. 2021): per-modality Dirichlet evidence fused by the reduced Dempster-Shafer rule; a missing modality's opinion is dropped, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/tmc.py --workdir runs/avmnist_offline_tmc

Expected (test accuracy, mean of 3 seeds): not measured; the 3-seed run (half length, see
experiments/baselines/extra.sh) did not finish on the shared 2-core machine before the deadline.
"""

from mmjax.methods.tmc import TmcConfig

from configs.common import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``)."""
    return experiment("avmnist_offline", TmcConfig(), arg)
