"""TMC (Han et al. 2021): per-modality Dirichlet evidence fused by the reduced Dempster-Shafer rule; a missing modality's opinion is dropped, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/tmc.py --workdir runs/mfeat_tmc

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  all six views 0.978, fac alone 0.967; average over the 63 subsets 0.960
"""

from mmjax.methods.tmc import TmcConfig

from configs.common import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``)."""
    return experiment("mfeat", TmcConfig(), arg)
