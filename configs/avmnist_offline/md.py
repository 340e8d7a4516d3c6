"""MD (Han et al. 2022): sparse feature gates, true-class-probability confidences weighting each modality's features in the fusion; a missing modality's confidence is 0, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/md.py --workdir runs/avmnist_offline_md

Expected (test accuracy, 1 seed (seed 0), measured 2026-12-06 on the shared 2-core CPU with
``mmjax train --config configs/avmnist_offline/md.py:seeds=1 --workdir /tmp/md_av``, 600 steps):
  image+audio 0.981, image 0.854, audio 0.749; average 0.861

As released (``:released``): the TCP target of the confidence MSE not detached (``model.py``),
Adam weight decay 1e-4, the learning rate times 0.2 every fifth of the run (BRCA's StepLR, 500 of
2,500 epochs).
"""

from mmjax.methods import md
from mmjax.methods.md import MdConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``, ``released``)."""
    return experiment("avmnist_offline", MdConfig(), arg, released=md.released)
