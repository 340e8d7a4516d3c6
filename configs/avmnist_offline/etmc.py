"""ETMC (Han et al. 2022): TMC plus the pseudo-view, evidence from the concatenated features, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/etmc.py --workdir runs/avmnist_offline_etmc

Expected (test accuracy, mean of 3 seeds): not measured; the 3-seed run (half length, see
experiments/baselines/extra.sh) did not finish on the shared 2-core machine before the deadline.
"""

from mmjax.methods.tmc import EtmcConfig

from configs.common import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``)."""
    return experiment("avmnist_offline", EtmcConfig(), arg)
