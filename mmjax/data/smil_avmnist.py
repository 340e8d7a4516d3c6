"""SMIL's avMNIST: MNIST PNGs + FSDD spoken digits, paired as SMIL's released code pairs them.

Published: the avMNIST Google Drive link in the README of github.com/mengmenm/SMIL (org copy
deep-real/SMIL). The folder given to ``mmjax data prepare smil_avmnist --from FOLDER`` holds::

    mnist/{train,test}/<digit>/*.png                       28x28 grayscale (mode L) MNIST digits
    sound_450/{train,test}/<digit>/<digit>_<speaker>_<idx>.wav   FSDD recordings (mono)

(speakers jackson / nicolas / theo; FSDD's ``idx < 15`` are the test recordings: 105 train and
45 test per digit). Only ``*.png`` / ``*.wav`` files count; lists are sorted by file name (Python
string order, as SMIL's ``sorted(os.listdir(...))``).

Pairing and protocol, as SMIL's ``dataset/soundmnist.py`` and ``meta_training_dataset.py``
(reference notes §5.7), per digit in order 0..9:

- train = the first 105 images of ``mnist/train/<digit>``. The first ``per_class_num`` of them are
  paired with sound: the first ``per_class_num / 3`` recordings of jackson, then of nicolas, then
  of the remaining speaker (theo), in file-name order, image ``j`` with recording ``j``. The other
  ``105 - per_class_num`` images have no sound: ``present[:, audio]`` False, audio zero-filled.
  ``per_class_num`` 15 gives 150 pairs (~14 %), 21 (the default) 210 pairs (20 %).
- test = the last 45 images of ``mnist/test/<digit>`` paired with all 45 test recordings of that
  digit (both modalities present). SMIL's own missing-sound evaluation
  (``meta_testing_dataset.py``) instead uses the *first* 45 test images, image only; here that is
  the ``image`` subset of this test split, on the last 45 images. There is no validation split:
  SMIL has none (it selects checkpoints on test accuracy).

Inputs: images ``(x / 255 - 0.5) / 0.5`` (SMIL's ToTensor + Normalize(0.5, 0.5)) as [28, 28, 1];
audio a 20x20 MFCC ([coefficients, frames, 1]) from :mod:`mmjax.data.mfcc`, ``mfcc_variant``
``"mmjax"`` (default, time-normalised) or ``"smil"`` (SMIL's librosa-0.7-default recipe), then
standardised per coefficient with the mean and std of the *paired training* recordings (SMIL
applies Normalize(0.5, 0.5) to the raw MFCC; standardising keeps the dB-scale values of the
``smil`` variant in a trainable range). Both variants are computed once at prepare time.
"""

from __future__ import annotations

import os
import pathlib
import re
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from mmjax.config import DataConfig, field_choices
from mmjax.data import mfcc as mfcc_lib
from mmjax.data import prepared
from mmjax.data.base import Dataset, DatasetSpec, Split
from mmjax.errors import UserError

NAME = "smil_avmnist"
MODALITIES = ("image", "audio")
SHAPES = ((28, 28, 1), (20, 20, 1))
TRAIN_IMAGES, TEST_IMAGES = 105, 45  # per digit
SOUNDS_PER_SPEAKER, TEST_SOUNDS = 35, 45  # per digit: train recordings per speaker group; test
SPEAKERS = ("jackson", "nicolas")  # SMIL's third group is every other speaker (theo)
WHERE = "with SMIL: the avMNIST Google Drive link in the README of github.com/mengmenm/SMIL"
LAYOUT = "mnist/{train,test}/<digit>/*.png, sound_450/{train,test}/<digit>/*.wav"
HOW = ("  how: SMIL's avMNIST PNGs + FSDD wavs paired as SMIL's code; first per_class_num of 105 "
       "train images per digit have sound; test = last 45 images + 45 recordings per digit")
_WAV_NAME = re.compile(r"^(\d)_([^_]+)_(\d+)\.wav$")


def _files(folder: pathlib.Path, suffix: str) -> list[pathlib.Path]:
    prepared.require_dir(folder, NAME, WHERE, LAYOUT)
    return [folder / n for n in sorted(os.listdir(folder)) if n.endswith(suffix)]


