"""Defaults shared by the config files: each dataset's model and training settings (from its
registry entry, ``mmjax.data.registry``) and the ``:arg`` variants.

Variants (the text after ``:`` in ``--config PATH:ARG``; several join with ``+``, applied left to
right, e.g. ``configs/mfeat/redcore.py:released+quick``):

- ``quick``: 100 steps, one seed; a smoke run for tests and for trying a config out.
- ``released``: every switch that makes the method behave as the authors' released code (only for
  configs that define it, through ``experiment(..., released=...)``).
- empty: the full run the config's docstring describes.
"""

import dataclasses
from collections.abc import Callable

from mmjax.config import DataConfig, ExperimentConfig, MethodConfig
from mmjax.data import registry
from mmjax.errors import UserError


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
    found = registry.entry(dataset)
    if found.model is None or found.train is None:
        raise UserError(f"dataset {dataset} declares no shared model/train settings; write its "
                        "config's ModelConfig and TrainConfig")
    config = ExperimentConfig(data=DataConfig(name=dataset), model=found.model, method=method,
                              train=found.train, **sections)
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
