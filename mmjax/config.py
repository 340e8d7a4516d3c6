"""Typed, frozen experiment configuration and the ``--set key=value`` override parser.

An experiment is one ``ExperimentConfig`` made of small frozen dataclasses. Config files under
``configs/<dataset>/<method>.py`` define ``get_config(arg: str | None) -> ExperimentConfig``; ``arg``
selects a variant (``configs/avmnist_offline/augmentation.py:quick``). Overrides address fields by
dotted path (``--set train.steps=200 --set method.dropout_p=0.5``); values are parsed and checked
against the field's declared type, and unknown keys are rejected, so a typo fails before training.

Every value, whether a config file or ``--set`` gave it, is checked by ``validate``: its type
(strictly: a string where a tuple is meant is refused) and the range a field declares with
``typing.Annotated[T, Range(...)]`` (``POSITIVE``, ``NON_NEGATIVE``, ``PROBABILITY``, ...), and
the needs a method declares in its config class's ``requires`` (e.g. SMIL's paired data). Each
problem is one ``UserError`` line naming the field and the allowed values.

A switch (a field with a fixed set of values) is declared ``typing.Literal[...]``; a config class
made with ``frozen`` refuses any other value as soon as it is built (a config file, ``--set``,
``config.json`` or ``dataclasses.replace`` in code), the error listing the valid values, so no
method writes its own check.

Each field's documentation is the ``Attributes:`` section of its class's docstring, the one place
it is written; ``field_docs`` reads it and ``show`` prints a resolved config with it
(``mmjax config show``).

Method hyper-parameters live in a subclass of ``MethodConfig`` declared next to the method
(``mmjax/methods/*.py``), so each method's knobs are typed and documented where they are used.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import inspect
import json
import pathlib
import re
import textwrap
import types
import typing
from typing import Annotated, Any, ClassVar, Literal

from mmjax.errors import UserError


def frozen(cls: type) -> type:
    """A config class: a frozen, slotted dataclass whose ``Literal`` switches are checked when an
    instance is built (``check_switches``)."""
    if "__post_init__" not in cls.__dict__:
        cls.__post_init__ = _post_init
    return dataclasses.dataclass(frozen=True, slots=True)(cls)


def _post_init(self) -> None:
    check_switches(self)


# ----------------------------------------------------------------------------------------------
# Switches: ``Literal`` fields, checked whenever a config object is built.
# ----------------------------------------------------------------------------------------------


def check_switches(node: Any) -> None:
    """Every ``Literal`` switch of the config object ``node`` holds one of its values (the
    ``__post_init__`` of each ``frozen`` config class).

    Raises:
      UserError: ``<section>.<field> must be one of a, b, c; got 'x'``.
    """
    for name, hint in _switches(type(node)):
        value = getattr(node, name)
        if not _is_instance(value, hint):
            raise UserError(f"{_section(type(node))}{name} must be {type_name(hint)}; "
                            f"got {value!r}")


@functools.cache
def _switches(cls: type) -> tuple[tuple[str, Any], ...]:
    """The fields of ``cls`` whose type involves a ``Literal``, with their type hints."""
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls)
                 if _has_literal(hints[f.name]))


def _has_literal(hint: Any) -> bool:
    """Whether the type hint is, or is made of, a ``Literal`` (``bool | Literal["auto"]``)."""
    if typing.get_origin(hint) is Literal:
        return True
    return any(_has_literal(a) for a in typing.get_args(hint) if a is not Ellipsis)


def _section(cls: type) -> str:
    """The dotted prefix of a config class's fields: ``method.``, ``data.``, ... (empty for a
    class that is no section of ``ExperimentConfig``)."""
    if issubclass(cls, MethodConfig):
        return "method."
    hints = typing.get_type_hints(ExperimentConfig)
    return next((f"{name}." for name, hint in hints.items() if hint is cls), "")


def choices(hint: Any) -> tuple:
    """The values a ``Literal`` type hint allows (also inside ``bool | Literal["auto"]``: the
    literals only); ``field_choices`` gives them for a field by name."""
    if typing.get_origin(hint) is Literal:
        return typing.get_args(hint)
    return tuple(v for a in typing.get_args(hint) if a is not Ellipsis for v in choices(a))


def field_choices(cls: type, name: str) -> tuple:
    """The values of the ``Literal`` switch ``name`` of config class ``cls``, e.g.
    ``field_choices(TrainConfig, "dtype") == ("float32", "bfloat16")``."""
    return choices(typing.get_type_hints(cls)[name])


def _is_instance(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of type ``hint`` exactly as a config file should give it (an int is
    a float; a bool is not an int; a tuple must be a tuple)."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return _is_instance(value, typing.get_args(hint)[0])
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_is_instance(v, args[0]) for v in value)
        return len(value) == len(args) and all(map(_is_instance, value, args))
    if origin in (typing.Union, types.UnionType):
        return any(_is_instance(value, a) for a in typing.get_args(hint))
    if origin is Literal:  # the value itself, not one equal to it (True is not 1)
        return any(value == a and type(value) is type(a) for a in typing.get_args(hint))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is type(None):
        return value is None
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a hint this check does not model (Any, Callable): not checked



@dataclasses.dataclass(frozen=True)
class Range:
    """The allowed values of a numeric field (of each element, for a tuple), declared with
    ``typing.Annotated[float, Range(0, 1, high_open=True)]``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def allows(self, value: float) -> bool:
        """Whether ``value`` lies in the range."""
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                f"{')' if self.high_open else ']'}")


