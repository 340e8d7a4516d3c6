"""TMC (Han et al. 2021): per-modality Dirichlet evidence fused by the reduced Dempster-Shafer rule; a missing modality's opinion is dropped, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/tmc.py --workdir runs/avmnist_offline_tmc

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  image+audio 0.982, image 0.821, audio 0.947; average 0.917
Measured with --set train.steps=300 (half this config's run) to fit the shared machine.
"""

from mmjax.methods.tmc import TmcConfig

from configs.common import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``)."""
    return experiment("avmnist_offline", TmcConfig(), arg)
