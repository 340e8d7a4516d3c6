"""The dataset types every loader returns: a spec (modalities, shapes, task) and host-side splits.

A dataset is held in host memory as numpy arrays, one array per modality with a leading sample
axis, a boolean ``present[N, M]`` array (False where the dataset itself lacks a modality for a
sample) and the labels. The training runtime puts a split on the device once and gathers batches
from it inside the jitted step (DESIGN §4).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from mmjax.errors import UserError

TASKS = ("classification", "multilabel", "regression")
# ``inputs[m + LENGTH_SUFFIX]`` holds the valid lengths of sequence modality ``m`` (see Split).
LENGTH_SUFFIX = "_len"


def length_key(modality: str) -> str:
    """The ``inputs`` key of a sequence modality's valid lengths, e.g. ``"text_len"``."""
    return modality + LENGTH_SUFFIX


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """What a model needs to know about a dataset.

    Attributes:
      name: registry name, e.g. ``"avmnist_offline"``.
      modalities: modality names in the dataset's fixed order; ``present[:, m]`` refers to
        ``modalities[m]`` and evaluation subsets are named by joining these with ``+``.
      shapes: per-modality shape of one sample (no batch axis), in modality order.
      task: one of ``TASKS``.
      num_classes: classes (classification), labels (multilabel) or 1 (regression).
      time_axes: per modality, the time (frame/token) axis of a *batched* array ``[B, ...]``, or
        None for inputs without one; empty = none has. Time-step masking (RAML Table III) masks
        along it.
    """

    name: str
    modalities: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    task: str
    num_classes: int
    time_axes: tuple[int | None, ...] = ()

    @property
    def num_modalities(self) -> int:
        """M, the number of modalities."""
        return len(self.modalities)

    def shape_of(self, modality: str) -> tuple[int, ...]:
        """The per-sample shape of ``modality``."""
        return self.shapes[self.modalities.index(modality)]

    def time_axis(self, modality: str) -> int | None:
        """The batched array's time axis of ``modality`` (None: no time axis)."""
        return self.time_axes[self.modalities.index(modality)] if self.time_axes else None


@dataclasses.dataclass
class Split:
    """One split of a dataset on the host.

    Attributes:
      inputs: modality name -> float32 array ``[N, *shape]``; zero where the modality is missing.
        A sequence modality ``m`` (one with a time axis) may also carry ``inputs[m + "_len"]``,
        int32 ``[N]``: its valid steps are ``0 .. len - 1`` along the time axis and every later
        step is zero (right padding). Zero-filling a missing modality leaves its length alone;
        ``present`` says whether it is there.
      present: bool ``[N, M]``; False where the dataset has no value for that modality.
      label: int32 ``[N]`` (classification), float32 ``[N, C]`` (multilabel) or float32 ``[N]``
        (regression).
    """

    inputs: dict[str, np.ndarray]
    present: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return int(self.label.shape[0])


@dataclasses.dataclass
class Dataset:
    """A spec and its splits (``"train"``, ``"val"``, ``"test"``), and where it came from."""

    spec: DatasetSpec
    splits: dict[str, Split]
    # The registry load that built it (``mmjax.data.origin_of``); None for a user's arrays.
    origin: str | None = None


