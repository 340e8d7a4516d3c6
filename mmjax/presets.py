"""Building experiments in config files: the shared defaults, and the variant argument.

A config file ``configs/<dataset>/<method>.py`` defines ``get_config(arg)`` and builds its
``ExperimentConfig`` with ``experiment`` (the dataset's shared model and training settings from
its registry entry, ``mmjax.data.registry.Entry``, plus the method's section), or writes its
sections itself and ends with ``apply_variants``. ``method_experiment`` is the same for any
registered method at its config class's defaults, which is what ``mmjax bench`` times.

The variant argument is the text after ``:`` in ``--config PATH:ARG``, parsed as big_vision's
``get_config(arg)`` parses it (``parse_arg``): ``+``-joined items, each a flag (``quick``) or a
``key=value`` (``steps=200``, ``rates=0.8,0.5,0.2``), applied left to right, e.g.
``configs/mfeat/redcore.py:released+quick``. Every config takes the ``VARIANTS``:

- ``quick``: 100 steps, one seed; a smoke run for tests and for trying a config out.
- ``steps=N``: ``train.steps`` (multi-phase methods keep their phase lengths).
- ``seeds=N``: ``train.num_seeds``.
- ``rates=R1,R2,...``: ``missing.protocol=independent`` with one missing rate per modality.

and ``released`` (every switch that makes the method behave as the authors' released code) where
the config gives its method's ``released`` function. A config may declare keys of its own,
``parse_arg(arg, mosei=False)``, and read them (``args.mosei``); an unknown key is one error line
listing the keys the config takes. Without an argument the config is the full run its docstring
describes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from mmjax import config as config_lib
from mmjax.config import DataConfig, ExperimentConfig, MethodConfig
from mmjax.data import registry
from mmjax.errors import UserError

Released = Callable[[ExperimentConfig], ExperimentConfig]


def quick(config: ExperimentConfig) -> ExperimentConfig:
    """The ``quick`` variant: 100 steps, one seed, a log line and a checkpoint every 50 steps."""
    train = dataclasses.replace(config.train, steps=100, num_seeds=1, log_every=50,
                                checkpoint_every=50)
    return dataclasses.replace(config, train=train)


@dataclasses.dataclass(frozen=True)
class Variant:
    """A variant every config takes: its value's type (``bool``: a flag), how it is written in
    error messages, and what it does to the experiment."""

    hint: Any
    form: str
    apply: Callable[[ExperimentConfig, Any], ExperimentConfig]


def _with_train(config: ExperimentConfig, **fields) -> ExperimentConfig:
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **fields))


VARIANTS: dict[str, Variant] = {
    "quick": Variant(bool, "quick", lambda c, on: quick(c) if on else c),
    "steps": Variant(int, "steps=N", lambda c, n: _with_train(c, steps=n)),
    "seeds": Variant(int, "seeds=N", lambda c, n: _with_train(c, num_seeds=n)),
    "rates": Variant(tuple[float, ...], "rates=R1,R2,...", lambda c, rates: dataclasses.replace(
        c, missing=dataclasses.replace(c.missing, protocol="independent", rates=rates))),
}
RELEASED = "released"  # the flag of the released-code variant, where a config has one


@dataclasses.dataclass(frozen=True)
class Arg:
    """A parsed variant argument: ``items`` in the order written (``(key, value)``; a flag's value
    is True), ``values`` of every key the config takes (the given or default value, None for a
    common ``key=value`` not given), ``hints`` their types. ``args.quick`` reads ``values``."""

    items: tuple[tuple[str, Any], ...]
    values: Mapping[str, Any]
    hints: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def parse_arg(arg: str | Arg | None, *, released: bool = False, **own: Any) -> Arg:
    """Parses a config's variant argument (see the module docstring): the ``VARIANTS``, the flag
    ``released`` if ``released``, and the config's ``own`` keys with their defaults (a bool is a
    flag; an int, float or str key is written ``key=value``). An ``Arg`` is returned as it is.

    Raises:
      UserError: an unknown key (listing the ones this config takes), a flag given a value that
        is not true/false, a key without its value, a value of the wrong type.
    """
    if isinstance(arg, Arg):
        return arg
    hints = {name: v.hint for name, v in VARIANTS.items()}
    if released:
        hints[RELEASED] = bool
    hints.update({name: type(default) for name, default in own.items()})
    values = {name: (False if hint is bool else None) for name, hint in hints.items()}
    values.update(own)
    items = []
    for item in (arg or "").split("+"):
        if not item:
            continue
        name, sep, raw = item.partition("=")
        if name not in hints:
            raise UserError(f"unknown config variant {name!r}; {_takes(hints)}")
        if not sep and hints[name] is not bool:
            raise UserError(f"config variant {name!r} needs a value: {_form(name, hints[name])}")
        try:
            value = config_lib.parse_value(raw, hints[name], name) if sep else True
        except UserError:
            raise UserError(f"config variant {item!r}: {name} must be "
                            f"{config_lib.type_name(hints[name])}") from None
        values[name] = value
        items.append((name, value))
    return Arg(tuple(items), values, hints)


def _form(name: str, hint: Any) -> str:
    if name in VARIANTS:
        return VARIANTS[name].form
    return name if hint is bool else f"{name}=<{config_lib.type_name(hint)}>"


def _takes(hints: Mapping[str, Any]) -> str:
    return (f"this config takes: {', '.join(_form(n, h) for n, h in hints.items())} "
            "(join several with '+')")


def apply_variants(config: ExperimentConfig, arg: str | Arg | None,
                   released: Released | None = None) -> ExperimentConfig:
    """``config`` with the common variants of ``arg`` applied left to right (``released`` where
    the config passes its method's ``released``); the config's own keys are its own to read.

    Raises:
      UserError: as ``parse_arg``; ``released`` asked of a config that has none.
    """
    args = parse_arg(arg, released=released is not None)
    for name, value in args.items:
        if name == RELEASED:
            if released is None:  # parsed by a config that declared it but passed no function
                hints = {k: h for k, h in args.hints.items() if k != RELEASED}
                raise UserError(f"unknown config variant {RELEASED!r}; {_takes(hints)}")
            config = released(config) if value else config
        elif name in VARIANTS:
            config = VARIANTS[name].apply(config, value)
    return config


def experiment(dataset: str, method: MethodConfig, arg: str | Arg | None = None,
               released: Released | None = None, steps: int | None = None,
               **sections) -> ExperimentConfig:
    """The experiment for ``method`` on ``dataset`` with the dataset's shared settings, then the
    variants of ``arg``.

    ``released`` maps the paper-form experiment to the released-code one (the ``released``
    variant); ``steps`` replaces the dataset's ``train.steps`` (e.g. a multi-phase method's
    total); ``sections`` replace whole sections (``data=DataConfig(name=..., views=...)``,
    ``missing=MissingConfig(...)``, ``model``, ``optim``, ``train``).

    Raises:
      UserError: an unknown dataset, or one whose registry entry declares no shared model and
        train settings while ``sections`` give none.
    """
    found = registry.entry(dataset)
    model, train = sections.pop("model", found.model), sections.pop("train", found.train)
    if model is None or train is None:
        raise UserError(f"dataset {dataset} declares no shared model/train settings; write its "
                        "config's ModelConfig and TrainConfig")
    if steps is not None:
        train = dataclasses.replace(train, steps=steps)
    data = sections.pop("data", DataConfig(name=dataset))
    config = ExperimentConfig(data=data, model=model, method=method, train=train, **sections)
    return apply_variants(config, arg, released)


def method_experiment(dataset: str, name: str, arg: str | Arg | None = None) -> ExperimentConfig:
    """``experiment`` of the registered method ``name`` at its config class's defaults on
    ``dataset`` (no config file needed).

    Raises:
      UserError: an unknown method or dataset, as ``experiment``.
    """
    from mmjax import methods  # the method modules import jax and flax: only when asked

    return experiment(dataset, methods.entry(name).config_class(name=name), arg)