def _image(file: pathlib.Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(file) as img:
            img.load()
    except (OSError, ValueError) as e:
        raise UserError(f"{file}: not a readable PNG ({type(e).__name__})") from e
    if img.mode != "L" or img.size != (28, 28):
        raise UserError(f"{file}: image is {img.size[0]}x{img.size[1]} mode {img.mode}, "
                        "expected 28x28 grayscale (mode L)")
    return np.asarray(img, np.uint8)


def _wave(file: pathlib.Path) -> tuple[np.ndarray, int]:
    import scipy.io.wavfile

    try:
        sr, x = scipy.io.wavfile.read(file)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"{file}: not a readable WAV file ({type(e).__name__})") from e
    if x.ndim != 1:
        raise UserError(f"{file}: {x.shape[1]} channels, expected mono")
    if len(x) == 0:
        raise UserError(f"{file}: empty recording")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise UserError(f"{file}: NaN or inf samples")
        return x.astype(np.float64), int(sr)
    if x.dtype == np.uint8:
        return (x.astype(np.float64) - 128.0) / 128.0, int(sr)
    return x.astype(np.float64) / float(np.iinfo(x.dtype).max + 1), int(sr)


def _sound_files(folder: pathlib.Path, digit: int) -> list[pathlib.Path]:
    files = _files(folder, ".wav")
    for f in files:
        m = _WAV_NAME.match(f.name)
        if m is None:
            raise UserError(f"{f}: file name must be <digit>_<speaker>_<idx>.wav")
        if int(m.group(1)) != digit:
            raise UserError(f"{f}: file name says digit {m.group(1)} but it is in folder {digit}")
    return files


