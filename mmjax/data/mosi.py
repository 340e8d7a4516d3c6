"""CMU-MOSI and CMU-MOSEI from the pickles MultiBench and MMSA circulate: padded sequences + lengths.

Four registry names, each prepared from one pickle (the file, or a folder holding it under one of
the names below) with ``mmjax data prepare NAME --from PATH``:

==================  =============================================  =================================
name                files (first found in a folder)                layout
==================  =============================================  =================================
multibench_mosi     ``mosi_raw.pkl``, ``mosi_data.pkl``            MultiBench (reference notes §6.1)
multibench_mosei    ``mosei_senti_data.pkl``, ``mosei_raw.pkl``    MultiBench
mmsa_mosi           ``aligned_50.pkl``, ``unaligned_50.pkl``       MMSA (thuiar/MMSA, §1.6)
mmsa_mosei          ``aligned_50.pkl``, ``unaligned_50.pkl``       MMSA
==================  =============================================  =================================

Both layouts are a dict ``{"train", "valid", "test"}`` of dicts of numpy arrays.

- **MultiBench**: ``vision`` [N, T, Dv], ``audio`` [N, T, Da], ``text`` [N, T, Dt] (T = 50 in the
  circulating files; ``mosi_raw.pkl``: Dv 35 Facet, Da 74 COVAREP, Dt 300 GloVe; ``mosi_data.pkl``:
  20 / 5 / 300), ``labels`` [N], [N, 1] or [N, 1, 1] (sentiment in [-3, 3]), ``id`` (ignored).
  As MultiBench's ``datasets/affect/get_data.py`` (defaults ``aligned=True``, ``z_norm=False``):
  samples whose text is all zero are dropped; ``audio == -inf`` is set to 0; the sequences are
  left-padded, and every modality's valid part starts at the first non-zero text step.
- **MMSA**: ``text`` [N, Tt, Dt] (768 BERT or 300 GloVe), ``audio`` [N, Ta, Da], ``vision``
  [N, Tv, Dv] (MOSI: 5 / 20, MOSEI: 74 / 35; aligned: Ta = Tv = Tt = 50), ``regression_labels``
  [N]; optional ``audio_lengths`` / ``vision_lengths`` [N] (unaligned files), ``text_bert``
  [N, 3, Tt] (token ids, attention mask, segment ids), ``id``, ``raw_text``,
  ``classification_labels``, ``annotations`` (ignored). As MMSA's ``data_loader.py``:
  ``audio == -inf`` is set to 0; sequences are right-padded; the text length is the attention
  mask's sum (else the last non-zero step + 1); audio / vision lengths are the given ones, else
  the text length when the modality has the text's T (aligned), else its last non-zero step + 1.
  Steps past a length are set to zero.

What mmjax stores (the batch contract for sequences, ``mmjax.data.base.Split``): modalities
("audio", "vision", "text") -- the A, V, L order of RedCore's rates -- each padded ``[N, T, D]``
float32 with the valid steps first and zeros after, lengths in ``inputs["audio_len"]`` etc.
(int32 [N]) and time axis 1; a modality with length 0 is absent (``present`` False). Every
non-finite value other than audio ``-inf`` is an error naming the file, split and key.

Label views (option ``label_view``): ``regression`` (default; float sentiment, L1 loss, the
MOSI/MOSEI metrics of ``mmjax.metrics.regression_metrics``), ``2class`` (``y > 0`` vs ``y <= 0``,
MultiBench's classification view), ``2class_non0`` (samples with ``y == 0`` dropped, ``y > 0`` vs
``y < 0``: the acc-2 "non0" protocol) and ``3class`` (negative / neutral / positive by the sign of
``y``). Splits: ``valid`` is mmjax's ``val``. MOSEI aligned with BERT text is ~4 GB as float32:
it loads into host memory (about 1 GB per 6k samples); stream with ``prepared.iter_batches`` if
that is too much.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import pickle
import types

import numpy as np
import tensorflow_datasets as tfds

from mmjax.config import DataConfig, field_choices
from mmjax.data import prepared
from mmjax.data.base import Dataset, DatasetSpec, Split, length_key
from mmjax.errors import UserError

MODALITIES = ("audio", "vision", "text")
SOURCE_SPLITS = {"train": "train", "valid": "val", "test": "test"}
LABEL_RANGE = 3.0
_MULTIBENCH = "MultiBench's datasets/affect pickles (Drive links in the README of " \
              "github.com/pliang279/MultiBench)"
_MMSA = "MMSA's processed features (links in the README of github.com/thuiar/MMSA)"
# name -> (layout, candidate file names, where published, dataset)
DATASETS = {
    "multibench_mosi": ("multibench", ("mosi_raw.pkl", "mosi_data.pkl"), _MULTIBENCH, "CMU-MOSI"),
    "multibench_mosei": ("multibench", ("mosei_senti_data.pkl", "mosei_raw.pkl"), _MULTIBENCH,
                         "CMU-MOSEI"),
    "mmsa_mosi": ("mmsa", ("aligned_50.pkl", "unaligned_50.pkl"), _MMSA + ", MOSI/Processed/",
                  "CMU-MOSI"),
    "mmsa_mosei": ("mmsa", ("aligned_50.pkl", "unaligned_50.pkl"), _MMSA + ", MOSEI/Processed/",
                   "CMU-MOSEI"),
}


def source_file(source: str | os.PathLike, name: str) -> pathlib.Path:
    """The pickle: ``source`` itself, or the first of the dataset's file names in folder ``source``."""
    source = pathlib.Path(source).expanduser()
    _, files, where, _ = DATASETS[name]
    if source.is_file():
        return source
    prepared.require_dir(source, name, where, " or ".join(files))
    for f in files:
        if (source / f).is_file():
            return source / f
    raise UserError(f"{source}: none of {', '.join(files)} found (part of {name}, published "
                    f"{where})")


