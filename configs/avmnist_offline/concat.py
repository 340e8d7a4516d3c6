"""Concat (intermediate) fusion: masked encoder features concatenated, MLP head, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/concat.py --workdir runs/avmnist_offline_concat

Expected (test accuracy, mean of 3 seeds; measured on the 2-core CPU, see
experiments/baselines/README.md):
  image+audio 0.984, image 0.744, audio 0.797; average 0.841
"""

from mmjax.config import MethodConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", MethodConfig(name="concat"), arg)
