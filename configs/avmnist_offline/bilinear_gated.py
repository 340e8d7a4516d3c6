"""Bilinear gated fusion (Kiela et al. 2018, as MLA appendix A.2): sigmoid of the audio hidden state gates the other modalities' hidden states, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/bilinear_gated.py --workdir runs/avmnist_offline_bilinear_gated

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  image+audio 0.981, image 0.566, audio 0.100; average 0.549
Measured with --set train.steps=300 (half this config's run) to fit the shared machine.
"""

from mmjax.methods.gated import GatedConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("avmnist_offline", GatedConfig(), arg)
