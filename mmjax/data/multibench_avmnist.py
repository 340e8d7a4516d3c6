"""MultiBench's AV-MNIST (the MFAS/CentralNet construction), from the npy files MultiBench reads.

Published: the ``avmnist.tar.gz`` behind the AV-MNIST Google Drive link of MultiBench's README
(github.com/pliang279/MultiBench; originally from the MFAS authors). Extracted, the folder given
to ``mmjax data prepare multibench_avmnist --from FOLDER`` holds (reference notes §6.1)::

    image/train_data.npy   [60000, 784]       MNIST digits, part of their PCA energy removed
    image/test_data.npy    [10000, 784]
    audio/train_data.npy   [60000, 112, 112]  spectrograms of noisy FSDD spoken digits
    audio/test_data.npy    [10000, 112, 112]
    train_labels.npy       [60000]            digit 0..9
    test_labels.npy        [10000]

Any numeric dtype is accepted; floats must be finite, labels whole numbers in 0..9, and the three
files of a split must agree on N.

As MultiBench's ``datasets/avmnist/get_data.py``: both modalities are divided by 255 (no other
normalisation), the image is reshaped to 28x28, a channel axis is added (here last: image
[28, 28, 1], audio [112, 112, 1]), train is split in order into train ``[0, N - 5000)`` and
valid (``val``) the last 5,000 (55,000 / 5,000), and test is the 10,000 test rows. Every sample
has both modalities (``present`` all True); missingness comes from the training protocol.

The tfds copy stores the raw values as float32 (at most 3.6 GB for the full data; array_record
compresses). Preparing writes about 250 rows/s on 2 CPU cores (a few minutes for the 70,000
rows); loading holds all splits in host memory (about 3.7 GB), ~0.4 ms per row.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import tensorflow_datasets as tfds

from mmjax.data import prepared
from mmjax.data.base import Dataset, DatasetSpec, Split
from mmjax.errors import UserError

NAME = "multibench_avmnist"
MODALITIES = ("image", "audio")
SHAPES = ((28, 28, 1), (112, 112, 1))
WHERE = ("with MultiBench: avmnist.tar.gz from the AV-MNIST Google Drive link in the README of "
         "github.com/pliang279/MultiBench")
LAYOUT = "image/{train,test}_data.npy, audio/{train,test}_data.npy, {train,test}_labels.npy"
HOW = ("  how: MultiBench's avmnist npy files, divided by 255 as MultiBench does; val = the last "
       "5,000 training rows")
# Per split: (relative path, per-row shape) of image, audio, labels.
FILES = {
    split: ((f"image/{split}_data.npy", (784,)), (f"audio/{split}_data.npy", (112, 112)),
            (f"{split}_labels.npy", ()))
    for split in ("train", "test")
}


def read_source(folder: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """Validates MultiBench's AV-MNIST files and returns them memory-mapped.

    Args:
      folder: the extracted ``avmnist`` folder.

    Returns:
      ``{"train"|"test": {"image": [N, 784], "audio": [N, 112, 112], "label": int32 [N]}}``;
      image and audio are read-only memory maps in the files' own dtypes.

    Raises:
      UserError: one line naming the file and the problem (missing folder or file, unreadable
        file, wrong shape or dtype, rows that disagree, NaN/inf, labels out of 0..9).
    """
    folder = pathlib.Path(folder).expanduser()
    prepared.require_dir(folder, NAME, WHERE, LAYOUT)
    out = {}
    for split, entries in FILES.items():
        arrays, n_of = {}, None
        for key, (rel, row_shape) in zip(("image", "audio", "label"), entries):
            file = folder / rel
            prepared.require_file(file, NAME, WHERE)
            x = _load_npy(file)
            if x.ndim != 1 + len(row_shape) or x.shape[1:] != row_shape:
                want = "[N]" if not row_shape else f"[N, {', '.join(map(str, row_shape))}]"
                raise UserError(f"{file}: shape {list(x.shape)}, expected {want}")
            if x.dtype.kind not in "iuf":
                raise UserError(f"{file}: dtype {x.dtype}, expected an integer or float dtype")
            if n_of is None:
                n_of = (len(x), file)
            elif len(x) != n_of[0]:
                raise UserError(f"{file}: {len(x)} rows, but {n_of[1]} has {n_of[0]}")
            if key == "label":
                x = prepared.check_labels(x, file, 10)
            else:
                prepared.check_finite(x, file)
            arrays[key] = x
        out[split] = arrays
    return out


def _load_npy(file: pathlib.Path) -> np.ndarray:
    try:
        return np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{file}: not a readable .npy array ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''})") from e


class MmjaxMultibenchAvmnist(tfds.core.GeneratorBasedBuilder):
    """MultiBench AV-MNIST: raw image rows and spectrograms, as the user's npy files hold them."""

    name = "mmjax_multibench_avmnist"
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"Use `mmjax data prepare {NAME} --from FOLDER` ({WHERE})."

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="MultiBench's AV-MNIST: MNIST with PCA energy removed + noisy FSDD "
                        "spectrograms; raw values (divide by 255).",
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Scalar(np.int32),
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.float32),
                "audio": tfds.features.Tensor(shape=(112, 112), dtype=np.float32),
                "label": tfds.features.ClassLabel(num_classes=10),
            }),
            homepage="https://github.com/pliang279/MultiBench",
        )

    def _split_generators(self, dl_manager):
        data = read_source(dl_manager.manual_dir)
        return {s: self._generate_examples(data[s]) for s in ("train", "test")}

    def _generate_examples(self, data):
        for i in range(len(data["label"])):
            yield i, {"id": i, "image": np.asarray(data["image"][i], np.float32).reshape(28, 28, 1),
                      "audio": np.asarray(data["audio"][i], np.float32),
                      "label": int(data["label"][i])}


