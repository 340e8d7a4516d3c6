"""The dataset registry: name -> ``Entry``, one line per dataset, as the method registry.

Each dataset module declares its entry (``ENTRY``, or ``ENTRIES[name]`` for a layout module that
serves several datasets): how to build, prepare and load it, the ``DataConfig`` fields it takes,
its modalities, task, headline metrics, default encoders and training settings, and the text
saying how it is made. ``REGISTRY`` names the module of every dataset; a module is imported the
first time its entry is asked for, so importing ``mmjax.data`` stays cheap (the paper datasets'
modules import tensorflow-datasets).

Option *types and defaults* live in one place, ``mmjax.config.DataConfig`` (its flat fields are
the ``config.json`` format of every run and what config files write, e.g.
``DataConfig(name="iemocap", fold=2)``); an entry names the fields that are its options, and
``check_options`` refuses a field set for a dataset that does not take it.

A dataset outside mmjax (your own module declaring an ``ENTRY``) is added the same way at run
time: ``register(name, module)`` is the registry line, written in your code (README, "Extending
mmjax").
"""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from mmjax.data.base import Dataset, DatasetSpec
from mmjax.errors import UserError

# One line per dataset: its name and the module that declares its entry (``register`` adds one).
REGISTRY: dict[str, str] = {
    "avmnist_offline": "mmjax.data.avmnist_offline",
    "mfeat": "mmjax.data.mfeat",
    "multibench_avmnist": "mmjax.data.multibench_avmnist",
    "smil_avmnist": "mmjax.data.smil_avmnist",
    "mmimdb": "mmjax.data.mmimdb",
    "food101_features": "mmjax.data.food_features",
    "n24news_features": "mmjax.data.food_features",
    "multibench_mosi": "mmjax.data.mosi",
    "multibench_mosei": "mmjax.data.mosi",
    "mmsa_mosi": "mmjax.data.mosi",
    "mmsa_mosei": "mmjax.data.mosi",
    "iemocap": "mmjax.data.mmin_layout",
    "msp_improv": "mmjax.data.mmin_layout",
}


def names() -> tuple[str, ...]:
    """Every registered dataset, mmjax's in ``REGISTRY``'s order, then those ``register`` added
    (``NAMES``, here and in ``mmjax.data``, reads it)."""
    return tuple(REGISTRY)


def __getattr__(attr: str):
    """``NAMES``: the registered datasets now (``names()``), not at import."""
    if attr == "NAMES":  # live, so that a dataset registered after import is listed
        return names()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


# Headline metrics by task (``mmjax.metrics``' names); entries use these.
CLASSIFICATION_METRICS = ("accuracy", "weighted_f1", "macro_f1")
MULTILABEL_METRICS = ("f1_micro", "f1_macro")
REGRESSION_METRICS = ("mae", "corr", "acc2")

# Every dataset takes these options: ``views`` (a subset of the modalities, in order; applied by
# ``mmjax.data.load`` itself) and ``seed`` (of the dataset's build and split).
COMMON_OPTIONS = ("views", "seed")


