"""IEMOCAP and MSP-IMPROV in MMIN's feature layout (as RedCore reads it): h5 per modality + folds.

Published: the ``IEMOCAP_features_2021`` / ``MSP-IMPROV_features_2021`` folders behind the links
in the READMEs of github.com/AIM3-RUC/MMIN (IEMOCAP) and github.com/sunjunaimer/RedCore (IEMOCAP,
MSP-IMPROV); the audio/video/text itself needs a licence from the corpora's owners (USC SAIL,
UT Dallas MSP lab). The feature root given to ``mmjax data prepare iemocap --from FOLDER`` (or
``msp_improv``) holds (reference notes §1.6, §6.2)::

    A/comparE.h5           utterance id -> float [T_a, 130]  ComParE LLDs (MMIN downsampled them)
    A/comparE_mean_std.h5  group "<fold>" -> mean [130], std [130] (that fold's training set)
    V/denseface.h5         utterance id -> float [T_v, 342]  DenseNet face features per frame
    L/bert_large.h5        utterance id -> float [T_l, 1024] BERT-large token features
    target/<fold>/{trn,val,tst}_label.npy    one-hot [N, 4] (IEMOCAP) or int [N] (MSP-IMPROV)
    target/<fold>/{trn,val,tst}_int2name.npy utterance ids, [N, 1] bytes (IEMOCAP) or [N] str

with folds 1..10 (IEMOCAP, leave-one-speaker-out over 5 sessions) or 1..12 (MSP-IMPROV). Classes:
IEMOCAP neutral / happy+excited / angry / sad (MMIN's 4-class setting, label = argmax of the
one-hot row), MSP-IMPROV the same four emotions as integers.

As MMIN's and RedCore's ``multimodal_miss_dataset.py`` with ``norm_method='trn'``: the audio of
fold k is normalised with fold k's mean and std, ``(x - mean) / std`` (a zero std is taken as 1,
as their per-utterance normalisation does), video and text are used raw; MMIN pads each batch to
its longest utterance, mmjax pads every utterance to the dataset's longest (per modality) with
zeros after the valid steps and puts the lengths in ``inputs["audio_len"]`` etc. Modalities
("audio", "vision", "text") = MMIN's A, V, L (RedCore's rate order); time axis 1; every
utterance has all three (``present`` all True: missingness comes from the protocol).

Option ``fold`` picks the fold (1-based, as MMIN's ``cvNo``); splits are that fold's trn / val /
tst as train / val / test. Everything is validated at prepare time: every utterance named by a
fold must be in all three h5 files as a finite [T >= 1, D] array, labels in range, every fold's
mean/std present. The tfds copy holds each utterance once (raw) plus ``folds.npz`` (per fold the
three id lists, labels, mean and std).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import types

import numpy as np
import tensorflow_datasets as tfds

from mmjax.data import prepared
from mmjax.data.base import Dataset, DatasetSpec, Split, length_key
from mmjax.errors import UserError

MODALITIES = ("audio", "vision", "text")
FILES = {"audio": "A/comparE.h5", "vision": "V/denseface.h5", "text": "L/bert_large.h5"}
MEAN_STD = "A/comparE_mean_std.h5"
DIMS = {"audio": 130, "vision": 342, "text": 1024}
PARTS = {"trn": "train", "val": "val", "tst": "test"}
NUM_CLASSES = 4
FOLDS_FILE = "folds.npz"
# name -> (folds, dataset, where published)
DATASETS = {
    "iemocap": (10, "IEMOCAP", "as MMIN's IEMOCAP_features_2021 (links in the READMEs of "
                "github.com/AIM3-RUC/MMIN and github.com/sunjunaimer/RedCore)"),
    "msp_improv": (12, "MSP-IMPROV", "as RedCore's MSP-IMPROV_features_2021 (links in the README "
                   "of github.com/sunjunaimer/RedCore)"),
}
LAYOUT = ("A/comparE.h5, A/comparE_mean_std.h5, V/denseface.h5, L/bert_large.h5, "
          "target/<fold>/{trn,val,tst}_{label,int2name}.npy")


def _npy(file: pathlib.Path, name: str, where: str) -> np.ndarray:
    prepared.require_file(file, name, where)
    try:
        return np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise UserError(f"{file}: not a readable .npy array ({type(e).__name__})") from e


def _names(x: np.ndarray, file: pathlib.Path) -> list[str]:
    """Utterance ids from ``[N]`` or ``[N, 1]`` bytes / str arrays (MMIN: ``x[0].decode()``)."""
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1 or x.dtype.kind not in "SU":
        raise UserError(f"{file}: expected utterance ids as strings [N] or [N, 1], got "
                        f"{x.dtype}{list(x.shape)}")
    return [v.decode() if isinstance(v, bytes) else str(v) for v in x.tolist()]


def _labels(y: np.ndarray, file: pathlib.Path, n: int) -> np.ndarray:
    """Class indices from one-hot ``[N, 4]`` (IEMOCAP, argmax) or integer ``[N]`` labels."""
    if y.ndim == 2:
        if y.shape != (n, NUM_CLASSES) or not np.isin(y, (0, 1)).all() or \
                not (y.sum(axis=1) == 1).all():
            raise UserError(f"{file}: labels [N, C] must be one-hot [{n}, {NUM_CLASSES}], got "
                            f"{y.dtype}{list(y.shape)} (or a row that is not one-hot)")
        return np.argmax(y, axis=1).astype(np.int32)
    if y.shape != (n,):
        raise UserError(f"{file}: labels have shape {list(y.shape)}, expected [{n}] or "
                        f"[{n}, {NUM_CLASSES}] (the int2name file has {n} rows)")
    return prepared.check_labels(y, file, NUM_CLASSES)


def read_source(folder: str | os.PathLike, name: str) -> dict:
    """Validates an MMIN feature root and returns its arrays.

    Returns:
      ``{"names": [U] ids (sorted), "audio"|"vision"|"text": [U] list of f32 [T, D],
      "folds": {k: {"train"|"val"|"test": (int32 indices into names, int32 labels)}},
      "mean": f32[F, 130], "std": f32[F, 130]}``.

    Raises:
      UserError: one line naming the file and the problem (missing folder, file, fold group or
        utterance; unreadable file; wrong shape or dtype; NaN/inf; labels out of range).
    """
    num_folds, _, where = DATASETS[name]
    folder = pathlib.Path(folder).expanduser()
    prepared.require_dir(folder, name, where, LAYOUT)
    folds, used = {}, set()
    for k in range(1, num_folds + 1):
        fold_dir = folder / "target" / str(k)
        prepared.require_dir(fold_dir, name, where, LAYOUT)
        folds[k] = {}
        for part, split in PARTS.items():
            names_file = fold_dir / f"{part}_int2name.npy"
            names = _names(_npy(names_file, name, where), names_file)
            label_file = fold_dir / f"{part}_label.npy"
            labels = _labels(_npy(label_file, name, where), label_file, len(names))
            folds[k][split] = (names, labels)
            used.update(names)
    names = sorted(used)
    index = {u: i for i, u in enumerate(names)}
    out = {"names": names}
    for m, rel in FILES.items():
        file = folder / rel
        prepared.require_file(file, name, where)
        with prepared.open_h5(file) as f:
            seqs = []
            for u in names:
                if u not in f:
                    raise UserError(f"{file}: no entry for utterance {u!r} (named in "
                                    f"{folder / 'target'})")
                x = f[u]
                if not hasattr(x, "shape") or x.ndim != 2 or x.shape[1] != DIMS[m] \
                        or x.shape[0] < 1 or x.dtype.kind not in "iuf":
                    got = f"{x.dtype}{list(x.shape)}" if hasattr(x, "shape") else "a group"
                    raise UserError(f"{file}: {u!r} is {got}, expected float [T >= 1, {DIMS[m]}]")
                x = np.asarray(x[()], np.float32)
                if not np.isfinite(x).all():
                    raise UserError(f"{file}: {u!r} has NaN or inf values")
                seqs.append(x)
        out[m] = seqs
    file = folder / MEAN_STD
    prepared.require_file(file, name, where)
    mean = np.zeros((num_folds, DIMS["audio"]), np.float32)
    std = np.ones((num_folds, DIMS["audio"]), np.float32)
    with prepared.open_h5(file) as f:
        for k in range(1, num_folds + 1):
            for key, arr in (("mean", mean), ("std", std)):
                if str(k) not in f or key not in f[str(k)]:
                    raise UserError(f"{file}: no dataset '{k}/{key}' (one group per fold "
                                    f"1..{num_folds})")
                x = f[str(k)][key]
                if x.shape not in ((DIMS["audio"],), (1, DIMS["audio"])):
                    raise UserError(f"{file}: '{k}/{key}' has shape {list(x.shape)}, expected "
                                    f"[{DIMS['audio']}]")
                x = np.asarray(x[()], np.float32).reshape(-1)
                if not np.isfinite(x).all() or (key == "std" and (x < 0).any()):
                    raise UserError(f"{file}: '{k}/{key}' has NaN, inf or negative values")
                arr[k - 1] = x
    out["mean"], out["std"] = mean, np.where(std == 0, np.float32(1), std)
    out["folds"] = {k: {s: (np.array([index[u] for u in ns], np.int32), y)
                        for s, (ns, y) in parts.items()} for k, parts in folds.items()}
    return out


@dataclasses.dataclass(eq=False)
class MminConfig(tfds.core.BuilderConfig):
    """A prepare: the feature root and the padded [T_max, D] of each modality."""

    folder: str = ""
    shapes: tuple = ()


class _MminBuilder:
    """Every utterance once (raw, right-padded, with lengths) in split ``utterances``."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self) -> tfds.core.DatasetInfo:
        feats = {"id": tfds.features.Scalar(np.int32)}
        for m, shape in zip(MODALITIES, self.builder_config.shapes):
            feats[m] = tfds.features.Tensor(shape=tuple(shape), dtype=np.float32)
            feats[length_key(m)] = tfds.features.Scalar(np.int32)
        return tfds.core.DatasetInfo(
            builder=self, description=f"{self.DATASET} in MMIN's feature layout: ComParE (A), "
                                      "denseface (V), BERT-large (L), raw, right-padded.",
            features=tfds.features.FeaturesDict(feats))

    def _split_generators(self, dl_manager):
        data = read_source(self.builder_config.folder, self.name.removeprefix("mmjax_"))
        return {"utterances": self._generate_examples(data)}

    def _generate_examples(self, data):
        for i in range(len(data["names"])):
            ex = {"id": i}
            for m, shape in zip(MODALITIES, self.builder_config.shapes):
                x = data[m][i]
                ex[m] = np.zeros(shape, np.float32)
                ex[m][:len(x)] = x
                ex[length_key(m)] = len(x)
            yield i, ex