POSITIVE = Range(0, low_open=True)
NON_NEGATIVE = Range(0)
PROBABILITY = Range(0, 1, high_open=True)  # a dropout rate: 1 would drop everything
FRACTION = Range(0, 1)


@frozen
class DataConfig:
    """Which dataset, and its options.

    Every option of every dataset is a field here, once, with its type, range and default (the
    flat layout is what config files write and what every run's ``config.json`` holds); each
    dataset's registry entry (``mmjax.data.registry``) names the fields it takes, and a field set
    for a dataset that does not take it is refused (``mmjax.data.registry.config_options``).

    Attributes:
      name: registry name (``mmjax.data.NAMES``).
      views: every dataset: modalities to use, in order; empty = every modality of the dataset
        (mfeat: any subset of its six views).
      seed: every dataset: seed of the dataset build and split (not of training).
      snr_db: avmnist_offline: range of the audio noise SNR in dB, drawn per utterance.
      image_pca_energy: avmnist_offline: keep the image PCA components holding this fraction of the
        energy (1.0 = untouched); the original AV-MNIST degrades images this way.
      n_per_class: avmnist_offline: images per digit (500 = the whole MNIST sample; fewer for quick
        builds), split 70/10/20 %.
      per_class_num: smil_avmnist: training images per digit paired with sound (SMIL's protocol;
        a multiple of 3 in [3, 105]; 15 = 150 pairs, 21 = 20 %).
      mfcc_variant: avmnist_offline, smil_avmnist: ``mmjax`` or ``smil`` (SMIL's librosa-default
        MFCC recipe).
      regime: avmnist_offline: ``mmjax`` (every sample of the build: 3,500 / 500 / 1,000) or
        ``smil`` (SMIL's avMNIST sizes: per digit 105 train, 45 val, 45 test, taken from the
        build's own splits; SMIL has no val split, these 45 keep model selection off test).
        SMIL's "eta with sound" is then ``missing.protocol=paired``, ``paired_fraction=eta``.
      num_valid: multibench_avmnist: the last ``num_valid`` training rows form the val split.
      label_view: CMU-MOSI / MOSEI (multibench_*, mmsa_*): ``regression`` (sentiment in [-3, 3]),
        ``2class`` (positive vs not, MultiBench's classification view), ``2class_non0`` (zero
        labels dropped) or ``3class`` (negative / neutral / positive).
      fold: iemocap (1..10) / msp_improv (1..12): MMIN's cross-validation fold.
    """

    name: str = "avmnist_offline"
    views: tuple[str, ...] = ()
    snr_db: tuple[float, float] = (5.0, 30.0)
    image_pca_energy: Annotated[float, Range(0, 1, low_open=True)] = 1.0
    n_per_class: Annotated[int, Range(10, 500)] = 500
    per_class_num: Annotated[int, POSITIVE] = 21
    mfcc_variant: Literal["mmjax", "smil"] = "mmjax"
    regime: Literal["mmjax", "smil"] = "mmjax"
    num_valid: Annotated[int, NON_NEGATIVE] = 5000
    label_view: Literal["regression", "2class", "2class_non0", "3class"] = "regression"
    fold: Annotated[int, POSITIVE] = 1
    seed: Annotated[int, NON_NEGATIVE] = 0


