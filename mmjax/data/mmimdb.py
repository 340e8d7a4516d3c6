"""MM-IMDb as MultiBench (and SMIL) read it: ``multimodal_imdb.hdf5`` with pre-extracted features.

Published: the ``multimodal_imdb.hdf5`` of the GMU-MMIMDb project (Arevalo et al. 2017,
github.com/johnarevalo/gmu-mmimdb, "MM-IMDb" download, ~8 GB with raw posters), the file
MultiBench's ``datasets/imdb/get_data.py`` opens (reference notes §6.1). The file, or a folder
holding it, is given to ``mmjax data prepare mmimdb --from PATH``. Datasets read::

    features      [N, 300]   text: mean word2vec of the plot outline (float)
    vgg_features  [N, 4096]  image: VGG-16 fc7 features of the poster (float)
    genres        [N, 23]    multi-hot genre labels (0/1)

``images`` (raw posters) and ``imdb_ids`` may be there and are ignored. The published file has
N = 25,959 rows split by index as MultiBench does: train ``[0, 15552)``, val ``[15552, 18160)``,
test ``[18160, 25959)`` (15,552 / 2,608 / 7,799). A file with another row count is accepted
only if it carries Fuel's ``split`` attribute (the GMU file was written with Fuel's
``H5PYDataset``: one row per (split, source) with ``start``/``stop``; split names ``train``,
``dev``/``val``/``valid``, ``test``), which then gives the boundaries.

Modalities ("image", "text") = (vgg_features [4096], features [300]), raw values (MultiBench and
SMIL feed them unnormalised); task ``multilabel`` with 23 labels, metrics F1 micro / macro /
samples at 0.5 (``mmjax.metrics.multilabel_metrics``). Every sample has both modalities. The whole
dataset is 0.46 GB as float32: it loads into host memory. Measured on a synthetic file of the
published size (25,959 rows, no split attribute; 2 CPU cores at load average ~13): prepare 92 s,
load 19 s, splits 15,552 / 2,608 / 7,799.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from mmjax.data import prepared
from mmjax.data.base import Dataset, DatasetSpec, Split
from mmjax.errors import UserError

NAME = "mmimdb"
FILE = "multimodal_imdb.hdf5"
MODALITIES = ("image", "text")
KEYS = {"image": "vgg_features", "text": "features"}
DIMS = {"image": 4096, "text": 300}
NUM_LABELS = 23
N_PUBLISHED = 25959
BOUNDS_PUBLISHED = (15552, 18160)  # MultiBench's get_dataloader: train / valid / test cuts
SPLITS = ("train", "val", "test")
WHERE = ("by the GMU-MMIMDb project (github.com/johnarevalo/gmu-mmimdb, file "
         "multimodal_imdb.hdf5; also linked from github.com/pliang279/MultiBench)")
HOW = ("  how: MultiBench's multimodal_imdb.hdf5: vgg_features (image) and features (text) raw, "
       "genres multi-hot; split 15,552 / 2,608 / 7,799 by index")
_FUEL_NAMES = {"train": "train", "dev": "val", "val": "val", "valid": "val", "test": "test"}


def source_file(source: str | os.PathLike) -> pathlib.Path:
    """The hdf5 file: ``source`` itself, or ``source/multimodal_imdb.hdf5``."""
    source = pathlib.Path(source).expanduser()
    if source.is_dir():
        source = source / FILE
    elif not source.exists():
        prepared.require_dir(source, NAME, WHERE, FILE)
    prepared.require_file(source, NAME, WHERE)
    return source


def split_bounds(n: int, split_attr, file: pathlib.Path) -> tuple[int, int]:
    """The (train end, val end) row indices; test runs to ``n``.

    Args:
      n: rows in the file.
      split_attr: the file's Fuel ``split`` attribute (a structured array) or None.
      file: for error messages.

    Raises:
      UserError: neither the published row count nor a usable Fuel split attribute.
    """
    if split_attr is None:
        if n == N_PUBLISHED:
            return BOUNDS_PUBLISHED
        raise UserError(f"{file}: {n} rows and no Fuel 'split' attribute; the published file has "
                        f"{N_PUBLISHED} rows (train 15,552 / val 2,608 / test 7,799)")
    try:
        bounds = {}
        for row in np.asarray(split_attr):
            name = row["split"].decode() if isinstance(row["split"], bytes) else str(row["split"])
            if name in _FUEL_NAMES:
                bounds.setdefault(_FUEL_NAMES[name], (int(row["start"]), int(row["stop"])))
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise UserError(f"{file}: unreadable Fuel 'split' attribute ({e})") from e
    if set(bounds) != set(SPLITS):
        raise UserError(f"{file}: the 'split' attribute must name train, dev (or val) and test, "
                        f"found {sorted(bounds)}")
    (a0, a1), (b0, b1), (c0, c1) = (bounds[s] for s in SPLITS)
    if not (a0 == 0 and a1 == b0 and b1 == c0 and c1 == n and 0 < a1 < b1 < n):
        raise UserError(f"{file}: the 'split' attribute must cut rows 0..{n} into consecutive "
                        f"train / dev / test ranges, found {bounds}")
    return a1, b1


def read_source(source: str | os.PathLike) -> dict:
    """Validates ``multimodal_imdb.hdf5`` and returns its arrays (read into memory) and bounds.

    Returns:
      ``{"image": f32[N, 4096], "text": f32[N, 300], "label": u8[N, 23], "bounds": (a, b),
      "file": path}``.

    Raises:
      UserError: one line naming the file and the problem (missing file or dataset, wrong shape
        or dtype, rows that disagree, NaN/inf, labels not 0/1, bad split boundaries).
    """
    file = source_file(source)
    with prepared.open_h5(file) as f:
        out, n = {"file": file}, None
        for key, dataset in (("image", KEYS["image"]), ("text", KEYS["text"]),
                             ("label", "genres")):
            if dataset not in f:
                raise UserError(f"{file}: no dataset {dataset!r} (found {sorted(f.keys())})")
            x = f[dataset]
            d = NUM_LABELS if key == "label" else DIMS[key]
            if not hasattr(x, "shape") or x.ndim != 2 or x.shape[1] != d:
                shape = list(x.shape) if hasattr(x, "shape") else "a group"
                raise UserError(f"{file}: {dataset!r} has shape {shape}, expected [N, {d}]")
            if x.dtype.kind not in "iuf":
                raise UserError(f"{file}: {dataset!r} has dtype {x.dtype}, expected numbers")
            if n is None:
                n = x.shape[0]
            elif x.shape[0] != n:
                raise UserError(f"{file}: {dataset!r} has {x.shape[0]} rows, 'vgg_features' {n}")
            arr = np.asarray(x[()])
            if key == "label":
                if not np.isin(arr, (0, 1)).all():
                    row = int(np.argmax(~np.isin(arr, (0, 1)).all(axis=1)))
                    raise UserError(f"{file}: 'genres' must be multi-hot 0/1 (row {row} is not)")
                out[key] = arr.astype(np.uint8)
            else:
                arr = arr.astype(np.float32, copy=False)
                _check_finite(arr, file, dataset)
                out[key] = arr
        out["bounds"] = split_bounds(n, f.attrs.get("split"), file)
    return out


def _check_finite(x: np.ndarray, file: pathlib.Path, dataset: str) -> None:
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise UserError(f"{file}: {dataset!r} has NaN or inf values (first at row "
                        f"{int(np.argmax(bad))})")


@dataclasses.dataclass(eq=False)
class SourceConfig(tfds.core.BuilderConfig):
    """The config of a prepare: which file to read (it may have any name)."""

    file: str = ""


class MmjaxMmimdb(tfds.core.GeneratorBasedBuilder):
    """MM-IMDb: VGG-16 poster features, word2vec plot features, 23 genres (multi-hot)."""

    name = "mmjax_mmimdb"
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"Use `mmjax data prepare {NAME} --from PATH` ({WHERE})."

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="MM-IMDb (MultiBench's multimodal_imdb.hdf5): vgg_features, features, "
                        "genres; split by index.",
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Scalar(np.int32),
                "image": tfds.features.Tensor(shape=(DIMS["image"],), dtype=np.float32),
                "text": tfds.features.Tensor(shape=(DIMS["text"],), dtype=np.float32),
                "label": tfds.features.Tensor(shape=(NUM_LABELS,), dtype=np.uint8),
            }),
            homepage="https://github.com/johnarevalo/gmu-mmimdb",
        )

    def _split_generators(self, dl_manager):
        data = read_source(self.builder_config.file)
        a, b = data["bounds"]
        rows = {"train": range(0, a), "val": range(a, b), "test": range(b, len(data["label"]))}
        return {s: self._generate_examples(data, rows[s]) for s in SPLITS}

    def _generate_examples(self, data, rows):
        for i in rows:
            yield i, {"id": i, "image": data["image"][i], "text": data["text"][i],
                      "label": data["label"][i]}


def prepare(source: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Validates ``multimodal_imdb.hdf5`` (the file or its folder) and (re)writes the tfds copy.

    Raises:
      UserError: a problem with the file (see :func:`read_source`).
    """
    file = source_file(source).resolve()
    read_source(file)  # fail before tfds creates anything
    config = SourceConfig(name=prepared.CONFIG_NAME, version=str(MmjaxMmimdb.VERSION),
                          file=str(file))
    builder = prepared.prepare(MmjaxMmimdb, prepared.data_root(data_dir), file.parent, config)
    return pathlib.Path(builder.data_dir)


