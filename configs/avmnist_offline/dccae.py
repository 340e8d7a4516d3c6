"""DCCAE (Wang et al. 2015): DCCA (LeNet-5 / sound CNN + a linear layer to 10 dimensions) plus each
modality's decoder reconstructing its input (lambda 0.01), trained on their canonical correlation,
then a classifier on the frozen canonical outputs, on AV-MNIST-offline: 300 + 300 steps (the 600 of
the other AV-MNIST baselines).

Command:
  mmjax train --config configs/avmnist_offline/dccae.py --workdir runs/avmnist_offline_dccae

Expected (test accuracy, mean ± std of 3 seeds, measured 2026-12-07 with --set
train.steps_per_call=2, 167 s on the shared 2-core CPU beside a mutation run): image+audio
0.953 ± 0.009, image 0.474 ± 0.086, audio 0.790 ± 0.015, average 0.739 ± 0.027. Trained on complete
pairs only, the classifier has never seen a zeroed modality, hence the one-modality cells. In MLA's
Table 2 protocol (degraded data, 10-50 % missing): experiments/mla/README.md.
"""

from mmjax.methods.dcca import DccaeConfig
from mmjax.presets import experiment, parse_arg

CCA_STEPS, CLASSIFIER_STEPS = 300, 300


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``: 40 + 60 steps)."""
    args = parse_arg(arg)
    method = DccaeConfig(cca_steps=40 if args.quick else CCA_STEPS)
    return experiment("avmnist_offline", method, args, steps=CCA_STEPS + CLASSIFIER_STEPS)