@frozen
class MissingConfig:
    """How modalities are missing from the *training* set (sampled once per seed, then fixed).

    Attributes:
      protocol: ``none`` | ``independent`` (per-modality rates, RedCore) | ``at_least_one``
        (overall incomplete rate, each sample keeps one modality; MLA/CPM-Net) | ``paired``
        (modality 0 complete, the others on a fraction ``paired_fraction``; SMIL).
      rates: ``independent``: one missing rate per modality, in modality order.
      rate: ``at_least_one``: entry-wise missing rate, the fraction of (sample, modality) entries
        removed, each sample keeping one modality (CPM-Net's convention, as MLA uses it).
      paired_fraction: ``paired``: the fraction eta of samples that have every modality.
      exact: ``independent``: exact per-modality counts (released code) instead of Bernoulli.
      forbid_empty: ``independent``: never leave a sample with no modality (default True; the
        released RedCore code allows such samples: set False to reproduce it).
      mask_rows: which row of the training mask a batch sample gets. ``sample`` (default): its
        own, fixed for the whole run. ``position``: the row of its position in the epoch's
        shuffled order, as the released RedCore code indexes its mask matrix by batch position
        while the loader shuffles (official-code-notes, ``missing_index.py``): each sample gets
        another row every epoch, the per-modality counts of an epoch stay exact. It changes the
        program, so replicas of one run share it (``mmjax sweep`` packs only equal values).
    """

    protocol: Literal["none", "independent", "at_least_one", "paired"] = "none"
    rates: Annotated[tuple[float, ...], FRACTION] = ()
    rate: Annotated[float, FRACTION] = 0.0
    paired_fraction: Annotated[float, FRACTION] = 1.0
    exact: bool = True
    forbid_empty: bool = True
    mask_rows: Literal["sample", "position"] = "sample"


@frozen
class ModelConfig:
    """Encoders and widths shared by the baselines.

    Attributes:
      encoders: one encoder name per modality, from ``mmjax.models.encoders.ENCODERS``: ``mlp`` |
        ``fc`` for vectors; ``lenet5`` | ``sound_cnn`` | ``spec_lenet`` (MultiBench's 112x112
        spectrogram LeNet) for images; ``transformer`` | ``lstm_maxpool`` | ``textcnn`` |
        ``mean_mlp3`` | ``lstm_last`` for padded sequences (``mmjax.models.sequence``,
        ``mmjax.models.smil_encoders``); empty (the default) = the default encoders the
        dataset's registry entry declares for its modalities
        (``mmjax.data.registry.Entry.encoders``; e.g. avmnist_offline: lenet5 on the image,
        sound_cnn on the MFCC); mlp for a dataset the registry does not know
        (``mmjax.data.from_arrays``).
      hidden: hidden width of MLP encoders and of the fusion MLP.
      feature_dim: output width of MLP encoders and of sum fusion's projections (LeNet-5 and the
        sound CNN have fixed widths, 160 and 320, as released by SMIL).
      dropout: dropout rate in encoders and heads.
      missing_aware: the fusion of ``mmjax.models.fusion.MultimodalNet`` reads ``present`` (a
        missing modality's features are zeroed, late fusion averages the present heads); False:
        it never does, so a missing modality enters as the features of its zero-filled input
        (UME-MMA's baselines, "unaware models fed a zero input"; late fusion then averages
        every head).
    """

    encoders: tuple[str, ...] = ()
    hidden: Annotated[int, POSITIVE] = 128
    feature_dim: Annotated[int, POSITIVE] = 64
    dropout: Annotated[float, PROBABILITY] = 0.0
    missing_aware: bool = True