def read_source(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """Validates SMIL's avMNIST folder and computes everything the tfds copy stores.

    Args:
      folder: the folder holding ``mnist/`` and ``sound_450/``.

    Returns:
      ``train_image`` uint8 [1050, 28, 28] and ``train_label``; ``sound_mmjax``/``sound_smil``
      float32 [1050, 20, 20] raw MFCCs of the usable training recordings (35 per speaker group
      per digit) with ``sound_label``, ``sound_speaker`` (0 jackson, 1 nicolas, 2 other) and
      ``sound_rank`` (position within its speaker group); ``test_image`` [450, 28, 28],
      ``test_label``, ``test_mmjax``/``test_smil`` [450, 20, 20].

    Raises:
      UserError: one line naming the file or folder at fault (missing, unreadable, wrong size,
        mode or name, NaN/inf samples, too few images or recordings).
    """
    root = pathlib.Path(folder).expanduser()
    prepared.require_dir(root, NAME, WHERE, LAYOUT)
    listing = {"train_image": [], "test_image": [], "sound": [], "test_sound": []}
    meta = []  # (label, speaker group, rank) per usable training recording
    for d in range(10):
        f = root / "mnist" / "train" / str(d)
        imgs = _files(f, ".png")
        if len(imgs) < TRAIN_IMAGES:
            raise UserError(f"{f}: {len(imgs)} PNG images, SMIL's protocol needs {TRAIN_IMAGES}")
        listing["train_image"] += imgs[:TRAIN_IMAGES]
        f = root / "mnist" / "test" / str(d)
        imgs = _files(f, ".png")
        if len(imgs) < TEST_IMAGES:
            raise UserError(f"{f}: {len(imgs)} PNG images, SMIL's protocol needs {TEST_IMAGES}")
        listing["test_image"] += imgs[-TEST_IMAGES:]
        f = root / "sound_450" / "train" / str(d)
        groups = [[], [], []]
        for s in _sound_files(f, d):
            speaker = s.name.split("_")[1]
            groups[SPEAKERS.index(speaker) if speaker in SPEAKERS else 2].append(s)
        for g, files in enumerate(groups):
            if len(files) < SOUNDS_PER_SPEAKER:
                who = SPEAKERS[g] if g < 2 else "the third speaker (theo)"
                raise UserError(f"{f}: {len(files)} recordings of {who}, SMIL's protocol needs "
                                f"{SOUNDS_PER_SPEAKER}")
            listing["sound"] += files[:SOUNDS_PER_SPEAKER]
            meta += [(d, g, r) for r in range(SOUNDS_PER_SPEAKER)]
        f = root / "sound_450" / "test" / str(d)
        files = _sound_files(f, d)
        if len(files) != TEST_SOUNDS:
            raise UserError(f"{f}: {len(files)} recordings, expected {TEST_SOUNDS} (paired one to "
                            "one with the last 45 test images)")
        listing["test_sound"] += files
    out = {"train_image": np.stack([_image(f) for f in listing["train_image"]]),
           "train_label": np.repeat(np.arange(10, dtype=np.int32), TRAIN_IMAGES),
           "test_image": np.stack([_image(f) for f in listing["test_image"]]),
           "test_label": np.repeat(np.arange(10, dtype=np.int32), TEST_IMAGES)}
    meta = np.asarray(meta, np.int32)
    out.update(sound_label=meta[:, 0], sound_speaker=meta[:, 1], sound_rank=meta[:, 2])
    for key, prefix in (("sound", "sound"), ("test_sound", "test")):
        waves = [_wave(f) for f in listing[key]]
        for variant in mfcc_lib.VARIANTS:
            out[f"{prefix}_{variant}"] = np.stack([mfcc_lib.mfcc(w, sr, variant)
                                                   for w, sr in waves])
    return out


class MmjaxSmilAvmnist(tfds.core.GeneratorBasedBuilder):
    """SMIL's avMNIST: train images, usable train recordings (both MFCC variants), test pairs."""

    name = "mmjax_smil_avmnist"
    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"Use `mmjax data prepare {NAME} --from FOLDER` ({WHERE})."

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description="SMIL's avMNIST: MNIST PNGs and FSDD recordings as raw 20x20 MFCCs (two "
                        "variants); splits train_images / train_sounds / test (pairs).",
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Scalar(np.int32),
                "label": tfds.features.ClassLabel(num_classes=10),
                "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
                **{f"audio_{v}": tfds.features.Tensor(shape=(20, 20), dtype=np.float32)
                   for v in mfcc_lib.VARIANTS},
                "speaker": tfds.features.Scalar(np.int32),
                "rank": tfds.features.Scalar(np.int32),
            }),
            homepage="https://github.com/mengmenm/SMIL",
        )

    def _split_generators(self, dl_manager):
        with np.load(pathlib.Path(dl_manager.manual_dir) / f"{NAME}.npz") as z:
            data = dict(z)
        return {s: self._generate_examples(data, s)
                for s in ("train_images", "train_sounds", "test")}

    def _generate_examples(self, data, split):
        blank_img, blank_audio = np.zeros((28, 28, 1), np.uint8), np.zeros((20, 20), np.float32)
        n = len(data["train_label" if split == "train_images" else
                     "sound_label" if split == "train_sounds" else "test_label"])
        for i in range(n):
            ex = {"id": i, "image": blank_img, "speaker": -1, "rank": -1,
                  **{f"audio_{v}": blank_audio for v in mfcc_lib.VARIANTS}}
            if split == "train_images":
                ex.update(label=int(data["train_label"][i]),
                          image=data["train_image"][i][..., None])
            elif split == "train_sounds":
                ex.update(label=int(data["sound_label"][i]), speaker=int(data["sound_speaker"][i]),
                          rank=int(data["sound_rank"][i]),
                          **{f"audio_{v}": data[f"sound_{v}"][i] for v in mfcc_lib.VARIANTS})
            else:
                ex.update(label=int(data["test_label"][i]), image=data["test_image"][i][..., None],
                          **{f"audio_{v}": data[f"test_{v}"][i] for v in mfcc_lib.VARIANTS})
            yield i, ex


