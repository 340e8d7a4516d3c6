"""RAML: Gaussian unimodal representations fused by element-wise precision weights, trained on every missing pattern, on AV-MNIST-offline.

Command:
  mmjax train --config configs/avmnist_offline/raml.py --workdir runs/avmnist_offline_raml

Paper settings (section IV-A): Adam, lr 1e-3, weight decay 5e-4, batch 128, Gaussian dimension
128. Encoders: SMIL's LeNet-5 (image) and sound CNN (20x20 MFCC), each with linear mu and
log-variance heads. Ablations: --set method.weighting=identical|fixed (Table V),
method.lambda_unimodal=0 / method.lambda_sparsity=0 (Table VI), method.shared_predictor=False
(Figure 4 left), method.augment=none (full-modality training).

Expected (test accuracy, mean of 3 seeds, 600 steps; experiments/raml/README.md): image 0.953,
audio 0.954, image+audio 0.989; average 0.965
"""

import dataclasses

from mmjax.config import OptimConfig
from mmjax.methods.raml import RamlConfig
from mmjax.presets import experiment


def get_config(arg=None):
    """The experiment; ``arg`` is a variant of mmjax.presets (``quick``)."""
    config = experiment("avmnist_offline", RamlConfig(), arg,
                        optim=OptimConfig(name="adam", lr=1e-3, weight_decay=5e-4))
    return dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=128))