def _builder(data_dir):
    return prepared.prepared(MmjaxMmimdb, prepared.data_root(data_dir), NAME, WHERE)


def build(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The folder of the prepared tfds copy (``UserError`` with the prepare command if absent)."""
    return pathlib.Path(_builder(data_dir).data_dir)


def spec() -> DatasetSpec:
    """Modalities image [4096] and text [300]; multi-label with 23 genres."""
    return DatasetSpec(NAME, MODALITIES, ((DIMS["image"],), (DIMS["text"],)), "multilabel",
                       NUM_LABELS)


def load(data_dir: str | os.PathLike | None = None, *, seed: int) -> Dataset:
    """Loads the prepared copy into host memory: splits train / val / test, labels f32[N, 23].

    Args:
      data_dir: mmjax data dir (default ``$MMJAX_DATA_DIR`` or ``~/.cache/mmjax``).
      seed: accepted for the common option set; the split is fixed, so it has no effect.
    """
    del seed
    builder = _builder(data_dir)
    splits = {}
    for s in SPLITS:
        raw = prepared.read_split(builder, s)
        n = len(raw["label"])
        splits[s] = Split({"image": raw["image"], "text": raw["text"]}, np.ones((n, 2), bool),
                          raw["label"].astype(np.float32))
    return Dataset(spec(), splits)


def _entry():
    from mmjax.config import ModelConfig, TrainConfig
    from mmjax.data import registry

    encoders = {"image": "mlp", "text": "mlp"}  # on the 4096-d VGG and 300-d word2vec features
    return registry.Entry(
        name=NAME, modalities=MODALITIES, task="multilabel", load=load, build=build, how=HOW,
        encoders=encoders, metrics=registry.MULTILABEL_METRICS, prepare=prepare,
        # Widths chosen here, untuned.
        model=ModelConfig(encoders=tuple(encoders.values()), hidden=512, feature_dim=256,
                          dropout=0.1),
        # ~20 epochs of MM-IMDb's 15,552 training movies (not measured here: no data on our
        # machines).
        train=TrainConfig(steps=2400, batch_size=128, num_seeds=3, steps_per_call=10,
                          log_every=200, checkpoint_every=600))


ENTRY = _entry()