_BUILDERS = {
    name: type(f"Mmjax{''.join(p.title() for p in name.split('_'))}",
               (_MminBuilder, tfds.core.GeneratorBasedBuilder),
               {"name": f"mmjax_{name}", "DATASET": DATASETS[name][1], "__module__": __name__,
                "MANUAL_DOWNLOAD_INSTRUCTIONS": f"Use `mmjax data prepare {name} --from FOLDER`."})
    for name in DATASETS
}


def _write_folds(data: dict, folder: pathlib.Path) -> None:
    arrays = {"names": np.array(data["names"]), "mean": data["mean"], "std": data["std"]}
    for k, parts in data["folds"].items():
        for s, (idx, y) in parts.items():
            arrays[f"{k}/{s}/index"], arrays[f"{k}/{s}/label"] = idx, y
    tmp = folder / f"{FOLDS_FILE}.tmp.npz"
    np.savez(tmp, **arrays)
    tmp.replace(folder / FOLDS_FILE)  # written whole or not at all


def get(name: str) -> types.SimpleNamespace:
    """The registry's view of one dataset: ``prepare``, ``build``, ``load``, ``spec``, ``HOW``."""
    cls = _BUILDERS[name]
    num_folds, dataset, where = DATASETS[name]

    def prepare(source, data_dir=None) -> pathlib.Path:
        """Validates the feature root and (re)writes the tfds copy and folds.npz."""
        source = pathlib.Path(source).expanduser().resolve()
        data = read_source(source, name)  # fail before tfds creates anything
        shapes = tuple((max(len(x) for x in data[m]), DIMS[m]) for m in MODALITIES)
        config = MminConfig(name=prepared.CONFIG_NAME, version=str(cls.VERSION),
                            folder=str(source), shapes=shapes)
        out = pathlib.Path(prepared.prepare(cls, prepared.data_root(data_dir), source,
                                            config).data_dir)
        _write_folds(data, out)
        return out

    def builder(data_dir):
        return prepared.prepared(cls, prepared.data_root(data_dir), name, where, read_only=True)

    def build(data_dir=None) -> pathlib.Path:
        """The prepared copy's folder (``UserError`` with the prepare command if absent)."""
        return pathlib.Path(builder(data_dir).data_dir)

    def spec_of(shapes) -> DatasetSpec:
        """The spec for per-modality padded [T, D] ``shapes``: 4-class classification."""
        return DatasetSpec(name, MODALITIES, tuple(tuple(s) for s in shapes), "classification",
                           NUM_CLASSES, time_axes=(1, 1, 1))

    def load(data_dir=None, *, seed: int, fold: int) -> Dataset:
        """Fold ``fold``'s trn / val / tst in host memory, audio normalised with its statistics."""
        del seed  # the folds are the files'
        if not 1 <= fold <= num_folds:
            raise UserError(f"{name}: data.fold must lie in 1..{num_folds}, got {fold}")
        b = builder(data_dir)
        folds_file = pathlib.Path(b.data_dir) / FOLDS_FILE
        if not folds_file.is_file():
            raise UserError(f"{folds_file}: missing (an interrupted prepare?); run again: "
                            f"mmjax data prepare {name} --from FOLDER")
        raw = prepared.read_split(b, "utterances")
        with np.load(folds_file) as z:
            mean, std = z["mean"][fold - 1], z["std"][fold - 1]
            parts = {s: (z[f"{fold}/{s}/index"], z[f"{fold}/{s}/label"]) for s in PARTS.values()}
        t = np.arange(raw["audio"].shape[1])[None, :, None]
        valid = t < raw[length_key("audio")][:, None, None]
        # MMIN's normalize_on_trn on the valid steps; padding stays zero.
        audio = np.where(valid, (raw["audio"] - mean) / std, 0).astype(np.float32)
        splits = {}
        for s, (idx, y) in parts.items():
            inputs = {"audio": audio[idx]}
            inputs.update({m: raw[m][idx] for m in MODALITIES[1:]})
            inputs.update({length_key(m): raw[length_key(m)][idx] for m in MODALITIES})
            splits[s] = Split(inputs, np.ones((len(idx), 3), bool), y.astype(np.int32))
        return Dataset(spec_of(tuple(b.info.features[m].shape for m in MODALITIES)), splits)

    how = (f"  how: {dataset} in MMIN's layout ({LAYOUT}); {num_folds} folds (data.fold), audio "
           "normalised with the fold's comparE_mean_std; padded to the longest utterance with "
           "lengths in inputs['<modality>_len']")
    return types.SimpleNamespace(prepare=prepare, build=build, load=load, spec=spec_of, HOW=how)


