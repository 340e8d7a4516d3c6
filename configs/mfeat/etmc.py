"""ETMC (Han et al. 2022): TMC plus the pseudo-view, evidence from the concatenated features, on UCI Multiple Features (six views).

Command:
  mmjax train --config configs/mfeat/etmc.py --workdir runs/mfeat_etmc

Expected (test accuracy, mean of 3 seeds; measured on the shared 2-core CPU, see
experiments/baselines/extra_results.md):
  all six views 0.979, fac alone 0.967; average over the 63 subsets 0.952
"""

from mmjax.methods.tmc import EtmcConfig

from configs.common import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of configs/common.py (``quick``)."""
    return experiment("mfeat", EtmcConfig(), arg)
