"""Bilinear gated fusion (Kiela et al. 2018, as MLA appendix A.2): sigmoid of the zer hidden state gates the other modalities' hidden states, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/bilinear_gated.py --workdir runs/mfeat_bilinear_gated

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  all six views 0.984, fac alone 0.612; average over the 63 subsets 0.796
"""

from mmjax.methods.gated import GatedConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    return experiment("mfeat", GatedConfig(), arg)