def _load_pickle(file: pathlib.Path):
    # The user's own file: pickle executes code from it, as MultiBench and MMSA do when they read it.
    try:
        with open(file, "rb") as f:
            try:
                return pickle.load(f)
            except UnicodeDecodeError:  # a Python 2 pickle
                f.seek(0)
                return pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError,
            TypeError, IndexError) as e:
        raise UserError(f"{file}: not a readable pickle ({type(e).__name__})") from e


def _array(d: dict, key: str, where: str, ndim: int | None = None) -> np.ndarray:
    if key not in d:
        raise UserError(f"{where}: no key {key!r} (found {sorted(map(str, d))})")
    try:
        x = np.asarray(d[key])
    except ValueError as e:  # ragged lists
        raise UserError(f"{where}: {key!r} is not a rectangular array") from e
    if x.dtype.kind not in "iuf":
        raise UserError(f"{where}: {key!r} has dtype {x.dtype}, expected numbers")
    if ndim is not None and x.ndim != ndim:
        want = {1: "[N]", 3: "[N, T, D]"}[ndim]
        raise UserError(f"{where}: {key!r} has shape {list(x.shape)}, expected {want}")
    return x


def _finite(x: np.ndarray, where: str, key: str) -> None:
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise UserError(f"{where}: {key!r} has NaN or inf values (first at sample "
                        f"{int(np.argmax(bad))})")


def _last_nonzero(x: np.ndarray) -> np.ndarray:
    """1 + index of the last time step with a non-zero entry (0 if none): int32 [N]."""
    nz = np.any(x != 0, axis=2)  # [N, T]
    t = x.shape[1]
    return np.where(nz.any(1), t - np.argmax(nz[:, ::-1], axis=1), 0).astype(np.int32)