def validate_split(spec: DatasetSpec, split: Split, where: str) -> None:
    """Checks a split against its spec; raises ``UserError`` with one clear line on the first problem.

    Checked: every modality is there with the declared shape and a float dtype, no NaN/inf inputs,
    sequence lengths (``<m>_len``) are ints in ``[0, T]`` with zeros past them,
    ``present`` has shape ``[N, M]``, labels have the right shape and range, no sample lacks every
    modality.
    """
    n = len(split)
    for m in spec.modalities:
        if m not in split.inputs:
            raise UserError(f"{where}: modality {m!r} is missing from the inputs")
    for m, x in split.inputs.items():
        if m.endswith(LENGTH_SUFFIX) and m[:-len(LENGTH_SUFFIX)] in spec.modalities:
            _validate_lengths(spec, split, m[:-len(LENGTH_SUFFIX)], where)
            continue
        if m not in spec.modalities:
            raise UserError(f"{where}: unknown modality {m!r}; the dataset has {spec.modalities}")
        want = (n, *spec.shape_of(m))
        if tuple(x.shape) != want:
            raise UserError(f"{where}: input {m!r} has shape {tuple(x.shape)}, expected {want}")
        if not np.issubdtype(x.dtype, np.floating):
            raise UserError(f"{where}: input {m!r} has dtype {x.dtype}, expected a float dtype")
        if not np.isfinite(x).all():
            bad = int(np.argwhere(~np.isfinite(x.reshape(n, -1)))[0, 0])
            raise UserError(f"{where}: input {m!r} has NaN or inf values (first at sample {bad})")
    if split.present.shape != (n, spec.num_modalities) or split.present.dtype != np.bool_:
        raise UserError(
            f"{where}: present must be bool[{n}, {spec.num_modalities}], "
            f"got {split.present.dtype}{list(split.present.shape)}"
        )
    empty = ~split.present.any(axis=1)
    if empty.any():
        raise UserError(f"{where}: sample {int(np.argmax(empty))} has no modality present")
    _validate_labels(spec, split.label, n, where)


def _validate_lengths(spec: DatasetSpec, split: Split, m: str, where: str) -> None:
    """``inputs[m + "_len"]``: int[N] in ``[0, T]`` for a modality with a time axis, zero beyond."""
    key, n = length_key(m), len(split)
    axis = spec.time_axis(m)
    if axis is None:
        raise UserError(f"{where}: {key!r} given, but modality {m!r} has no time axis")
    lengths, x = np.asarray(split.inputs[key]), split.inputs[m]
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise UserError(f"{where}: {key!r} must be int[{n}], got {lengths.dtype}{list(lengths.shape)}")
    steps = x.shape[axis] if x.ndim > axis else 0
    if n and (lengths.min() < 0 or lengths.max() > steps):
        raise UserError(f"{where}: {key!r} must lie in [0, {steps}], "
                        f"found {int(lengths.min())}..{int(lengths.max())}")
    t = np.arange(steps).reshape((1,) * axis + (steps,) + (1,) * (x.ndim - axis - 1))
    for start in range(0, n, 1024):  # chunks: no full-size temporary for large splits
        rows = slice(start, min(n, start + 1024))
        beyond = t >= lengths[rows].reshape((-1,) + (1,) * (x.ndim - 1))
        bad = np.any(np.where(beyond, x[rows], 0).reshape(beyond.shape[0], -1) != 0, axis=1)
        if bad.any():
            raise UserError(f"{where}: input {m!r} is not zero past {key!r} "
                            f"(first at sample {start + int(np.argmax(bad))})")


def _validate_labels(spec: DatasetSpec, label: np.ndarray, n: int, where: str) -> None:
    if spec.task == "classification":
        if label.shape != (n,) or not np.issubdtype(label.dtype, np.integer):
            raise UserError(f"{where}: labels must be int[{n}], got {label.dtype}{list(label.shape)}")
        if n and (label.min() < 0 or label.max() >= spec.num_classes):
            raise UserError(
                f"{where}: labels must lie in [0, {spec.num_classes - 1}], "
                f"found {int(label.min())}..{int(label.max())}"
            )
    elif spec.task == "multilabel":
        if label.shape != (n, spec.num_classes):
            raise UserError(f"{where}: labels must be [{n}, {spec.num_classes}], got {list(label.shape)}")
        if not np.isin(label, (0, 1)).all():
            raise UserError(f"{where}: multi-label targets must be 0 or 1")
    else:
        if label.shape != (n,) or not np.isfinite(label).all():
            raise UserError(f"{where}: regression labels must be finite float[{n}]")