def prepare(source: str | os.PathLike, data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Validates ``source``, computes both MFCC variants and (re)writes the tfds copy.

    Returns:
      The prepared tfds folder.

    Raises:
      UserError: a problem with the files (see :func:`read_source`).
    """
    data = read_source(source)
    root = prepared.data_root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:  # the decoded source, only while preparing
        np.savez(pathlib.Path(tmp) / f"{NAME}.npz", **data)
        builder = prepared.prepare(MmjaxSmilAvmnist, root, pathlib.Path(tmp))
    return pathlib.Path(builder.data_dir)


def _builder(data_dir):
    return prepared.prepared(MmjaxSmilAvmnist, prepared.data_root(data_dir), NAME, WHERE)


def build(data_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The folder of the prepared tfds copy; ``UserError`` (with the prepare command) if absent."""
    return pathlib.Path(_builder(data_dir).data_dir)


def spec() -> DatasetSpec:
    """Modalities image [28, 28, 1] and audio [20, 20, 1] (MFCC); 10-class classification."""
    return DatasetSpec(NAME, MODALITIES, SHAPES, "classification", 10)


def load(data_dir: str | os.PathLike | None = None, *, seed: int, per_class_num: int,
         mfcc_variant: str) -> Dataset:
    """Loads the prepared copy with SMIL's pairing (see the module docstring).

    Args:
      data_dir: mmjax data dir (default ``$MMJAX_DATA_DIR`` or ``~/.cache/mmjax``).
      seed: accepted for the common option set; the protocol is deterministic, so no effect.
      per_class_num: training images per digit paired with sound; a multiple of 3 in [3, 105].
      mfcc_variant: ``"mmjax"`` or ``"smil"`` (:mod:`mmjax.data.mfcc`).

    Returns:
      A Dataset with splits train (1,050; audio present on ``10 * per_class_num``) and test (450
      pairs).

    Raises:
      UserError: not prepared, or a bad option value.
    """
    del seed
    if isinstance(per_class_num, bool) or not isinstance(per_class_num, (int, np.integer)) \
            or not 3 <= per_class_num <= TRAIN_IMAGES or per_class_num % 3:
        raise UserError(f"{NAME}: per_class_num must be a multiple of 3 in [3, {TRAIN_IMAGES}] "
                        f"(SMIL takes per_class_num/3 recordings of each speaker), "
                        f"got {per_class_num!r}")
    variants = field_choices(DataConfig, "mfcc_variant")  # mmjax.data.load passes no DataConfig
    if mfcc_variant not in variants:
        raise UserError(f"{NAME}: unknown mfcc_variant {mfcc_variant!r}; valid: "
                        f"{', '.join(variants)}")
    builder = _builder(data_dir)
    raw = {s: prepared.read_split(builder, s) for s in ("train_images", "train_sounds", "test")}
    key, k = f"audio_{mfcc_variant}", per_class_num // 3
    imgs, sounds = raw["train_images"], raw["train_sounds"]
    audio = np.zeros((len(imgs["label"]), 20, 20), np.float32)
    present = np.zeros((len(imgs["label"]), 2), bool)
    present[:, 0] = True
    for d in range(10):
        # jackson's first k, then nicolas', then theo's, each in file-name order (rank).
        pick = [np.flatnonzero((sounds["label"] == d) & (sounds["speaker"] == g)
                               & (sounds["rank"] == r))[0] for g in range(3) for r in range(k)]
        rows = d * TRAIN_IMAGES + np.arange(per_class_num)
        audio[rows] = sounds[key][pick]
        present[rows, 1] = True
    paired = audio[present[:, 1]]
    mean = paired.mean(axis=(0, 2), keepdims=True)[0]  # per coefficient: [20, 1]
    std = np.maximum(paired.std(axis=(0, 2), keepdims=True)[0], 1e-6)
    audio = np.where(present[:, 1, None, None], (audio - mean) / std, 0.0).astype(np.float32)
    test = raw["test"]
    splits = {
        "train": Split({"image": _image_input(imgs["image"]), "audio": audio[..., None]},
                       present, imgs["label"].astype(np.int32)),
        "test": Split({"image": _image_input(test["image"]),
                       "audio": ((test[key] - mean) / std).astype(np.float32)[..., None]},
                      np.ones((len(test["label"]), 2), bool), test["label"].astype(np.int32)),
    }
    return Dataset(spec(), splits)


def _image_input(u8: np.ndarray) -> np.ndarray:
    return ((u8.astype(np.float32) / 255.0 - 0.5) / 0.5).astype(np.float32)


def _entry():
    from mmjax.config import ModelConfig, TrainConfig
    from mmjax.data import registry

    return registry.Entry(
        name=NAME, modalities=MODALITIES, task="classification", load=load, build=build, how=HOW,
        # SMIL's encoders, as avmnist_offline (the same shapes).
        encoders={"image": "lenet5", "audio": "sound_cnn"},
        metrics=registry.CLASSIFICATION_METRICS,
        options=(*registry.COMMON_OPTIONS, "per_class_num", "mfcc_variant"), prepare=prepare,
        model=ModelConfig(hidden=64, dropout=0.0),
        # ~36 epochs of SMIL's 1,050 training images, as avmnist_offline's schedule.
        train=TrainConfig(steps=600, batch_size=64, num_seeds=3, steps_per_call=10,
                          log_every=100, checkpoint_every=200))


ENTRY = _entry()
