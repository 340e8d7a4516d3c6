"""tensorflow-datasets plumbing every dataset builder shares (array_record on disk, no TensorFlow).

tfds is mmjax's registry and on-disk format for prepared datasets (DESIGN §4). Each dataset module
declares its own ``tfds.core.GeneratorBasedBuilder`` (features, split generators) and prepares it
through :func:`make`, which writes ``file_format="array_record"`` (the tfrecord default needs
TensorFlow). Builders use plain ``tfds.features.Tensor`` features (``Image`` would call TensorFlow
to encode PNGs) and are read back with ``builder.as_data_source()`` (random access, no TF) --
never ``as_dataset``; ``mmjax.data.prepared.read_split`` reads a whole split.

tfds shuffles examples at write time by hashing their keys, so every example carries an ``id``
(its row in the source) by which the readers restore the source order.

Each prepared dataset lives in ``<data_dir>/tfds/<builder name>/<config>/<version>/``; a builder
whose files depend on build parameters names its config after a hash of them, so different
parameters never share files.

No module here imports a dataset's module: the dataset modules import this one.
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
import sys

import tensorflow_datasets as tfds

VERSION = "1.0.0"  # the version of mmjax's own builders (avmnist_offline, mfeat)
FILE_FORMAT = "array_record"


@contextlib.contextmanager
def quiet():
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


def make(cls, config: tfds.core.BuilderConfig, root, manual_dir: str | None = None):
    """Builder class ``cls`` with ``config`` under ``root/tfds``, prepared if its files are not
    there yet (from ``manual_dir`` for builders that read local files).

    Returns:
      The prepared builder; read it with ``as_data_source``.
    """
    with quiet():
        builder = cls(config=config, data_dir=str(pathlib.Path(root) / "tfds"),
                      file_format=FILE_FORMAT)
        done = pathlib.Path(builder.data_dir) / "dataset_info.json"
        if not done.exists():
            try:
                builder.download_and_prepare(
                    file_format=FILE_FORMAT,
                    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
            except OSError:
                # Another process prepared the same config at the same time and won the rename.
                if not done.exists():
                    raise
    return builder
