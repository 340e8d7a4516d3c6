"""Your own arrays as a ``Dataset`` the trainer accepts (``from_arrays``), and batches of a split.

``from_arrays`` takes one ``[N, *shape]`` array per modality, the labels and optionally the
``present[N, M]`` mask, splits the samples (seeded fractions, or your own index arrays) and checks
every split against the batch contract (``base.validate_split``): the result goes to
``mmjax.train.train(config, workdir, dataset=...)`` or, step by step, to a method's functions
through ``batch``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mmjax.data.base import TASKS, Dataset, DatasetSpec, Split, validate_split
from mmjax.errors import UserError

SPLIT_NAMES = ("train", "val", "test")


def from_arrays(inputs: Mapping[str, np.ndarray], label: np.ndarray,
                present: np.ndarray | None = None, *,
                splits: Sequence[float] | Mapping[str, np.ndarray] = (0.8, 0.1, 0.1),
                task: str = "classification", num_classes: int | None = None,
                name: str = "arrays", seed: int = 0) -> Dataset:
    """Wraps arrays as a ``Dataset``.

    Args:
      inputs: modality name -> array ``[N, *shape]`` (any float or int dtype; stored float32).
        The modality order is the mapping's order.
      label: ``int[N]`` classes, ``{0, 1}[N, C]`` multi-label targets or ``float[N]`` regression
        targets.
      present: ``bool[N, M]``, False where a sample lacks a modality (its input is zero-filled
        here); default: every modality present.
      splits: fractions ``(train, val, test)`` of a seeded random permutation (a zero fraction
        leaves that split out, except train), or ``{split name: int indices}``.
      task: ``classification``, ``multilabel`` or ``regression``.
      num_classes: classes (default ``max(label) + 1``); labels for multilabel, 1 for regression.
      name: the dataset's name in results (``eval.json``'s ``dataset``).
      seed: the permutation's seed (fraction splits).

    Returns:
      The ``Dataset``; every split has passed ``validate_split``.

    Raises:
      UserError: inconsistent sample counts, a bad split, or a split that breaks the contract
        (one line naming the split and the problem).
    """
    if task not in TASKS:
        raise UserError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if not inputs:
        raise UserError("inputs must hold at least one modality")
    arrays = {m: np.asarray(x, np.float32) for m, x in inputs.items()}
    label = np.asarray(label)
    n = len(label)
    for m, x in arrays.items():
        if x.ndim < 1 or len(x) != n:
            raise UserError(f"input {m!r} has {len(x) if x.ndim else 0} samples, label has {n}")
    modalities = tuple(arrays)
    present = (np.ones((n, len(modalities)), bool) if present is None
               else np.asarray(present))
    if present.shape != (n, len(modalities)) or present.dtype != np.bool_:
        raise UserError(f"present must be bool[{n}, {len(modalities)}], got "
                        f"{present.dtype}{list(present.shape)}")
    label = _labels(task, label)
    if num_classes is None:
        num_classes = {"classification": int(label.max(initial=0)) + 1,
                       "multilabel": label.shape[-1] if label.ndim == 2 else 0,
                       "regression": 1}[task]
    for c, m in enumerate(modalities):  # zero-filled where missing (the batch contract)
        arrays[m] = np.where(present[:, c].reshape((n,) + (1,) * (arrays[m].ndim - 1)),
                             arrays[m], 0.0).astype(np.float32)
    spec = DatasetSpec(name, modalities, tuple(x.shape[1:] for x in arrays.values()), task,
                       num_classes)
    out = {}
    for split_name, idx in _split_indices(splits, n, seed).items():
        split = Split({m: x[idx] for m, x in arrays.items()}, present[idx], label[idx])
        validate_split(spec, split, f"{name}/{split_name}")
        out[split_name] = split
    return Dataset(spec, out)


def _labels(task: str, label: np.ndarray) -> np.ndarray:
    """Labels in the dtype the contract asks for (int32 classes, float32 otherwise)."""
    if task == "classification":
        if not np.issubdtype(label.dtype, np.integer):
            raise UserError(f"classification labels must be integers, got {label.dtype}")
        return label.astype(np.int32)
    return label.astype(np.float32)


def _split_indices(splits, n: int, seed: int) -> dict[str, np.ndarray]:
    """``{split name: indices}`` from fractions or given index arrays."""
    if isinstance(splits, Mapping):
        out = {k: np.asarray(v, np.int64) for k, v in splits.items()}
        if "train" not in out:
            raise UserError(f"splits must include 'train', got {', '.join(out) or 'none'}")
        for k, idx in out.items():
            if idx.ndim != 1 or (idx.size and (idx.min() < -n or idx.max() >= n)):
                raise UserError(f"splits[{k!r}] must be 1-d indices into the {n} samples")
        return out
    fractions = tuple(float(f) for f in splits)
    if (len(fractions) != 3 or min(fractions) < 0 or fractions[0] <= 0
            or abs(sum(fractions) - 1) > 1e-6):
        raise UserError(f"splits must be three fractions (train, val, test) summing to 1 with "
                        f"train > 0, or a dict of indices; got {splits!r}")
    order = np.random.default_rng(seed).permutation(n)
    ends = np.round(np.cumsum(fractions) * n).astype(int)
    parts = np.split(order, ends[:2])
    return {k: np.sort(p) for k, p, f in zip(SPLIT_NAMES, parts, fractions)
            if f > 0 or k == "train"}


def batch(dataset: Dataset, split: str = "train", indices: np.ndarray | slice | None = None,
          present: np.ndarray | None = None) -> dict:
    """A batch of ``dataset.splits[split]`` in the batch contract: ``{"inputs", "present",
    "label"}`` (host numpy arrays; pass to ``method.init`` / a step / ``predict``).

    Args:
      dataset: the dataset (its spec gives the modality order, the columns of ``present``).
      split: the split's name.
      indices: which samples (int array or slice; default all).
      present: a ``bool[B, M]`` mask ANDed with the split's (e.g. to drop a modality); inputs
        that end up missing are zero-filled, as the trainer does.
    """
    if split not in dataset.splits:
        raise UserError(f"{dataset.spec.name} has no {split!r} split ({', '.join(dataset.splits)})")
    s = dataset.splits[split]
    idx = slice(None) if indices is None else indices
    mask = s.present[idx]
    if present is not None:
        mask = mask & np.asarray(present, bool)
    inputs = {k: v[idx] for k, v in s.inputs.items()}  # sequence lengths travel as they are
    for c, m in enumerate(dataset.spec.modalities):
        x = inputs[m]
        inputs[m] = np.where(mask[:, c].reshape((len(x),) + (1,) * (x.ndim - 1)), x,
                             0).astype(x.dtype)
    return {"inputs": inputs, "present": mask, "label": s.label[idx]}