@frozen
class MethodConfig:
    """Base class of every method's hyper-parameters; ``name`` picks the method in the registry.

    A subclass declares what the method needs of the rest of the config in ``requires`` (names
    of ``REQUIREMENTS``), e.g. ``("paired_data",)``; ``validate`` checks them. ``traceable``
    names its scalar fields that its steps read from the train state rather than the config, so
    that ``mmjax sweep`` packs a grid over them into one program (``train.traceable_fields``).

    Attributes:
      name: the method's registry name (``mmjax.methods.REGISTRY``).
    """

    requires: ClassVar[tuple[str, ...]] = ()
    traceable: ClassVar[tuple[str, ...]] = ()
    name: str = "concat"


@frozen
class OptimConfig:
    """Optimiser (optax) and learning-rate schedule.

    Attributes:
      name: ``adam`` | ``adamw`` | ``sgd`` (with ``momentum``).
      lr: peak learning rate.
      weight_decay: L2 weight decay (decoupled for adamw, added to the gradient otherwise).
      momentum: SGD momentum.
      beta1: Adam's first-moment decay (MMIN's released scripts use 0.5).
      schedule: ``constant`` | ``cosine`` (decay to 0 over train.steps) | ``step`` (multiply by
        ``decay_rate`` every ``decay_steps``).
      warmup_steps: linear warm-up length.
      decay_steps: ``step`` schedule period.
      decay_rate: ``step`` schedule factor.
      grad_clip: global-norm clipping (0 = off).
    """

    name: Literal["adam", "adamw", "sgd"] = "adam"
    lr: Annotated[float, POSITIVE] = 1e-3
    weight_decay: Annotated[float, NON_NEGATIVE] = 0.0
    momentum: Annotated[float, PROBABILITY] = 0.9
    beta1: Annotated[float, PROBABILITY] = 0.9
    schedule: Literal["constant", "cosine", "step"] = "constant"
    warmup_steps: Annotated[int, NON_NEGATIVE] = 0
    decay_steps: Annotated[int, POSITIVE] = 1000
    decay_rate: Annotated[float, POSITIVE] = 0.1
    grad_clip: Annotated[float, NON_NEGATIVE] = 0.0


