"""Multi-task training: concat fusion plus a linear head per modality, losses summed, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/multi_task.py --workdir runs/avmnist_offline_multi_task

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  image+audio 0.987, image 0.818, audio 0.819; average 0.875
"""

from mmjax.methods.baselines import MultiTaskConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", MultiTaskConfig(unimodal_weight=1.0), arg)