def _entry(name: str):
    from mmjax.config import ModelConfig, TrainConfig
    from mmjax.data import registry

    found = get(name)
    short = ("A", "V", "L")  # the names the benchmark records were measured with
    utterance = registry.BenchShapes(  # MMIN's layout widths as utterance vectors: mfeat's MLPs
        DatasetSpec("iemocap_utterance", short, tuple((DIMS[m],) for m in MODALITIES),
                    "classification", NUM_CLASSES), "mfeat")
    # The same widths as padded sequences of 50 steps (MMSA's padded length; real utterances
    # vary), random valid lengths, run by configs/iemocap's Transformer encoders.
    sequences = registry.BenchShapes(DatasetSpec(
        "iemocap_sequences", short, tuple((50, DIMS[m]) for m in MODALITIES),
        "classification", NUM_CLASSES, time_axes=(1, 1, 1)), "iemocap")
    return registry.Entry(
        name=name, modalities=MODALITIES, task="classification", load=found.load,
        build=found.build, how=found.HOW,
        # Padded sequences; "mlp" is what an empty model.encoders always gave them (configs
        # for these datasets name sequence encoders).
        encoders={m: "mlp" for m in MODALITIES}, metrics=registry.CLASSIFICATION_METRICS,
        options=(*registry.COMMON_OPTIONS, "fold"), prepare=found.prepare,
        bench={"iemocap_utterance": utterance, "iemocap_sequences": sequences},
        # RedCore's Implementation Details (one set for every dataset): Transformer encoders,
        # 128-d, batch 128; 2,000 steps and dropout 0.2 chosen in configs/iemocap/redcore.py.
        model=ModelConfig(encoders=("transformer",) * 3, hidden=128, feature_dim=128,
                          dropout=0.2),
        train=TrainConfig(steps=2000, batch_size=128, num_seeds=3, steps_per_call=10,
                          log_every=100, checkpoint_every=500))


ENTRIES = {name: _entry(name) for name in DATASETS}
