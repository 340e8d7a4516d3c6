"""DCCA (Andrew et al. 2013): each view's MLP encoder plus a linear layer to 10 canonical
dimensions, trained on the correlation of every view pair, then a classifier on the frozen
canonical outputs, on UCI mfeat, all six views: 500 + 500 steps.

Command:
  mmjax train --config configs/mfeat/dcca.py --workdir runs/mfeat_dcca

Expected (test accuracy, mean ± std of 3 seeds, measured 2026-12-07 on the shared 2-core
CPU): all six views 0.938 ± 0.009, average over the 63 view subsets 0.819 ± 0.013. In MLA's
Table 2 protocol (views fou, kar, mor, 10-70 % missing): experiments/mla/README.md.
"""

from mmjax.methods.dcca import DccaConfig
from mmjax.presets import experiment, parse_arg

CCA_STEPS, CLASSIFIER_STEPS = 500, 500


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 40 + 60 steps)."""
    args = parse_arg(arg)
    method = DccaConfig(cca_steps=40 if args.quick else CCA_STEPS)
    return experiment("mfeat", method, args, steps=CCA_STEPS + CLASSIFIER_STEPS)