@frozen
class TrainConfig:
    """The training loop.

    Attributes:
      steps: optimisation steps.
      batch_size: global batch size (split over all devices on the ``"data"`` mesh axis).
      seed: root seed; replica ``i`` of ``num_seeds`` uses seed ``seed + i``.
      num_seeds: independent replicas trained in one program; eval reports mean ± std.
      vmap_seeds: batch the replicas with ``vmap`` (one batched program); False writes one copy
        of the step per replica into the same program. ``"auto"`` (default): chosen by the
        backend policy (``mmjax.policy``) from the backend and the network's layers.
      steps_per_call: steps fused into one jitted call with ``lax.scan`` (a call never crosses a
        training phase: the call at a phase's end is shorter).
      unroll: unroll factor of that scan; 0 unrolls it fully. ``"auto"`` (default): chosen by
        the backend policy (fully unrolled for convolutions on the CPU, rolled otherwise).
      log_every: steps between lines of ``metrics.jsonl`` (a multiple of ``steps_per_call``);
        each line holds that step's metrics averaged over seed replicas.
      checkpoint_every: steps between checkpoints (a multiple of ``steps_per_call``).
      keep_checkpoints: how many checkpoints to keep.
      dtype: compute dtype, ``float32`` or ``bfloat16`` (params and optimiser state stay f32).
      distributed: call ``jax.distributed.initialize()`` first (multi-host).
      eval_every: steps between evaluations on the selection split (a multiple of
        ``steps_per_call``), logged to ``metrics.jsonl`` as ``<split>/<metric>``; 0 = off.
      select: the checkpoint ``eval.json`` reports: ``last``, or ``best:<split>/<metric>`` (the
        step with the best value of the average over modality subsets on ``<split>``; never the
        test split); ``auto`` = ``best:val/<headline metric>`` when ``eval_every`` > 0 and the
        dataset has a ``val`` split, else ``last`` (see ``mmjax.train``).
      tensorboard: also write TensorBoard event files into ``WORKDIR/tensorboard`` (needs the
        ``tensorboard`` extra: ``pip install 'mmjax[tensorboard]'``).
      progress_seconds: seconds between plain progress lines on stderr when it is not a terminal
        (a terminal gets a progress bar).
      init_from: ``DIR[:STEP]``: start from the parameters of another run's checkpoint (its
        newest, or STEP); empty = fresh initialisation.
    """

    steps: Annotated[int, POSITIVE] = 3000
    batch_size: Annotated[int, POSITIVE] = 64
    seed: Annotated[int, NON_NEGATIVE] = 0
    num_seeds: Annotated[int, POSITIVE] = 1
    vmap_seeds: bool | Literal["auto"] = "auto"
    steps_per_call: Annotated[int, POSITIVE] = 10
    unroll: int | Literal["auto"] = "auto"
    log_every: Annotated[int, POSITIVE] = 100
    checkpoint_every: Annotated[int, POSITIVE] = 1000
    keep_checkpoints: Annotated[int, POSITIVE] = 2
    dtype: Literal["float32", "bfloat16"] = "float32"
    distributed: bool = False
    eval_every: Annotated[int, NON_NEGATIVE] = 0
    select: str = "auto"
    tensorboard: bool = False
    progress_seconds: Annotated[float, POSITIVE] = 60.0
    init_from: str = ""


# The protocols of ``mmjax eval --protocol`` (``mmjax.evaluate.RUNNERS`` runs each); here, in a
# module without jax, so that the CLI's parser lists them without importing the evaluator.
EVAL_PROTOCOLS = ("subsets", "missing-rate", "corruption", "paired-fraction")


@frozen
class EvalConfig:
    """Evaluation protocols run by ``mmjax eval`` and at the end of ``mmjax train``.

    Attributes:
      split: split to evaluate.
      batch_size: evaluation batch size.
      missing_rates: ``missing-rate`` protocol: overall test missing rates.
      noise_sigmas: ``corruption`` protocol: Gaussian-noise std on one modality (inputs scaled
        to [0, 1] first, RAML Table II).
      mask_probs: ``corruption`` protocol: time-step/feature masking probabilities (Table III).
      paired_fractions: ``paired-fraction`` protocol: the fractions eta of the test samples on
        which the modalities other than the complete one are present (UME-MMA Figure 3).
    """

    split: str = "test"
    batch_size: Annotated[int, POSITIVE] = 512
    missing_rates: Annotated[tuple[float, ...], FRACTION] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9)
    noise_sigmas: Annotated[tuple[float, ...], NON_NEGATIVE] = (0.08, 0.12, 0.18, 0.26, 0.38)
    mask_probs: Annotated[tuple[float, ...], FRACTION] = (0.05, 0.1, 0.15, 0.2, 0.25)
    paired_fractions: Annotated[tuple[float, ...], FRACTION] = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


@frozen
class ExperimentConfig:
    """One experiment: everything ``mmjax train`` needs."""

    data: DataConfig = DataConfig()
    missing: MissingConfig = MissingConfig()
    model: ModelConfig = ModelConfig()
    method: MethodConfig = MethodConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()


