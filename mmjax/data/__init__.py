"""Datasets in the batch contract, by name: ``load``, ``build``, ``prepare`` and ``info``.

Every function here reads the dataset's registry entry (:mod:`mmjax.data.registry`: its options,
how to build, prepare and load it, its description); none branches on a dataset's name. Adding a
dataset is one module declaring its ``ENTRY`` and one line in ``registry.REGISTRY`` (or, for a
module outside mmjax, one ``registry.register(name, module)`` call).

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

import json
import pathlib
import time

import numpy as np

from mmjax.data import registry
from mmjax.data.arrays import batch, from_arrays
from mmjax.data.base import Dataset, DatasetSpec, Split, length_key, validate_split
from mmjax.data.registry import Entry, entry
from mmjax.errors import UserError

__all__ = ["NAMES", "Dataset", "DatasetSpec", "Entry", "Split", "batch", "build", "entry",
           "from_arrays", "info", "load", "options", "prepare"]


def __getattr__(attr: str):
    """``NAMES``: the registered datasets now (``names()``), not at import."""
    if attr == "NAMES":  # every registered dataset, ``registry.register``'s too
        return registry.names()
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def prepare(name: str, source: str, *, data_dir: str | None = None) -> pathlib.Path:
    """Validates a paper dataset's files in ``source`` and writes its tfds copy; returns its folder.

    Raises:
      UserError: unknown name, a dataset mmjax builds itself, or a problem with the files (one
        line naming the file).
    """
    found = entry(name)
    if found.prepare is None:
        raise UserError(f"{name} is built by mmjax itself; use: mmjax data build {name}")
    _check_root(data_dir)
    return found.prepare(source, data_dir)


def options(name: str) -> dict:
    """The options ``load(name, ...)`` accepts, with their defaults (``DataConfig``'s).

    Raises:
      UserError: for an unknown dataset name.
    """
    return registry.defaults(name)


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
    found = entry(name)
    opts = registry.check_options(name, options)
    _check_root(data_dir)
    origin = _origin(name, opts)
    views = opts.pop("views")
    try:
        ds = _select(found.load(data_dir, **opts), views)
    except (UserError, OSError):
        raise  # already one line (an OSError names its path)
    except (RuntimeError, ValueError, KeyError) as e:  # array_record/riegeli on a damaged copy
        raise UserError(_damaged(found, data_dir, e)) from None
    for split_name, split in ds.splits.items():
        validate_split(ds.spec, split, f"{name}/{split_name}")
    ds.origin = origin
    return ds


def origin_of(name: str, options: dict) -> str:
    """The ``Dataset.origin`` that ``load(name, **options)`` gives its dataset. A run given a
    dataset of its config's own origin trains on registered data, not on a user's
    (``mmjax.train.user_data_text``)."""
    return _origin(name, registry.check_options(name, options))


def _origin(name: str, checked: dict) -> str:
    return json.dumps([name, checked], sort_keys=True, default=str)


def _damaged(found: Entry, data_dir: str | None, error: Exception) -> str:
    """The one line for a cached copy that cannot be read, with the commands that rebuild it."""
    from mmjax.data import prepared

    name, root = found.name, prepared.data_root(data_dir)
    again = (f"prepare it again (that replaces the copy): mmjax data prepare {name} --from PATH"
             if found.prepare is not None else
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

    Options that only act at load time (those outside the entry's ``build_options``, e.g.
    ``image_pca_energy``, ``views``) are accepted and ignored.

    Returns:
      The entry's answer: for avmnist_offline the cached npz (its tfds copy is prepared as
      well); for the others the prepared tfds folder.

    Raises:
      UserError: unknown name or option, or the data cannot be built (a paper dataset that is
        not prepared: the message gives the ``mmjax data prepare`` command).
    """
    found = entry(name)
    opts = registry.check_options(name, options)
    _check_root(data_dir)
    return found.build(data_dir, **{k: opts[k] for k in found.build_options})


def _label_summary(spec: DatasetSpec, label: np.ndarray) -> str:
    """Per class counts, per label positives, or the range and mean of regression targets."""
    if spec.task == "classification":
        return f"per class {np.bincount(label, minlength=spec.num_classes).tolist()}"
    if spec.task == "multilabel":
        return f"positives per label {label.sum(0).astype(int).tolist()}"
    if not len(label):
        return "no targets"
    return f"targets {label.min():.2f}..{label.max():.2f}, mean {label.mean():.3f}"


def _sequence_note(ds: Dataset, m: str) -> str:
    """`` (time axis A[, lengths in inputs[...]])`` for a modality with a time axis, else ``""``;
    lengths are named only where the splits carry them (padded sequences, not MFCC maps)."""
    axis = ds.spec.time_axis(m)
    if axis is None:
        return ""
    lengths = all(length_key(m) in s.inputs for s in ds.splits.values())
    return (f" (time axis {axis}, lengths in inputs[{length_key(m)!r}])" if lengths else
            f" (time axis {axis})")


def info(name: str, *, data_dir: str | None = None, **options) -> str:
    """A short human-readable summary: modalities, shapes, split sizes, class counts, cache, recipe.

    Builds the dataset first if needed.
    """
    found = entry(name)
    start = time.perf_counter()
    # load first: it checks its load-time options (e.g. a regime too big for the build) before
    # building, so bad options are refused without a build; build then only finds the cache
    ds = load(name, data_dir=data_dir, **options)
    where = build(name, data_dir=data_dir, **options)
    seconds = time.perf_counter() - start
    spec = ds.spec
    unit = {"classification": "classes", "multilabel": "labels", "regression": "output"}
    lines = [f"{name}: {spec.task}, {spec.num_classes} {unit[spec.task]}"]
    for m, shape in zip(spec.modalities, spec.shapes):
        lines.append(f"  modality {m:<6s} float32 {list(shape)}{_sequence_note(ds, m)}")
    for s, split in ds.splits.items():
        lines.append(f"  {s:<5s} {len(split):5d} samples, {_label_summary(spec, split.label)}")
    lines.append(f"  cached at {where}")
    lines.append(found.how)
    if found.describe is not None:
        lines.extend(found.describe(where))
    lines.append(f"  options: {registry.check_options(name, options)}; ready in {seconds:.2f} s")
    return "\n".join(lines)