def prepare(source: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Validates the files in ``source`` and (re)writes the tfds copy; returns its folder.

    Raises:
      UserError: a problem with the files (see :func:`read_source`).
    """
    source = pathlib.Path(source).expanduser().resolve()
    read_source(source)  # fail before tfds creates anything
    builder = prepared.prepare(MmjaxMultibenchAvmnist, prepared.data_root(data_dir), source)
    return pathlib.Path(builder.data_dir)


def build(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The folder of the prepared tfds copy.

    Raises:
      UserError: not prepared yet (the message gives the ``mmjax data prepare`` command).
    """
    return pathlib.Path(_builder(data_dir).data_dir)


def _builder(data_dir):
    return prepared.prepared(MmjaxMultibenchAvmnist, prepared.data_root(data_dir), NAME, WHERE)


def spec() -> DatasetSpec:
    """Modalities image [28, 28, 1] and audio [112, 112, 1]; 10-class classification."""
    return DatasetSpec(NAME, MODALITIES, SHAPES, "classification", 10)


def load(data_dir: str | os.PathLike | None = None, *, seed: int, num_valid: int) -> Dataset:
    """Loads the prepared copy into host memory, divided by 255, split as MultiBench does.

    Args:
      data_dir: mmjax data dir (default ``$MMJAX_DATA_DIR`` or ``~/.cache/mmjax``).
      seed: accepted for the common option set; the split is fixed, so it has no effect.
      num_valid: the last ``num_valid`` training rows form ``val`` (MultiBench: 5,000, the
        ``DataConfig`` default ``mmjax.data.load`` fills in).

    Returns:
      A Dataset with splits train / val / test, float32 inputs, ``present`` all True.

    Raises:
      UserError: not prepared, or ``num_valid`` not in ``[1, N_train)``.
    """
    del seed
    builder = _builder(data_dir)
    train, test = (prepared.read_split(builder, s) for s in ("train", "test"))
    n = len(train["label"])
    if not 0 < num_valid < n:
        raise UserError(f"{NAME}: num_valid must lie in [1, {n - 1}] for the {n} prepared training "
                        f"rows, got {num_valid} (MultiBench: 5,000 of 60,000)")
    cut = n - num_valid
    splits = {"train": _split(train, slice(0, cut)), "val": _split(train, slice(cut, n)),
              "test": _split(test, slice(None))}
    return Dataset(spec(), splits)


def _split(raw: dict[str, np.ndarray], rows: slice) -> Split:
    image = raw["image"][rows] / np.float32(255.0)
    audio = raw["audio"][rows, :, :, None] / np.float32(255.0)
    label = raw["label"][rows].astype(np.int32)
    return Split({"image": image, "audio": audio}, np.ones((len(label), 2), bool), label)


def _entry():
    from mmjax.config import ModelConfig, TrainConfig
    from mmjax.data import registry

    # LeNet-5 on the digits; MultiBench's 6-conv LeNet on the 112x112 spectrogram (192-d).
    encoders = {"image": "lenet5", "audio": "spec_lenet"}
    return registry.Entry(
        name=NAME, modalities=MODALITIES, task="classification", load=load, build=build, how=HOW,
        encoders=encoders, metrics=registry.CLASSIFICATION_METRICS,
        options=(*registry.COMMON_OPTIONS, "num_valid"), prepare=prepare,
        model=ModelConfig(encoders=tuple(encoders.values()), hidden=128),
        # ~7 epochs of MultiBench's 55,000 training pairs (not measured here: no data on our
        # machines).
        train=TrainConfig(steps=6000, batch_size=64, num_seeds=3, steps_per_call=10,
                          log_every=500, checkpoint_every=1000))


ENTRY = _entry()