# ----------------------------------------------------------------------------------------------
# Loading config files.
# ----------------------------------------------------------------------------------------------


def load(spec: str) -> ExperimentConfig:
    """Loads ``PATH[:ARG]``: imports the file and calls its ``get_config(ARG or None)``.

    ``ARG`` is the config's variant argument (``quick``, ``released+quick``, ``steps=200``; see
    ``mmjax.presets.parse_arg``), which the file's ``get_config`` parses.
    """
    path, _, arg = spec.partition(":")
    module = import_file(path)
    if not hasattr(module, "get_config"):
        raise UserError(f"config {path} defines no get_config(arg)")
    try:
        config = module.get_config(arg or None)
    except UserError as e:  # a bad variant or switch: said with the file it is in
        raise UserError(f"config {path}: {e}") from None
    except Exception as e:  # a broken config file is the user's to fix, shown in one line
        raise UserError(f"config {path}: get_config failed: {type(e).__name__}: {e}") from e
    if not isinstance(config, ExperimentConfig):
        raise UserError(f"config {path}: get_config must return an ExperimentConfig")
    try:
        validate(config)
    except UserError as e:
        raise UserError(f"config {path}: {e}") from None
    return config


def import_file(path: str | pathlib.Path) -> types.ModuleType:
    """The Python file ``path`` imported as a fresh module (a config file, or a helper module a
    config file shares with its siblings: ``import_file(pathlib.Path(__file__).with_name(...))``).

    Config files import the installed ``mmjax`` (``mmjax.presets``) and nothing through
    ``sys.path``, so they load from any directory.

    Raises:
      UserError: no such file, or the file fails to import (in one line).
    """
    file = pathlib.Path(path)
    if not file.is_file():
        raise UserError(f"config file not found: {path}")
    module_spec = importlib.util.spec_from_file_location(f"_mmjax_config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except UserError as e:
        raise UserError(f"config {path}: {e}") from None
    except Exception as e:  # a broken config file is the user's to fix, shown in one line
        raise UserError(f"config {path} failed to import: {type(e).__name__}: {e}") from e
    return module


# ----------------------------------------------------------------------------------------------
# Validation: types, declared ranges, the method's declared requirements.
# ----------------------------------------------------------------------------------------------


def _paired_data(config: ExperimentConfig) -> str | None:
    m = config.missing
    if m.protocol == "paired" and m.paired_fraction <= 0:
        return (f"method {config.method.name} needs paired (complete) training samples: "
                f"missing.paired_fraction must be in (0, 1], got {m.paired_fraction}")
    return None


# What a method may declare in ``MethodConfig.requires``: name -> check (a message, or None).
REQUIREMENTS = {"paired_data": _paired_data}


def validate(config: ExperimentConfig) -> None:
    """Checks every field's type and declared range, and the method's requirements.

    Raises:
      UserError: one line naming the first bad field and its allowed values.
    """
    _validate_section(config, "")
    for need in type(config.method).requires:
        problem = REQUIREMENTS[need](config)
        if problem:
            raise UserError(problem)


def _validate_section(node: Any, prefix: str) -> None:
    hints = typing.get_type_hints(type(node), include_extras=True)
    for f in dataclasses.fields(node):
        key, value, hint = prefix + f.name, getattr(node, f.name), hints[f.name]
        bare, ranges = hint, ()
        if typing.get_origin(hint) is Annotated:
            bare, *extras = typing.get_args(hint)
            ranges = tuple(x for x in extras if isinstance(x, Range))
        if dataclasses.is_dataclass(bare):
            if not isinstance(value, bare):
                raise UserError(f"config section {key!r} must be a {bare.__name__}, got "
                                f"{type(value).__name__}")
            _validate_section(value, key + ".")
            continue
        if not _is_instance(value, bare):
            if _has_literal(bare):
                raise UserError(f"{key} must be {type_name(bare)}; got {value!r}")
            raise UserError(f"{key} must be {type_name(bare)}, got {value!r} "
                            f"({type(value).__name__})")
        elements = value if isinstance(value, tuple) else (value,)
        for i, v in enumerate(elements):
            for r in ranges:
                if not r.allows(v):
                    where = f"{key}[{i}]" if isinstance(value, tuple) else key
                    raise UserError(f"{where} must be {r}, got {v!r}")


# ----------------------------------------------------------------------------------------------
# --set overrides.
# ----------------------------------------------------------------------------------------------


def override(config: ExperimentConfig, assignments: list[str]) -> ExperimentConfig:
    """Applies ``key=value`` overrides (dotted keys) with type checking.

    Values are parsed as JSON where possible (``0.5``, ``true``, ``[0.2, 0.5]``), else taken as a
    string, then coerced to the field's declared type: ints stay ints, tuples accept JSON lists or
    comma-separated values (``--set data.views=fac,pix``).

    Raises:
      UserError: unknown key, unparsable value, or a value of the wrong type.
    """
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects key=value, got {assignment!r}")
        config = _replace_path(config, key.split("."), raw, key)
    validate(config)
    return config


def _replace_path(node: Any, path: list[str], raw: str, full_key: str) -> Any:
    fields = {f.name: f for f in dataclasses.fields(node)}
    name = path[0]
    if name not in fields:
        raise UserError(
            f"unknown config key {full_key!r}; {type(node).__name__} has: {', '.join(fields)}"
        )
    current = getattr(node, name)
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise UserError(f"unknown config key {full_key!r}: {name} is not a section")
        return dataclasses.replace(node, **{name: _replace_path(current, path[1:], raw, full_key)})
    if dataclasses.is_dataclass(current):
        raise UserError(f"config key {full_key!r} is a section; set one of its fields")
    hint = typing.get_type_hints(type(node))[name]
    return dataclasses.replace(node, **{name: parse_value(raw, hint, full_key)})


def parse_value(raw: str, hint: Any, key: str) -> Any:
    """Parses the text ``raw`` into a value of type ``hint`` (bool, int, float, str, tuples)."""
    return _coerce(_json_or_text(raw), hint, key, raw)


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _coerce(value: Any, hint: Any, key: str, raw: Any) -> Any:
    origin = typing.get_origin(hint)
    bad = UserError(f"config key {key!r} expects {type_name(hint)}"
                    f"{'; got' if _has_literal(hint) else ', got'} {raw!r}")
    if origin is Literal:
        for a in typing.get_args(hint):
            if value == a and type(value) is type(a):
                return a
            if isinstance(a, str) and raw == a:  # text JSON read as another type ("1" -> 1)
                return a
        raise bad
    if origin is tuple:
        if isinstance(value, str):  # comma-separated: each element is parsed like a whole value
            texts = [v for v in value.split(",") if v] if value else []
            value = [_json_or_text(t) for t in texts]
        else:
            texts = None
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        if len(value) != len(args):
            raise bad
        try:  # an element's own text, so that a str element keeps exactly what was typed
            return tuple(_coerce(v, a, key, v if texts is None else t)
                         for v, a, t in zip(value, args, texts or value))
        except UserError:
            raise bad from None
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(hint):
            try:
                return _coerce(value, arg, key, raw)
            except UserError:
                continue
        raise bad
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):  # Python spelling too
            return value.lower() == "true"
        raise bad
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if hint is str:
        return value if isinstance(value, str) else str(raw)
    if hint is type(None):
        if value is None:
            return None
        raise bad
    raise UserError(f"config key {key!r} has a type ({type_name(hint)}) that --set cannot parse")