def _zero_beyond(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return np.where(np.arange(x.shape[1])[None, :, None] < lengths[:, None, None], x, 0)


def read_multibench(d: dict, where: str) -> dict:
    """One MultiBench split -> right-padded float32 sequences, lengths and labels (see module)."""
    seqs = {m: _array(d, m, where, 3) for m in MODALITIES}
    n, t = seqs["text"].shape[:2]
    for m, x in seqs.items():
        if x.shape[:2] != (n, t):
            raise UserError(f"{where}: {m!r} has shape {list(x.shape)}, but 'text' has "
                            f"[{n}, {t}, ...] (MultiBench's modalities share N and T)")
    labels = _array(d, "labels", where)
    if labels.size != n or labels.shape[:1] != (n,):
        raise UserError(f"{where}: 'labels' has shape {list(labels.shape)}, expected [{n}] "
                        f"(or [{n}, 1, 1])")
    labels = labels.reshape(n).astype(np.float32)
    audio = seqs["audio"].astype(np.float32)
    audio[audio == -np.inf] = 0.0  # MultiBench: audio[audio == -inf] = 0
    seqs = {"audio": audio, "vision": seqs["vision"].astype(np.float32),
            "text": seqs["text"].astype(np.float32)}
    for m, x in seqs.items():
        _finite(x, where, m)
    keep = np.any(seqs["text"].reshape(n, -1) != 0, axis=1)  # MultiBench's drop_entry
    nz = np.any(seqs["text"][keep] != 0, axis=2)
    start = np.argmax(nz, axis=1)  # first non-zero text step: the sequences are left-padded
    lengths = (t - start).astype(np.int32)
    idx = (start[:, None] + np.arange(t)[None, :]) % t  # roll each sample's valid part to the front
    out = {}
    for m, x in seqs.items():
        rolled = np.take_along_axis(x[keep], idx[:, :, None], axis=1)
        out[m] = _zero_beyond(rolled, lengths)
        out[length_key(m)] = lengths
    out["label"] = labels[keep]
    return out


def read_mmsa(d: dict, where: str) -> dict:
    """One MMSA split -> right-padded float32 sequences, lengths and labels (see module)."""
    seqs = {m: _array(d, m, where, 3).astype(np.float32) for m in MODALITIES}
    n = len(seqs["text"])
    for m, x in seqs.items():
        if len(x) != n:
            raise UserError(f"{where}: {m!r} has {len(x)} samples, 'text' has {n}")
    labels = _array(d, "regression_labels", where)
    if labels.size != n or labels.shape[:1] != (n,):
        raise UserError(f"{where}: 'regression_labels' has shape {list(labels.shape)}, "
                        f"expected [{n}]")
    seqs["audio"][seqs["audio"] == -np.inf] = 0.0  # MMSA: self.audio[self.audio == -np.inf] = 0
    for m, x in seqs.items():
        _finite(x, where, m)
    tt = seqs["text"].shape[1]
    if "text_bert" in d:
        bert = _array(d, "text_bert", where, 3)
        if bert.shape != (n, 3, tt):
            raise UserError(f"{where}: 'text_bert' has shape {list(bert.shape)}, expected "
                            f"[{n}, 3, {tt}]")
        lengths = {"text": bert[:, 1].sum(axis=1).astype(np.int32)}
    else:
        lengths = {"text": _last_nonzero(seqs["text"])}
    for m in ("audio", "vision"):
        t = seqs[m].shape[1]
        if f"{m}_lengths" in d:
            lengths[m] = _array(d, f"{m}_lengths", where, 1).astype(np.int32)
        elif t == tt:
            lengths[m] = lengths["text"]
        else:
            lengths[m] = _last_nonzero(seqs[m])
    out = {}
    for m, x in seqs.items():
        key = f"{m}_lengths" if m != "text" else "text_bert"
        if lengths[m].shape != (n,) or lengths[m].min(initial=0) < 0 \
                or lengths[m].max(initial=0) > x.shape[1]:
            raise UserError(f"{where}: {key!r} gives lengths outside [0, {x.shape[1]}] "
                            f"for {m!r} [N, {x.shape[1]}, D]")
        out[m] = _zero_beyond(x, lengths[m])
        out[length_key(m)] = lengths[m]
    out["label"] = labels.reshape(n).astype(np.float32)
    return out


def read_source(source: str | os.PathLike, name: str) -> dict:
    """Validates a MOSI/MOSEI pickle and returns ``{"train"|"val"|"test": arrays}`` (see module).

    Raises:
      UserError: one line naming the file (and split and key) and the problem: missing file,
        unreadable pickle, missing split or key, wrong shape or dtype, NaN/inf, labels outside
        [-3, 3], lengths out of range, shapes that differ between splits.
    """
    file = source_file(source, name)
    layout = DATASETS[name][0]
    data = _load_pickle(file)
    if not isinstance(data, dict) or not all(isinstance(data.get(s), dict) for s in SOURCE_SPLITS):
        found = sorted(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{file}: expected a dict with 'train', 'valid' and 'test' dicts, "
                        f"found {found}")
    read = read_multibench if layout == "multibench" else read_mmsa
    out, shapes = {}, None
    for src, split in SOURCE_SPLITS.items():
        where = f"{file} [{src!r}]"
        arrays = read(data[src], where)
        y = arrays["label"]
        if len(y) and (not np.isfinite(y).all() or np.abs(y).max() > LABEL_RANGE):
            raise UserError(f"{where}: labels must be finite sentiment scores in [-3, 3], found "
                            f"{np.nanmin(y):g}..{np.nanmax(y):g}")
        got = tuple(arrays[m].shape[1:] for m in MODALITIES)
        if shapes is not None and got != shapes:
            raise UserError(f"{where}: per-sample shapes {got} differ from 'train' {shapes}")
        shapes = got
        out[split] = arrays
    return out


@dataclasses.dataclass(eq=False)
class SequenceConfig(tfds.core.BuilderConfig):
    """A prepare of one pickle: its path and the per-sample [T, D] of each modality."""

    file: str = ""
    shapes: tuple = ()


class _SequenceBuilder:
    """Writes the sequences (right-padded) with their lengths; features from the config."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        feats = {"id": tfds.features.Scalar(np.int32),
                 "label": tfds.features.Scalar(np.float32)}
        for m, shape in zip(MODALITIES, self.builder_config.shapes):
            feats[m] = tfds.features.Tensor(shape=tuple(shape), dtype=np.float32)
            feats[length_key(m)] = tfds.features.Scalar(np.int32)
        return tfds.core.DatasetInfo(
            builder=self, description=f"{self.DATASET} sequences from {self.LAYOUT}'s pickle, "
                                      "right-padded, with lengths; sentiment in [-3, 3].",
            features=tfds.features.FeaturesDict(feats))

    def _split_generators(self, dl_manager):
        data = read_source(self.builder_config.file, self.name.removeprefix("mmjax_"))
        return {s: self._generate_examples(a) for s, a in data.items() if len(a["label"])}

    def _generate_examples(self, arrays):
        for i in range(len(arrays["label"])):
            yield i, {"id": i, **{k: v[i] for k, v in arrays.items()}}


def _builder_class(name: str):
    layout, _, _, dataset = DATASETS[name]
    return type(f"Mmjax{''.join(p.title() for p in name.split('_'))}",
                (_SequenceBuilder, tfds.core.GeneratorBasedBuilder),
                {"name": f"mmjax_{name}", "DATASET": dataset,
                 "LAYOUT": "MultiBench" if layout == "multibench" else "MMSA",
                 "MANUAL_DOWNLOAD_INSTRUCTIONS": f"Use `mmjax data prepare {name} --from PATH`.",
                 "__module__": __name__})


_BUILDERS = {name: _builder_class(name) for name in DATASETS}


def view_labels(label: np.ndarray, view: str) -> tuple[np.ndarray, np.ndarray]:
    """``(targets, keep)``: the labels of ``view`` and which samples it keeps (see module).

    Raises:
      UserError: an unknown view.
    """
    keep = np.ones(len(label), bool)
    if view == "regression":
        return label.astype(np.float32), keep
    if view == "2class":
        return (label > 0).astype(np.int32), keep
    if view == "2class_non0":
        keep = label != 0
        return (label[keep] > 0).astype(np.int32), keep
    if view == "3class":
        return (np.sign(label) + 1).astype(np.int32), keep
    # Reached from mmjax.data.load, which passes options without a DataConfig to check them.
    raise UserError(f"unknown data.label_view {view!r}; choose from "
                    f"{', '.join(field_choices(DataConfig, 'label_view'))}")


def get(name: str) -> types.SimpleNamespace:
    """The registry's view of one dataset: ``prepare``, ``build``, ``load``, ``spec``, ``HOW``."""
    cls = _BUILDERS[name]
    layout, files, where, dataset = DATASETS[name]

    def prepare(source, data_dir=None) -> pathlib.Path:
        """Validates the pickle and (re)writes the tfds copy; returns its folder."""
        file = source_file(source, name).resolve()
        data = read_source(file, name)  # fail before tfds creates anything
        shapes = tuple(data["train"][m].shape[1:] for m in MODALITIES)
        config = SequenceConfig(name=prepared.CONFIG_NAME, version=str(cls.VERSION),
                                file=str(file), shapes=shapes)
        del data
        return pathlib.Path(prepared.prepare(cls, prepared.data_root(data_dir), file.parent,
                                             config).data_dir)

    def builder(data_dir):
        return prepared.prepared(cls, prepared.data_root(data_dir), name, where, read_only=True)

    def build(data_dir=None) -> pathlib.Path:
        """The prepared copy's folder (``UserError`` with the prepare command if absent)."""
        return pathlib.Path(builder(data_dir).data_dir)

    def spec_of(shapes, view: str = "regression") -> DatasetSpec:
        """The spec for per-modality [T, D] ``shapes`` and a label view."""
        task, classes = {"regression": ("regression", 1), "2class": ("classification", 2),
                         "2class_non0": ("classification", 2),
                         "3class": ("classification", 3)}[view]
        return DatasetSpec(name, MODALITIES, tuple(tuple(s) for s in shapes), task, classes,
                           time_axes=(1, 1, 1))

    def load(data_dir=None, *, seed: int, label_view: str) -> Dataset:
        """The prepared splits in host memory, with the labels of ``label_view``."""
        del seed  # the splits are the file's
        view_labels(np.zeros(0), label_view)  # an unknown view fails before any reading
        b = builder(data_dir)
        shapes = tuple(b.info.features[m].shape for m in MODALITIES)
        splits = {}
        for s in ("train", "val", "test"):
            if s not in b.info.splits:
                continue
            raw = prepared.read_split(b, s)
            y, keep = view_labels(raw["label"], label_view)
            inputs = {k: raw[k][keep] for m in MODALITIES for k in (m, length_key(m))}
            present = np.stack([inputs[length_key(m)] > 0 for m in MODALITIES], axis=1)
            splits[s] = Split(inputs, present, y)
        return Dataset(spec_of(shapes, label_view), splits)

    how = (f"  how: {dataset} from {'MultiBench' if layout == 'multibench' else 'MMSA'}'s "
           f"{' / '.join(files)} (audio -inf -> 0; sequences right-padded with lengths in "
           f"inputs['<modality>_len'])")
    return types.SimpleNamespace(prepare=prepare, build=build, load=load, spec=spec_of, HOW=how,
                                 FILES=files)


def _entry(name: str):
    from mmjax.data import registry

    found = get(name)
    # Padded [T, D] sequences; "mlp" is what an empty model.encoders always gave them (configs
    # for these datasets name sequence encoders).
    return registry.Entry(
        name=name, modalities=MODALITIES, task="regression", load=found.load, build=found.build,
        how=found.HOW, encoders={m: "mlp" for m in MODALITIES},
        # The regression view's metrics, or the classification views' (label_view).
        metrics=(*registry.REGRESSION_METRICS, *registry.CLASSIFICATION_METRICS),
        options=(*registry.COMMON_OPTIONS, "label_view"), prepare=found.prepare)


ENTRIES = {name: _entry(name) for name in DATASETS}
