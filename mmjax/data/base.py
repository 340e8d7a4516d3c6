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
    """A spec and its splits (``"train"``, ``"val"``, ``"test"``)."""

    spec: DatasetSpec
    splits: dict[str, Split]


def validate_split(spec: DatasetSpec, split: Split, where: str) -> None:
    """Checks a split against its spec; raises ``UserError`` with one clear line on the first problem.

    Checked: every modality is there with the declared shape and a float dtype, no NaN/inf inputs,
    ``present`` has shape ``[N, M]``, labels have the right shape and range, no sample lacks every
    modality.
    """
    n = len(split)
    for m in spec.modalities:
        if m not in split.inputs:
            raise UserError(f"{where}: modality {m!r} is missing from the inputs")
    for m, x in split.inputs.items():
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