def type_name(hint: Any) -> str:
    """How messages name a field's type: ``int``, ``tuple[str, ...]``, ``one of adam, adamw,
    sgd`` (a switch), ``bool or 'auto'``."""
    origin = typing.get_origin(hint)
    if origin is Annotated:
        return type_name(typing.get_args(hint)[0])
    if origin is Literal:
        args = typing.get_args(hint)
        return repr(args[0]) if len(args) == 1 else "one of " + ", ".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "None"
    if origin is not None:  # tuple[str, ...]: spelled out
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", None) or str(hint)


def to_dict(config: Any) -> dict:
    """The config as a dict of plain values (``json.dumps`` writes its tuples as lists)."""
    return dataclasses.asdict(config)


def from_dict(cls: type, data: dict, method_cls: type | None = None) -> Any:
    """Rebuilds a config written by ``to_dict``, type-checking every value.

    Args:
      cls: the dataclass to build (``ExperimentConfig`` for a whole config).
      data: the dict read from ``config.json``.
      method_cls: the ``MethodConfig`` subclass of ``data["method"]``; the registry knows it.
    """
    kwargs = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        sub = method_cls if f.name == "method" and method_cls else hints[f.name]
        if dataclasses.is_dataclass(sub):
            kwargs[f.name] = from_dict(sub, value)
        else:
            kwargs[f.name] = _coerce(value, hints[f.name], f.name, value)
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise UserError(f"{cls.__name__}: unknown config keys {sorted(unknown)}")
    return cls(**kwargs)


