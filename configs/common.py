"""Defaults shared by the config files: per-dataset training settings and the ``:arg`` variants.

Variants (the text after ``:`` in ``--config PATH:ARG``; several join with ``+``, applied left to
right, e.g. ``configs/mfeat/redcore.py:released+quick``):

- ``quick``: 100 steps, one seed; a smoke run for tests and for trying a config out.
- ``released``: every switch that makes the method behave as the authors' released code (only for
  configs that define it, through ``experiment(..., released=...)``).
- empty: the full run the config's docstring describes.
"""

import dataclasses
from collections.abc import Callable

from mmjax.config import DataConfig, ExperimentConfig, MethodConfig, ModelConfig, TrainConfig
from mmjax.errors import UserError

# 600 steps of batch 64 is ~11 epochs of the 3,500 training pairs; 3 seeds trained together.
# train.unroll / train.vmap_seeds stay "auto": the backend policy (mmjax/policy.py) picks them.
TRAIN = {
    "avmnist_offline": TrainConfig(steps=600, batch_size=64, num_seeds=3, steps_per_call=10,
                                   log_every=100, checkpoint_every=200),
    "mfeat": TrainConfig(steps=1000, batch_size=64, num_seeds=3, steps_per_call=10,
                         log_every=100, checkpoint_every=500),
    # ~7 epochs of MultiBench's 55,000 training pairs (not measured here: no data on our machines).
    "multibench_avmnist": TrainConfig(steps=6000, batch_size=64, num_seeds=3, steps_per_call=10,
                                      log_every=500, checkpoint_every=1000),
    # ~36 epochs of SMIL's 1,050 training images, as avmnist_offline's schedule.
    "smil_avmnist": TrainConfig(steps=600, batch_size=64, num_seeds=3, steps_per_call=10,
                                log_every=100, checkpoint_every=200),
    # ~20 epochs of MM-IMDb's 15,552 training movies (not measured here: no data on our machines).
    "mmimdb": TrainConfig(steps=2400, batch_size=128, num_seeds=3, steps_per_call=10,
                          log_every=200, checkpoint_every=600),
}
MODEL = {
    # SMIL's encoders (LeNet-5 160-d, sound CNN 320-d) and its 64-unit fusion layer.
    "avmnist_offline": ModelConfig(hidden=64, dropout=0.0),
    # Two-layer MLP encoders on the six feature views.
    "mfeat": ModelConfig(hidden=128, feature_dim=64, dropout=0.1),
    # LeNet-5 on the digits; MultiBench's 6-conv LeNet on the 112x112 spectrogram (192-d).
    "multibench_avmnist": ModelConfig(encoders=("lenet5", "spec_lenet"), hidden=128),
    # The same encoders as avmnist_offline (SMIL's shapes).
    "smil_avmnist": ModelConfig(hidden=64, dropout=0.0),
    # MLP encoders on the 4096-d VGG and 300-d word2vec features (widths chosen here, untuned).
    "mmimdb": ModelConfig(encoders=("mlp", "mlp"), hidden=512, feature_dim=256, dropout=0.1),
}


def quick(config: ExperimentConfig) -> ExperimentConfig:
    """The ``quick`` variant: 100 steps, one seed."""
    train = dataclasses.replace(config.train, steps=100, num_seeds=1, log_every=50,
                                checkpoint_every=50)
    return dataclasses.replace(config, train=train)


def experiment(dataset: str, method: MethodConfig, arg: str | None,
               released: Callable[[ExperimentConfig], ExperimentConfig] | None = None,
               **sections) -> ExperimentConfig:
    """The experiment for ``method`` on ``dataset`` with the shared defaults, then variants ``arg``.

    ``released`` maps the paper-form experiment to the released-code one (the ``released``
    variant); ``sections`` replace whole sections (e.g. ``missing=MissingConfig(...)``).
    """
    config = ExperimentConfig(data=DataConfig(name=dataset), model=MODEL[dataset], method=method,
                              train=TRAIN[dataset], **sections)
    return apply_variants(config, arg, released)


def apply_variants(config: ExperimentConfig, arg: str | None,
                   released: Callable[[ExperimentConfig], ExperimentConfig] | None = None
                   ) -> ExperimentConfig:
    """``config`` with the ``+``-joined variants of ``arg`` applied left to right (``quick``;
    ``released`` where the config passes its method's ``released``); for config files that build
    their experiment without ``experiment``."""
    variants = {"quick": quick}
    if released is not None:
        variants["released"] = released
    for name in (arg or "").split("+"):
        if not name:
            continue
        if name not in variants:
            raise UserError(f"unknown config variant {name!r}; this config has: "
                            f"{', '.join(sorted(variants))} (join several with '+')")
        config = variants[name](config)
    return config