class BenchShapes(NamedTuple):
    """Input shapes ``mmjax bench`` times methods at, and the configs folder whose programs run
    on them (a folder of configs with the same kind of encoders)."""

    spec: DatasetSpec
    configs: str


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered dataset.

    Attributes:
      name: the registry name.
      modalities: every modality, in the dataset's order.
      task: ``classification`` | ``multilabel`` | ``regression`` (with the default options).
      load: ``load(data_dir, **options) -> Dataset`` of every modality, for the options in
        ``options`` but ``views``.
      build: ``build(data_dir, **{k: options[k] for k in build_options}) -> path`` of the cached,
        tfds-prepared copy (building it if mmjax makes the dataset itself).
      how: one line saying where the data comes from and what is done to it.
      encoders: modality -> default encoder (``mmjax.models.encoders.ENCODERS``), used when
        ``model.encoders`` is empty.
      metrics: the headline metrics of ``mmjax eval``'s table, in order.
      options: ``DataConfig`` fields (besides ``name``) this dataset takes, ``views`` and ``seed``
        first.
      build_options: the options that change what ``build`` writes (the others act at load time).
      prepare: ``prepare(source, data_dir) -> path`` for a dataset made from the user's files
        (``mmjax data prepare``); None for one mmjax builds itself.
      describe: extra lines for ``mmjax data info`` from the cached path (e.g. build metadata).
      model, train: the ``ModelConfig`` / ``TrainConfig`` the shared config defaults
        (``mmjax.presets.experiment``) start from; None where the dataset's configs write their own.
      bench: shape names -> ``BenchShapes`` that ``mmjax bench --dataset`` knows.
    """

    name: str
    modalities: tuple[str, ...]
    task: str
    load: Callable[..., Dataset]
    build: Callable[..., pathlib.Path]
    how: str
    encoders: Mapping[str, str]
    metrics: tuple[str, ...]
    options: tuple[str, ...] = COMMON_OPTIONS
    build_options: tuple[str, ...] = ()
    prepare: Callable[..., pathlib.Path] | None = None
    describe: Callable[[pathlib.Path], list[str]] | None = None
    model: Any = None
    train: Any = None
    bench: Mapping[str, BenchShapes] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.options[:2] != COMMON_OPTIONS:
            raise ValueError(f"{self.name}: options must start with {COMMON_OPTIONS}")
        if set(self.encoders) != set(self.modalities):
            raise ValueError(f"{self.name}: encoders must name every modality")


def register(name: str, module: str) -> None:
    """Registers dataset ``name``, whose entry the importable module ``module`` declares
    (``ENTRY``, or ``ENTRIES[name]``): the run-time form of a line in ``REGISTRY``, for a dataset
    that lives outside mmjax. Registering the same pair again does nothing.

    Raises:
      UserError: ``name`` is registered to another module.
    """
    if REGISTRY.get(name, module) != module:
        raise UserError(f"dataset {name!r} is already registered (to {REGISTRY[name]})")
    REGISTRY[name] = module


def entry(name: str) -> Entry:
    """The entry of dataset ``name`` (its module is imported on first use).

    Raises:
      UserError: an unknown name, listing the registered ones.
    """
    if name not in REGISTRY:
        raise UserError(f"unknown dataset {name!r}; valid datasets: {', '.join(names())}")
    module = importlib.import_module(REGISTRY[name])
    found = module.ENTRIES[name] if hasattr(module, "ENTRIES") else module.ENTRY
    if found.name != name:  # a registry line pointing at the wrong module
        raise RuntimeError(f"{REGISTRY[name]} declares {found.name!r}, not {name!r}")
    return found


def defaults(name: str) -> dict:
    """The options of dataset ``name`` with their defaults (``DataConfig``'s)."""
    from mmjax.config import DataConfig

    base = DataConfig()
    return {k: getattr(base, k) for k in entry(name).options}


def check_options(name: str, opts: Mapping) -> dict:
    """``opts`` completed with the defaults of dataset ``name``.

    Raises:
      UserError: an option the dataset does not take, listing the valid ones.
    """
    valid = defaults(name)
    bad = [k for k in opts if k not in valid]
    if bad:
        raise UserError(f"{name}: unknown option {bad[0]!r}; valid options: {', '.join(valid)}")
    return {**valid, **opts}


def resolve(name: str, given: Mapping, keys: tuple[str, ...]) -> dict:
    """The options ``keys`` of dataset ``name``: ``given`` (which must be among ``keys``) completed
    with the defaults; what a dataset module's ``build`` / ``load`` use instead of signature
    defaults, so that ``DataConfig`` stays the one source of them.

    Raises:
      UserError: an option outside ``keys``.
    """
    bad = [k for k in given if k not in keys]
    if bad:
        raise UserError(f"{name}: unknown option {bad[0]!r}; valid options: {', '.join(keys)}")
    base = defaults(name)
    return {k: given.get(k, base[k]) for k in keys}


def config_options(data_config) -> dict:
    """The loader options a ``DataConfig`` sets for its dataset.

    Raises:
      UserError: a field another dataset takes is set (away from its default) for this one.
    """
    from mmjax.config import DataConfig

    taken = entry(data_config.name).options
    base = DataConfig()
    for f in dataclasses.fields(DataConfig):
        if f.name == "name" or f.name in taken:
            continue
        if getattr(data_config, f.name) != getattr(base, f.name):
            owners = [n for n in names() if f.name in entry(n).options]
            raise UserError(f"data.{f.name} only applies to {', '.join(owners)}, "
                            f"not {data_config.name}")
    return {k: getattr(data_config, k) for k in taken}


def default_encoders(spec: DatasetSpec) -> tuple[str, ...] | None:
    """The encoders of a registered dataset's modalities (any subset, in ``spec``'s order), or
    None for a dataset the registry does not know (e.g. ``mmjax.data.from_arrays``)."""
    if spec.name not in REGISTRY:
        return None
    declared = entry(spec.name).encoders
    if not set(spec.modalities) <= set(declared):
        return None
    return tuple(declared[m] for m in spec.modalities)


def bench_shapes() -> dict[str, BenchShapes]:
    """Every shape ``mmjax bench`` can time at, from every entry (imports every dataset module)."""
    shapes: dict[str, BenchShapes] = {}
    for name in names():
        for key, value in entry(name).bench.items():
            shapes.setdefault(key, value)  # a layout module may declare one shape for each name
    return shapes


def headline_metrics(name: str, available) -> tuple[str, ...]:
    """The headline metrics of dataset ``name`` among ``available``: its entry's, or for a
    dataset the registry does not know every task's headline metrics; all of ``available`` if
    none of those is there."""
    available = tuple(available)
    wanted = (entry(name).metrics if name in REGISTRY else
              CLASSIFICATION_METRICS + MULTILABEL_METRICS + REGRESSION_METRICS)
    return tuple(m for m in wanted if m in available) or available
