"""Shared plumbing of the papers' datasets: user-supplied files prepared once into a tfds copy.

The papers' datasets cannot be downloaded by mmjax; the user has them on disk in the layout their
community circulates and runs ``mmjax data prepare NAME --from PATH`` once. That validates the
files, then writes a tensorflow-datasets copy (``file_format="array_record"``, no TensorFlow)
under ``<data_dir>/tfds/<builder name>/prepared/<version>/``; ``mmjax.data.load(NAME)`` reads it
back from there and never touches the source folder again. Preparing again replaces the copy only
once the new one is complete: it is written aside (``tfds/.<builder>.preparing-<pid>/``) and
renamed into place, so an interrupted or failed re-prepare keeps the old copy.

Every problem with the user's files is a ``UserError`` whose one line starts with the path of the
file (or folder) at fault.

The helpers here are shared by every dataset module (the data dir, reading a prepared split,
opening the user's HDF5 files); no dataset module imports another's.
"""

from __future__ import annotations

import os
import pathlib
import shutil

import numpy as np

from mmjax.errors import UserError

CONFIG_NAME = "prepared"
_CHUNK = 512


def data_root(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The mmjax data dir: ``data_dir``, else ``$MMJAX_DATA_DIR``, else ``~/.cache/mmjax``."""
    if data_dir is not None:
        return pathlib.Path(data_dir).expanduser()
    env = os.environ.get("MMJAX_DATA_DIR")
    return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "mmjax"


def open_h5(file: pathlib.Path):
    """Opens one of the user's HDF5 files read-only, or a one-line ``UserError`` naming it."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is in pyproject's dependencies
        raise UserError("reading HDF5 files needs h5py: pip install h5py") from e
    try:
        return h5py.File(file, "r")
    except OSError as e:
        raise UserError(f"{file}: not a readable HDF5 file ({str(e).splitlines()[0]})") from e


def require_dir(path: pathlib.Path, name: str, where: str, layout: str) -> None:
    """Raises a one-line ``UserError`` saying where ``name`` is published if ``path`` is absent.

    Args:
      path: the folder that must exist.
      name: registry name of the dataset.
      where: where the dataset is published.
      layout: what the folder given to ``--from`` must hold.
    """
    if not path.is_dir():
        raise UserError(f"{path}: no such directory; {name} is published {where}; put its "
                        f"files in one folder ({layout}) and run: "
                        f"mmjax data prepare {name} --from FOLDER")


def require_file(path: pathlib.Path, name: str, where: str) -> None:
    """Raises a one-line ``UserError`` naming the missing file and where the data is published."""
    if not path.is_file():
        raise UserError(f"{path}: file not found (part of {name}, published {where})")


def _config(version: str):
    import tensorflow_datasets as tfds

    return tfds.core.BuilderConfig(name=CONFIG_NAME, version=version)


def prepare(cls, root: pathlib.Path, manual_dir: pathlib.Path, config=None):
    """(Re)writes the tfds copy of builder class ``cls`` under ``root/tfds`` from ``manual_dir``.

    Args:
      config: a ``tfds.core.BuilderConfig`` named ``CONFIG_NAME`` carrying what the builder's
        features depend on (e.g. shapes read from the user's files); default a plain one.

    Returns:
      The prepared builder.
    """
    from mmjax.data import tfds_builders

    config = _config(str(cls.VERSION)) if config is None else config
    final = root / "tfds" / cls.name / CONFIG_NAME
    staging = root / "tfds" / f".{cls.name}.preparing-{os.getpid()}"
    try:
        tfds_builders.make(cls, config, staging, manual_dir=str(manual_dir))
        final.parent.mkdir(parents=True, exist_ok=True)
        old = final.with_name(f".{CONFIG_NAME}.replaced-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(staging / "tfds" / cls.name / CONFIG_NAME, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return tfds_builders.make(cls, config, root)  # finds the copy in place; prepares nothing


def prepared(cls, root: pathlib.Path, name: str, where: str, *, read_only: bool = False):
    """The prepared builder of ``cls``, or a one-line ``UserError`` telling how to prepare it.

    Args:
      read_only: restore the builder from its folder (``tfds.builder_from_directory``) instead
        of instantiating ``cls``: for builders whose features (shapes) come from the user's
        files through their config, so only the written ``dataset_info.json`` knows them.
    """
    folder = root / "tfds" / cls.name / CONFIG_NAME / str(cls.VERSION)
    if not (folder / "dataset_info.json").is_file():
        raise UserError(f"{name} is not prepared in {root}; get its files (published {where}), "
                        f"then run: mmjax data prepare {name} --from PATH")
    from mmjax.data import tfds_builders

    if read_only:
        import tensorflow_datasets as tfds

        with tfds_builders.quiet():
            return tfds.builder_from_directory(str(folder))
    return tfds_builders.make(cls, _config(str(cls.VERSION)), root)


def iter_batches(builder, split: str, batch_size: int):
    """Streams one split from its array_record files: dicts of stacked numpy arrays, in record
    order, ``batch_size`` examples at a time (the last batch may be smaller).

    For splits too large for host memory; ``read_split`` loads a whole split instead.
    """
    source = builder.as_data_source(split=split)
    keys = list(builder.info.features.keys())
    for start in range(0, len(source), batch_size):
        records = source.__getitems__(list(range(start, min(len(source), start + batch_size))))
        yield {k: np.stack([np.asarray(r[k]) for r in records]) for k in keys}


def read_split(builder, split: str) -> dict[str, np.ndarray]:
    """Every example of one split in source (``id``) order, read in chunks into preallocated arrays.

    Every dataset module reads its splits with this (mmjax's own builders too). It never holds
    all records and the stacked arrays at once, which matters for MultiBench AV-MNIST's ~3 GB of
    spectrograms.
    """
    source = builder.as_data_source(split=split)
    n = len(source)
    feats = builder.info.features
    out = {k: np.zeros((n, *feats[k].shape), feats[k].np_dtype) for k in feats.keys()}
    for start in range(0, n, _CHUNK):
        records = source.__getitems__(list(range(start, min(n, start + _CHUNK))))
        for k, arr in out.items():
            arr[start:start + len(records)] = [np.asarray(r[k]) for r in records]
    order = np.argsort(out["id"], kind="stable")
    if np.array_equal(order, np.arange(n)):
        return out
    return {k: v[order] for k, v in out.items()}


def check_finite(x: np.ndarray, file: pathlib.Path) -> None:
    """One-line ``UserError`` naming ``file`` and its first row with NaN/inf (chunked reads)."""
    if not np.issubdtype(x.dtype, np.floating):
        return
    for start in range(0, len(x), 4096):
        chunk = np.asarray(x[start:start + 4096]).reshape(min(4096, len(x) - start), -1)
        bad = ~np.isfinite(chunk).all(axis=1)
        if bad.any():
            row = start + int(np.argmax(bad))
            raise UserError(f"{file}: NaN or inf values (first at row {row})")


def check_labels(y: np.ndarray, file: pathlib.Path, num_classes: int) -> np.ndarray:
    """Integer class labels in ``[0, num_classes)`` as int32, or a one-line ``UserError``."""
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all():
            raise UserError(f"{file}: NaN or inf labels")
        if not np.array_equal(y, np.round(y)):
            raise UserError(f"{file}: labels must be whole numbers, found fractional values")
    elif not np.issubdtype(y.dtype, np.integer):
        raise UserError(f"{file}: labels have dtype {y.dtype}, expected integers")
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise UserError(f"{file}: labels must lie in [0, {num_classes - 1}], "
                        f"found {y.min():g}..{y.max():g}")
    return y.astype(np.int32)
