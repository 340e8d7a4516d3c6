"""UPMC Food-101 and N24News as pre-extracted features: one npz per dataset, in mmjax's layout.

Neither dataset circulates as features in a fixed format, so mmjax defines one (written by
``scripts/extract_food_features.py`` from the raw images and texts, for users who have them and
the two models). The folder given to ``mmjax data prepare food101_features --from FOLDER`` (or
``n24news_features``) holds ``food101_features.npz`` (or ``n24news_features.npz``) with::

    image  float16/32 [N, 512]   CLIP ViT-B/32 image embedding of the picture
                                 (openai/clip-vit-base-patch32, ``get_image_features``)
    text   float16/32 [N, 1024]  BERT-large [CLS] last hidden state of the text
                                 (bert-large-uncased, first 512 tokens)
    label  int [N]               class: 0..100 (Food-101's classes in sorted folder order) or
                                 0..23 (N24News' sections in sorted order)
    split  int [N]               0 = train, 1 = val, 2 = test
    id     str [N]               optional: the sample's image file name (ignored by the loader)

The file must load without pickle (``np.load(allow_pickle=False)``); features must be finite,
labels whole numbers in range, splits in {0, 1, 2} with train and test non-empty (Food-101 has no
published val split: then the loader returns train / test only). Every sample has both
modalities; the features are used as stored (CLIP and BERT outputs are not normalised further).
Modalities ("image", "text"), task ``classification``. Food-101's ~90k samples are 0.55 GB as
float32: the splits load into host memory.
"""

from __future__ import annotations

import os
import pathlib
import types

import numpy as np
import tensorflow_datasets as tfds

from mmjax.data import prepared
from mmjax.data.base import Dataset, DatasetSpec, Split
from mmjax.errors import UserError

MODALITIES = ("image", "text")
DIMS = {"image": 512, "text": 1024}
SPLITS = ("train", "val", "test")
LAYOUT = ("{name}.npz with image [N, 512], text [N, 1024], label [N], split [N] (0 train, 1 val, "
          "2 test); write it with scripts/extract_food_features.py")


def read_source(folder: str | os.PathLike, name: str, num_classes: int, where: str) -> dict:
    """Validates ``<folder>/<name>.npz`` and returns its arrays.

    Returns:
      ``{"image": f32[N, 512], "text": f32[N, 1024], "label": i32[N], "split": i8[N]}``.

    Raises:
      UserError: one line naming the file and the problem (missing folder, file or key, not an
        npz, wrong shape or dtype, rows that disagree, NaN/inf, labels or split codes out of range).
    """
    folder = pathlib.Path(folder).expanduser()
    prepared.require_dir(folder, name, where, LAYOUT.format(name=name))
    file = folder / f"{name}.npz"
    prepared.require_file(file, name, where)
    try:
        z = np.load(file, allow_pickle=False)
        keys = set(z.files)
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{file}: not a readable .npz archive ({type(e).__name__})") from e
    out = {}
    with z:
        for key, shape in (("image", (DIMS["image"],)), ("text", (DIMS["text"],)),
                           ("label", ()), ("split", ())):
            if key not in keys:
                raise UserError(f"{file}: no array {key!r} (found {sorted(keys)})")
            try:
                x = z[key]
            except ValueError as e:  # object arrays need pickle: not allowed
                raise UserError(f"{file}: array {key!r} is not a plain numeric array") from e
            if x.ndim != 1 + len(shape) or x.shape[1:] != shape:
                want = "[N]" if not shape else f"[N, {shape[0]}]"
                raise UserError(f"{file}: {key!r} has shape {list(x.shape)}, expected {want}")
            if x.dtype.kind not in "iuf":
                raise UserError(f"{file}: {key!r} has dtype {x.dtype}, expected numbers")
            if out and len(x) != len(out["image"]):
                raise UserError(f"{file}: {key!r} has {len(x)} rows, 'image' has "
                                f"{len(out['image'])}")
            out[key] = x
    for key in ("image", "text"):
        x = out[key].astype(np.float32, copy=False)
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise UserError(f"{file}: {key!r} has NaN or inf values (first at row "
                            f"{int(np.argmax(bad))})")
        out[key] = x
    out["label"] = _whole(out["label"], file, "label", num_classes)
    out["split"] = _whole(out["split"], file, "split", 3).astype(np.int8)
    for code, s in ((0, "train"), (2, "test")):
        if not (out["split"] == code).any():
            raise UserError(f"{file}: no {s} rows ('split' == {code})")
    return out


def _whole(y: np.ndarray, file: pathlib.Path, key: str, limit: int) -> np.ndarray:
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and np.array_equal(y, np.round(y))):
        raise UserError(f"{file}: {key!r} must hold whole numbers")
    if len(y) and (y.min() < 0 or y.max() >= limit):
        raise UserError(f"{file}: {key!r} must lie in [0, {limit - 1}], found "
                        f"{y.min():g}..{y.max():g}")
    return y.astype(np.int32)