# ----------------------------------------------------------------------------------------------
# Field documentation: the ``Attributes:`` sections of the config classes' docstrings.
# ----------------------------------------------------------------------------------------------

_ENTRY = re.compile(r"(\w+(?:, \w+)*): (.*)")  # "name: text" or "a, b: text"


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Field name -> its documentation, read from the ``Attributes:`` section (Google style) of
    the docstrings of ``cls`` and its bases, a subclass's entry winning; an entry ``a, b: text``
    documents both fields. Continuation lines are joined with single spaces."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        lines = inspect.cleandoc(klass.__dict__.get("__doc__") or "").splitlines()
        if "Attributes:" not in lines:
            continue
        names: list[str] = []
        for line in lines[lines.index("Attributes:") + 1:]:
            if line and not line.startswith(" "):  # the next section
                break
            entry = _ENTRY.fullmatch(line[2:]) if line.startswith("  ") and line[2:3] != " " \
                else None
            if entry:
                names = entry.group(1).split(", ")
                docs.update(dict.fromkeys(names, entry.group(2)))
            elif line.strip():
                for name in names:
                    docs[name] += " " + line.strip()
    return docs


def show(config: ExperimentConfig, width: int = 100) -> str:
    """The resolved ``config`` as text: per section its one-line summary, then each field as
    ``key = value`` (JSON, as ``config.json`` and ``--set`` write it) with its type, its default
    where the value differs, and its documentation (``field_docs``)."""
    out = []
    for section in dataclasses.fields(config):
        node = getattr(config, section.name)
        cls = type(node)
        summary = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " ")
        out.append(f"[{section.name}] {cls.__name__}: {_plain(summary)}")
        hints = typing.get_type_hints(cls, include_extras=True)
        docs, base = field_docs(cls), _default(cls)
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            line = f"{section.name}.{f.name} = {json.dumps(value)}  ({_type_text(hints[f.name])}"
            if base is not None and getattr(base, f.name) != value:
                line += f"; default {json.dumps(getattr(base, f.name))}"
            out.append(line + ")")
            out.extend(textwrap.wrap(_plain(docs.get(f.name, "(undocumented)")), width,
                                     initial_indent="    ", subsequent_indent="    "))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _type_text(hint: Any) -> str:
    """A field's type with the ranges it declares, e.g. ``float > 0``."""
    ranges = ()
    if typing.get_origin(hint) is Annotated:
        ranges = tuple(x for x in typing.get_args(hint)[1:] if isinstance(x, Range))
    return " ".join([type_name(hint), *map(str, ranges)])


def _default(cls: type) -> Any:
    """``cls()`` with every field at its default, or None if some field has no default."""
    try:
        return cls()
    except TypeError:
        return None


def _plain(text: str) -> str:
    """Docstring text for a terminal: reStructuredText's double backticks dropped."""
    return text.replace("``", "")