class _FeaturesBuilder:
    """The tfds builder of one feature dataset; subclasses set ``name``, ``DATASET``, ``CLASSES``,
    ``WHERE`` and ``HOMEPAGE``."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{self.DATASET}: CLIP ViT-B/32 image (512) and BERT-large [CLS] text "
                        "(1024) features in mmjax's npz layout.",
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Scalar(np.int32),
                "image": tfds.features.Tensor(shape=(DIMS["image"],), dtype=np.float32),
                "text": tfds.features.Tensor(shape=(DIMS["text"],), dtype=np.float32),
                "label": tfds.features.ClassLabel(num_classes=self.CLASSES),
            }),
            homepage=self.HOMEPAGE,
        )

    def _split_generators(self, dl_manager):
        data = read_source(dl_manager.manual_dir, self.DATASET, self.CLASSES, self.WHERE)
        rows = {s: np.flatnonzero(data["split"] == code) for code, s in enumerate(SPLITS)}
        # tfds refuses empty splits: a file without val rows gets no val split.
        return {s: self._generate_examples(data, r) for s, r in rows.items() if len(r)}

    def _generate_examples(self, data, rows):
        for i in rows:
            i = int(i)
            yield i, {"id": i, "image": data["image"][i], "text": data["text"][i],
                      "label": int(data["label"][i])}


class MmjaxFood101Features(_FeaturesBuilder, tfds.core.GeneratorBasedBuilder):
    """UPMC Food-101 (image + recipe-page text), 101 classes, as pre-extracted features."""

    name = "mmjax_food101_features"
    DATASET = "food101_features"
    CLASSES = 101
    WHERE = ("as UPMC Food-101 raw images and texts (visiir.isir.upmc.fr, Wang et al. 2015); "
             "extract the features with scripts/extract_food_features.py")
    HOMEPAGE = "https://visiir.isir.upmc.fr/"
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Use `mmjax data prepare food101_features --from FOLDER`."


class MmjaxN24newsFeatures(_FeaturesBuilder, tfds.core.GeneratorBasedBuilder):
    """N24News (New York Times image + text news), 24 sections, as pre-extracted features."""

    name = "mmjax_n24news_features"
    DATASET = "n24news_features"
    CLASSES = 24
    WHERE = ("as N24News raw news and images (github.com/billywzh717/N24News, Wang et al. 2022); "
             "extract the features with scripts/extract_food_features.py")
    HOMEPAGE = "https://github.com/billywzh717/N24News"
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Use `mmjax data prepare n24news_features --from FOLDER`."


_BUILDERS = {"food101_features": MmjaxFood101Features, "n24news_features": MmjaxN24newsFeatures}


def get(name: str) -> types.SimpleNamespace:
    """The registry's view of one dataset: ``prepare``, ``build``, ``load``, ``spec``, ``HOW``."""
    cls = _BUILDERS[name]

    def prepare(source, data_dir=None) -> pathlib.Path:
        """Validates ``<source>/<name>.npz`` and (re)writes the tfds copy; returns its folder."""
        source = pathlib.Path(source).expanduser().resolve()
        read_source(source, name, cls.CLASSES, cls.WHERE)  # fail before tfds creates anything
        return pathlib.Path(prepared.prepare(cls, prepared.data_root(data_dir), source).data_dir)

    def builder(data_dir):
        return prepared.prepared(cls, prepared.data_root(data_dir), name, cls.WHERE)

    def build(data_dir=None) -> pathlib.Path:
        """The prepared copy's folder (``UserError`` with the prepare command if absent)."""
        return pathlib.Path(builder(data_dir).data_dir)

    def spec() -> DatasetSpec:
        """Modalities image [512] and text [1024]; classification."""
        return DatasetSpec(name, MODALITIES, ((DIMS["image"],), (DIMS["text"],)),
                           "classification", cls.CLASSES)

    def load(data_dir=None, *, seed: int) -> Dataset:
        """The prepared splits in host memory (``val`` only if the file has val rows)."""
        del seed  # the split is the file's
        b = builder(data_dir)
        splits = {}
        for s in SPLITS:
            if s in b.info.splits:
                raw = prepared.read_split(b, s)
                splits[s] = Split({"image": raw["image"], "text": raw["text"]},
                                  np.ones((len(raw["label"]), 2), bool),
                                  raw["label"].astype(np.int32))
        return Dataset(spec(), splits)

    how = (f"  how: {name}.npz in mmjax's feature layout (CLIP ViT-B/32 image 512-d, BERT-large "
           f"[CLS] text 1024-d, written by scripts/extract_food_features.py), used as stored")
    return types.SimpleNamespace(prepare=prepare, build=build, load=load, spec=spec, HOW=how)


def _entry(name: str):
    from mmjax.data import registry

    found = get(name)
    shapes = registry.BenchShapes(  # RAML's widths; mfeat's MLP-encoder configs
        DatasetSpec("food_features", MODALITIES, ((DIMS["image"],), (DIMS["text"],)),
                    "classification", MmjaxFood101Features.CLASSES), "mfeat")
    return registry.Entry(
        name=name, modalities=MODALITIES, task="classification", load=found.load,
        build=found.build, how=found.HOW, encoders={m: "mlp" for m in MODALITIES},
        metrics=registry.CLASSIFICATION_METRICS, prepare=found.prepare,
        bench={"food_features": shapes})


ENTRIES = {name: _entry(name) for name in _BUILDERS}
