"""The papers' feature datasets: MM-IMDb, Food-101 / N24News features, CMU-MOSI / MOSEI, IEMOCAP
and MSP-IMPROV, each from a tiny fixture in the exact published layout.

Each fixture has the published file names, keys, nesting, dtypes and file types (HDF5 through
h5py, pickles of dicts of numpy arrays, npy, npz) with tiny contents. It is prepared in-process
with ``mmjax data prepare NAME --from PATH`` into a private data dir, loaded, and checked for
shapes, labels, splits, lengths and present masks against values computed here by hand;
corrupted copies each give exit code 2 and one error line that names the file and the problem.
"""

import os
import pathlib
import pickle
import shutil

import h5py
import numpy as np
import pytest

import mmjax.data
from mmjax.data.base import validate_split
from mmjax.errors import UserError

from toy import run_cli


def one_line_error(capsys, argv, *names: str) -> str:
    code, _, err = run_cli(capsys, argv)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("mmjax: error: "), err
    for name in names:
        assert name in err, err
    assert "Traceback" not in err
    return err


def prepare(capsys, name, src):
    code, out, err = run_cli(capsys, ["data", "prepare", name, "--from", str(src)])
    assert code == 0, err
    return out


# ------------------------------------------------------------------------------------------------
# MM-IMDb: multimodal_imdb.hdf5
# ------------------------------------------------------------------------------------------------

IMDB_N, IMDB_CUTS = 14, (8, 11)


def fuel_split(cuts, n):
    """Fuel's H5PYDataset split attribute: one row per (split, source)."""
    dtype = np.dtype([("split", "S5"), ("source", "S12"), ("start", np.int64),
                      ("stop", np.int64), ("available", np.bool_), ("comment", "S1")])
    ranges = {b"train": (0, cuts[0]), b"dev": cuts, b"test": (cuts[1], n)}
    rows = [(s, src, a, b, True, b".") for s, (a, b) in ranges.items()
            for src in (b"features", b"vgg_features", b"genres", b"images", b"imdb_ids")]
    return np.array(rows, dtype)


def write_mmimdb(folder: pathlib.Path, n=IMDB_N, split=True) -> dict:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    data = {"features": rng.normal(size=(n, 300)).astype(np.float32),
            "vgg_features": rng.uniform(0, 5, size=(n, 4096)).astype(np.float32),
            "genres": (rng.uniform(size=(n, 23)) < 0.2).astype(np.int64)}
    with h5py.File(folder / "multimodal_imdb.hdf5", "w") as f:
        for k, v in data.items():
            f.create_dataset(k, data=v)
        f.create_dataset("images", data=np.zeros((n, 3, 256, 160), np.uint8),
                         chunks=(1, 3, 256, 160), compression="gzip")
        f.create_dataset("imdb_ids", data=np.array([f"{i:07d}".encode() for i in range(n)]))
        if split:
            f.attrs["split"] = fuel_split(IMDB_CUTS, n)
    return data


@pytest.fixture(scope="module")
def mmimdb(tmp_path_factory):
    src = tmp_path_factory.mktemp("mmimdb") / "mmimdb"
    return src, write_mmimdb(src)


def test_mmimdb_prepare_load_info(capsys, mmimdb, data_dir):
    src, raw = mmimdb
    one_line_error(capsys, ["data", "info", "mmimdb"], "mmjax data prepare mmimdb --from PATH")
    prepare(capsys, "mmimdb", src)
    ds = mmjax.data.load("mmimdb")
    assert ds.spec.modalities == ("image", "text") and ds.spec.task == "multilabel"
    assert ds.spec.shapes == ((4096,), (300,)) and ds.spec.num_classes == 23
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 8, "val": 3, "test": 3}
    for name, split in ds.splits.items():
        validate_split(ds.spec, split, name)
        assert split.present.all() and split.label.dtype == np.float32
    np.testing.assert_array_equal(ds.splits["val"].inputs["image"], raw["vgg_features"][8:11])
    np.testing.assert_array_equal(ds.splits["test"].inputs["text"], raw["features"][11:])
    np.testing.assert_array_equal(ds.splits["train"].label, raw["genres"][:8])
    code, text, err = run_cli(capsys, ["data", "info", "mmimdb"])
    assert code == 0, err
    assert "mmimdb: multilabel, 23 labels" in text
    assert "modality image  float32 [4096]" in text and "modality text   float32 [300]" in text
    assert "val       3 samples, positives per label" in text
    # The published file (25,959 rows, no split attribute) is cut where MultiBench cuts it.
    from mmjax.data import mmimdb, prepared

    assert mmimdb.split_bounds(25959, None, src) == (15552, 18160)
    # Large splits can stream from the array_record files in chunks instead.
    chunks = list(prepared.iter_batches(mmimdb._builder(None), "train", 3))
    assert [len(c["id"]) for c in chunks] == [3, 3, 2]
    ids = np.concatenate([c["id"] for c in chunks])
    assert sorted(ids.tolist()) == list(range(8))
    np.testing.assert_array_equal(np.concatenate([c["text"] for c in chunks]),
                                  raw["features"][ids])


def corrupt_mmimdb(src: pathlib.Path, dst: pathlib.Path, case: str) -> str:
    shutil.copytree(src, dst)
    file = dst / "multimodal_imdb.hdf5"
    with h5py.File(file, "r+") as f:
        if case == "missing_key":
            del f["vgg_features"]
            return "no dataset 'vgg_features'"
        if case == "wrong_shape":
            del f["features"]
            f["features"] = np.zeros((IMDB_N, 301), np.float32)
            return "'features' has shape [14, 301], expected [N, 300]"
        if case == "nan":
            f["vgg_features"][5, 17] = np.nan
            return "'vgg_features' has NaN or inf values (first at row 5)"
        if case == "labels":
            f["genres"][3, 4] = 2
            return "'genres' must be multi-hot 0/1 (row 3 is not)"
        if case == "rows_disagree":
            del f["genres"]
            f["genres"] = np.zeros((IMDB_N - 1, 23), np.int64)
            return "'genres' has 13 rows"
        if case == "no_split":
            del f.attrs["split"]
            return "14 rows and no Fuel 'split' attribute; the published file has 25959 rows"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_key", "wrong_shape", "nan", "labels", "rows_disagree",
                                  "no_split"])
def test_mmimdb_corrupted(capsys, mmimdb, data_dir, tmp_path, case):
    want = corrupt_mmimdb(mmimdb[0], tmp_path / "bad", case)
    one_line_error(capsys, ["data", "prepare", "mmimdb", "--from", str(tmp_path / "bad")],
                   f"{tmp_path / 'bad' / 'multimodal_imdb.hdf5'}: {want}")
    assert not (data_dir / "tfds").exists()


def test_mmimdb_missing_file_says_where(capsys, data_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    one_line_error(capsys, ["data", "prepare", "mmimdb", "--from", str(tmp_path / "empty")],
                   "multimodal_imdb.hdf5: file not found", "github.com/johnarevalo/gmu-mmimdb")
    (tmp_path / "empty" / "multimodal_imdb.hdf5").write_text("not hdf5")
    one_line_error(capsys, ["data", "prepare", "mmimdb", "--from", str(tmp_path / "empty")],
                   "multimodal_imdb.hdf5: not a readable HDF5 file")


# ------------------------------------------------------------------------------------------------
# Food-101 / N24News features: <name>.npz (mmjax's layout, scripts/extract_food_features.py)
# ------------------------------------------------------------------------------------------------

SCRIPT = pathlib.Path(__file__).resolve().parent.parent / "scripts" / "extract_food_features.py"


def write_food(folder: pathlib.Path, name: str, classes: int, splits=(0, 0, 0, 1, 2, 2, 0, 1, 0)):
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    n = len(splits)
    data = {"image": rng.normal(size=(n, 512)).astype(np.float16),
            "text": rng.normal(size=(n, 1024)).astype(np.float32),
            "label": (np.arange(n) * 7) % classes, "split": np.array(splits, np.int8),
            "id": np.array([f"img_{i}.jpg" for i in range(n)])}
    np.savez(folder / f"{name}.npz", **data)
    return data


@pytest.mark.parametrize("name,classes", [("food101_features", 101), ("n24news_features", 24)])
def test_food_features_prepare_load(capsys, data_dir, tmp_path, name, classes):
    raw = write_food(tmp_path / "src", name, classes)
    prepare(capsys, name, tmp_path / "src")
    ds = mmjax.data.load(name)
    assert ds.spec.shapes == ((512,), (1024,)) and ds.spec.num_classes == classes
    rows = {"train": [0, 1, 2, 6, 8], "val": [3, 7], "test": [4, 5]}
    assert {k: len(v) for k, v in ds.splits.items()} == {k: len(v) for k, v in rows.items()}
    for s, idx in rows.items():
        validate_split(ds.spec, ds.splits[s], s)
        np.testing.assert_array_equal(ds.splits[s].label, raw["label"][idx])
        np.testing.assert_array_equal(ds.splits[s].inputs["image"],
                                      raw["image"][idx].astype(np.float32))
        np.testing.assert_array_equal(ds.splits[s].inputs["text"], raw["text"][idx])
    code, text, err = run_cli(capsys, ["data", "info", name])
    assert code == 0 and f"{name}: classification, {classes} classes" in text, err


def test_food_features_without_val(capsys, data_dir, tmp_path):
    write_food(tmp_path / "src", "food101_features", 101, splits=(0, 0, 2, 0, 2))
    prepare(capsys, "food101_features", tmp_path / "src")
    assert set(mmjax.data.load("food101_features").splits) == {"train", "test"}


@pytest.mark.parametrize("case,want", [
    ("missing_key", "no array 'split'"),
    ("wrong_shape", "'text' has shape [9, 768], expected [N, 1024]"),
    ("nan", "'image' has NaN or inf values (first at row 4)"),
    ("label_range", "'label' must lie in [0, 23], found 0..24"),
    ("split_code", "'split' must lie in [0, 2]"),
    ("no_test", "no test rows ('split' == 2)"),
    ("object_array", "array 'label' is not a plain numeric array"),
])
def test_food_features_corrupted(capsys, data_dir, tmp_path, case, want):
    raw = write_food(tmp_path / "bad", "n24news_features", 24)
    if case == "missing_key":
        del raw["split"]
    elif case == "wrong_shape":
        raw["text"] = raw["text"][:, :768]
    elif case == "nan":
        raw["image"][4, 3] = np.nan
    elif case == "label_range":
        raw["label"][2] = 24
    elif case == "split_code":
        raw["split"][0] = 3
    elif case == "no_test":
        raw["split"][raw["split"] == 2] = 0
    elif case == "object_array":
        raw["label"] = np.array([1, "x", None] * 3, dtype=object)
    np.savez(tmp_path / "bad" / "n24news_features.npz", **raw)
    one_line_error(capsys, ["data", "prepare", "n24news_features", "--from", str(tmp_path / "bad")],
                   f"{tmp_path / 'bad' / 'n24news_features.npz'}: {want}")
    assert not (data_dir / "tfds").exists()


def test_food_missing_folder_and_script(capsys, data_dir, tmp_path):
    one_line_error(capsys, ["data", "prepare", "food101_features", "--from",
                            str(tmp_path / "nowhere")], "no such directory",
                   "scripts/extract_food_features.py")
    import subprocess
    import sys

    # The script is not part of the package; without torch/transformers it stops with one line.
    assert "extract_food_features" not in " ".join(sys.modules)
    r = subprocess.run([sys.executable, str(SCRIPT), "--manifest", str(tmp_path / "m.csv"),
                        "--out", str(tmp_path / "o.npz")], capture_output=True, text=True)
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert "needs torch, transformers and pillow" in r.stderr
    # Its manifest reader works without the models.
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import extract_food_features as script
    finally:
        sys.path.pop(0)
    (tmp_path / "m.csv").write_text("image,text,label,split\na.jpg,hello,pizza,train\n"
                                    "/x/b.jpg,hi,apple_pie,test\n")
    rows, classes = script.read_manifest(tmp_path / "m.csv")
    assert classes == ["apple_pie", "pizza"] and rows[0]["image"] == tmp_path / "a.jpg"
    (tmp_path / "m.csv").write_text("image,text,label,split\na.jpg,hello,pizza,dev\n")
    with pytest.raises(SystemExit, match="row 2: split must be train, val or test"):
        script.read_manifest(tmp_path / "m.csv")


# ------------------------------------------------------------------------------------------------
# CMU-MOSI / MOSEI: MultiBench pickles (left-padded, T shared) and MMSA pickles (right-padded)
# ------------------------------------------------------------------------------------------------

MB_T = 6
MB_LENGTHS = {"train": [6, 3, 0, 1, 4], "valid": [2, 5], "test": [6, 2, 3]}  # 0: all-zero text
MB_LABELS = {"train": [1.4, -0.6, 2.0, 0.0, -3.0], "valid": [0.0, 2.2], "test": [-1.0, 0.4, 3.0]}


def write_multibench_mosi(file: pathlib.Path, dims=(35, 74, 300)) -> dict:
    """MultiBench's mosi_raw.pkl: left-padded [N, 50, d] arrays (here T = 6), labels [N, 1, 1]."""
    rng = np.random.default_rng(2)
    data = {}
    for split, lengths in MB_LENGTHS.items():
        n = len(lengths)
        d = {m: np.zeros((n, MB_T, k), np.float32) for m, k in zip(("vision", "audio", "text"), dims)}
        for i, length in enumerate(lengths):
            for m in d:
                d[m][i, MB_T - length:] = rng.uniform(0.5, 1.5, (length, d[m].shape[2]))
        if split == "train":
            d["audio"][0, 2, 5] = -np.inf  # COVAREP's log features: -inf set to 0 by the loader
        d["labels"] = np.array(MB_LABELS[split], np.float32).reshape(n, 1, 1)
        d["id"] = np.array([[f"{split}_{i}".encode()] for i in range(n)], dtype=object)
        data[split] = d
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb") as f:
        pickle.dump(data, f)
    return data


MMSA_T = {"text": 50, "audio": 500, "vision": 375}  # MMSA's unaligned MOSI seq_lens
MMSA_N = {"train": 4, "valid": 2, "test": 3}


def write_mmsa(file: pathlib.Path, aligned: bool, dims=(768, 74, 35)) -> dict:
    """MMSA's aligned_50.pkl / unaligned_50.pkl: right-padded arrays, text_bert, lengths."""
    rng = np.random.default_rng(3)
    data = {}
    for split, n in MMSA_N.items():
        t = {m: (50 if aligned else MMSA_T[m]) for m in MMSA_T}
        text_len = rng.integers(3, 50, n)
        lengths = {"text": text_len, "audio": text_len if aligned else rng.integers(1, t["audio"], n),
                   "vision": text_len if aligned else rng.integers(0, t["vision"], n)}
        d = {}
        for m, k in zip(("text", "audio", "vision"), dims):
            x = np.zeros((n, t[m], k), np.float32)
            for i in range(n):
                x[i, :lengths[m][i]] = rng.normal(size=(lengths[m][i], k))
            d[m] = x
        if not aligned:
            d["vision"][0, lengths["vision"][0]:] = 7.0  # past its length: zeroed by the loader
            d["audio_lengths"] = list(lengths["audio"])
            d["vision_lengths"] = list(lengths["vision"])
        d["audio"][1, 0, 0] = -np.inf
        mask = (np.arange(50)[None] < text_len[:, None]).astype(np.int64)
        d["text_bert"] = np.stack([mask * 101, mask, np.zeros_like(mask)], axis=1)  # [N, 3, 50]
        d["regression_labels"] = np.round(rng.uniform(-3, 3, n), 1).astype(np.float32)
        d["regression_labels"][0] = 0.0
        d["classification_labels"] = np.sign(d["regression_labels"]) + 1
        d["raw_text"] = np.array([f"utterance {i}" for i in range(n)])
        d["id"] = np.array([f"vid_{i}$_$0" for i in range(n)])
        d["annotations"] = np.array(["Neutral"] * n)
        data[split] = {**d, "_lengths": lengths}
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb") as f:
        pickle.dump({s: {k: v for k, v in d.items() if k != "_lengths"} for s, d in data.items()},
                    f)
    return data


def test_multibench_mosi(capsys, data_dir, tmp_path):
    raw = write_multibench_mosi(tmp_path / "affect" / "mosi_raw.pkl")
    prepare(capsys, "multibench_mosi", tmp_path / "affect")
    ds = mmjax.data.load("multibench_mosi")
    assert ds.spec.modalities == ("audio", "vision", "text") and ds.spec.task == "regression"
    assert ds.spec.shapes == ((MB_T, 74), (MB_T, 35), (MB_T, 300))
    assert ds.spec.time_axes == (1, 1, 1)
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 4, "val": 2, "test": 3}
    for src, split in (("train", "train"), ("valid", "val"), ("test", "test")):
        s = ds.splits[split]
        validate_split(ds.spec, s, split)
        kept = [i for i, n in enumerate(MB_LENGTHS[src]) if n]  # all-zero text dropped
        np.testing.assert_array_equal(s.label, np.array(MB_LABELS[src], np.float32)[kept])
        for j, i in enumerate(kept):
            n = MB_LENGTHS[src][i]
            for m in ("vision", "audio", "text"):
                assert s.inputs[f"{m}_len"][j] == n
                want = raw[src][m][i, MB_T - n:].copy()
                want[want == -np.inf] = 0
                np.testing.assert_array_equal(s.inputs[m][j, :n], want)  # valid steps first
                assert not s.inputs[m][j, n:].any()  # then zeros
        assert s.present.all()
    assert ds.splits["train"].inputs["audio"][0, 2, 5] == 0  # the -inf, moved to step 2 - 0
    # Label views: MultiBench's y > 0, the non-zero acc-2 view, and 3 classes by sign.
    y = np.array(MB_LABELS["train"])[[0, 1, 3, 4]]
    two = mmjax.data.load("multibench_mosi", label_view="2class")
    assert two.spec.task == "classification" and two.spec.num_classes == 2
    np.testing.assert_array_equal(two.splits["train"].label, (y > 0).astype(int))
    non0 = mmjax.data.load("multibench_mosi", label_view="2class_non0").splits["train"]
    np.testing.assert_array_equal(non0.label, [1, 0, 0])
    assert non0.inputs["text_len"].tolist() == [6, 3, 4]
    three = mmjax.data.load("multibench_mosi", label_view="3class")
    np.testing.assert_array_equal(three.splits["train"].label, [2, 0, 1, 0])
    with pytest.raises(UserError, match="unknown data.label_view 'five'"):
        mmjax.data.load("multibench_mosi", label_view="five")
    code, text, err = run_cli(capsys, ["data", "info", "multibench_mosi", "--set",
                                       "data.label_view=3class"])
    assert code == 0, err
    assert "multibench_mosi: classification, 3 classes" in text
    assert "modality text   float32 [6, 300] (time axis 1, lengths in inputs['text_len'])" in text
    # Keeping some views keeps their lengths.
    sub = mmjax.data.load("multibench_mosi", views=("text",))
    assert set(sub.splits["train"].inputs) == {"text", "text_len"}


@pytest.mark.parametrize("aligned", [True, False])
def test_mmsa_mosei(capsys, data_dir, tmp_path, aligned):
    name = "aligned_50.pkl" if aligned else "unaligned_50.pkl"
    raw = write_mmsa(tmp_path / "MOSEI" / "Processed" / name, aligned)
    prepare(capsys, "mmsa_mosei", tmp_path / "MOSEI" / "Processed" / name)
    ds = mmjax.data.load("mmsa_mosei")
    t = 50 if aligned else None
    assert ds.spec.shapes == ((t or 500, 74), (t or 375, 35), (50, 768))
    for src, split in (("train", "train"), ("valid", "val"), ("test", "test")):
        s, r = ds.splits[split], raw[src]
        validate_split(ds.spec, s, split)
        np.testing.assert_array_equal(s.label, r["regression_labels"])
        for m in ("audio", "vision", "text"):
            np.testing.assert_array_equal(s.inputs[f"{m}_len"], r["_lengths"][m])
            np.testing.assert_array_equal(s.present[:, ("audio", "vision", "text").index(m)],
                                          np.asarray(r["_lengths"][m]) > 0)
            want = np.where(np.arange(r[m].shape[1])[None, :, None]
                            < np.asarray(r["_lengths"][m])[:, None, None], r[m], 0)
            want[want == -np.inf] = 0
            np.testing.assert_array_equal(s.inputs[m], want)


def test_mmsa_mosi_folder_and_options(capsys, data_dir, tmp_path):
    write_mmsa(tmp_path / "MOSI" / "aligned_50.pkl", True, dims=(768, 5, 20))
    prepare(capsys, "mmsa_mosi", tmp_path / "MOSI")  # the folder: aligned_50.pkl is found
    ds = mmjax.data.load("mmsa_mosi")
    assert ds.spec.shapes == ((50, 5), (50, 20), (50, 768))
    one_line_error(capsys, ["data", "info", "mmsa_mosi", "--set", "data.label_view=7class"],
                   "config key 'data.label_view' expects one of regression, 2class, "
                   "2class_non0, 3class; got '7class'")
    one_line_error(capsys, ["data", "info", "mfeat", "--set", "data.label_view=3class"],
                   "data.label_view only applies to multibench_mosi, multibench_mosei")
    one_line_error(capsys, ["data", "prepare", "mmsa_mosi", "--from", str(tmp_path)],
                   "none of aligned_50.pkl, unaligned_50.pkl found", "github.com/thuiar/MMSA")


def corrupt_mosi(file: pathlib.Path, case: str) -> str:
    with open(file, "rb") as f:
        data = pickle.load(f)
    if case == "missing_key":
        del data["test"]["labels"]
        want = "['test']: no key 'labels'"
    elif case == "missing_split":
        del data["valid"]
        want = "expected a dict with 'train', 'valid' and 'test' dicts"
    elif case == "wrong_shape":
        data["train"]["audio"] = data["train"]["audio"][:, :, 0]
        want = "['train']: 'audio' has shape [5, 6], expected [N, T, D]"
    elif case == "shape_mismatch":
        data["valid"]["vision"] = data["valid"]["vision"][:, :4]
        want = "['valid']: 'vision' has shape [2, 4, 35], but 'text' has [2, 6, ...]"
    elif case == "nan":
        data["valid"]["vision"][1, 4, 3] = np.nan
        want = "['valid']: 'vision' has NaN or inf values (first at sample 1)"
    elif case == "label_range":
        data["test"]["labels"][2] = 4.5
        want = "['test']: labels must be finite sentiment scores in [-3, 3], found -1..4.5"
    elif case == "not_pickle":
        file.write_bytes(b"\x80\x05not a pickle")
        return "not a readable pickle"
    with open(file, "wb") as f:
        pickle.dump(data, f)
    return want


@pytest.mark.parametrize("case", ["missing_key", "missing_split", "wrong_shape", "shape_mismatch",
                                  "nan", "label_range", "not_pickle"])
def test_multibench_mosi_corrupted(capsys, data_dir, tmp_path, case):
    file = tmp_path / "mosi_raw.pkl"
    write_multibench_mosi(file)
    want = corrupt_mosi(file, case)
    one_line_error(capsys, ["data", "prepare", "multibench_mosi", "--from", str(file)],
                   f"{file}", want)
    assert not (data_dir / "tfds").exists()


def test_mmsa_corrupted_lengths(capsys, data_dir, tmp_path):
    file = tmp_path / "unaligned_50.pkl"
    write_mmsa(file, False, dims=(768, 5, 20))
    with open(file, "rb") as f:
        data = pickle.load(f)
    data["train"]["audio_lengths"][2] = 501
    with open(file, "wb") as f:
        pickle.dump(data, f)
    one_line_error(capsys, ["data", "prepare", "mmsa_mosi", "--from", str(file)],
                   f"{file} ['train']: 'audio_lengths' gives lengths outside [0, 500]")


# ------------------------------------------------------------------------------------------------
# IEMOCAP / MSP-IMPROV in MMIN's layout: A/V/L h5 keyed by utterance, target/<fold>/*.npy
# ------------------------------------------------------------------------------------------------

UTTS = [f"Ses0{1 + i // 4}{'FM'[i % 2]}_impro0{i % 3}_{'FM'[i % 2]}00{i}" for i in range(12)]
UTT_T = {"audio": [3, 7, 2, 5, 9, 4, 6, 1, 8, 3, 5, 2], "vision": [4, 2, 6, 3, 1, 5, 2, 4, 3, 6, 2, 1],
         "text": [5, 3, 4, 6, 2, 7, 3, 5, 4, 2, 6, 3]}
UTT_LABEL = [i % 4 for i in range(12)]


def write_mmin(root: pathlib.Path, folds: int, one_hot: bool) -> dict:
    """MMIN's feature root: per-utterance h5 datasets, per-fold mean/std groups and targets."""
    rng = np.random.default_rng(4)
    for d in ("A", "V", "L"):
        (root / d).mkdir(parents=True)
    feats = {}
    for m, rel, dim in (("audio", "A/comparE.h5", 130), ("vision", "V/denseface.h5", 342),
                        ("text", "L/bert_large.h5", 1024)):
        feats[m] = {u: rng.normal(3.0, 2.0, (UTT_T[m][i], dim)).astype(np.float32)
                    for i, u in enumerate(UTTS)}
        with h5py.File(root / rel, "w") as f:
            for u, x in feats[m].items():
                f[u] = x
    stats = {}
    with h5py.File(root / "A" / "comparE_mean_std.h5", "w") as f:
        for k in range(1, folds + 1):
            stats[k] = (rng.normal(3, 0.1, 130).astype(np.float32),
                        rng.uniform(1, 3, 130).astype(np.float32))
            f[f"{k}/mean"], f[f"{k}/std"] = stats[k]
    parts = {}
    for k in range(1, folds + 1):
        order = np.roll(np.arange(12), k)  # fold k: a different 8 / 2 / 2 partition
        parts[k] = {"trn": order[:8], "val": order[8:10], "tst": order[10:]}
        (root / "target" / str(k)).mkdir(parents=True)
        for part, idx in parts[k].items():
            y = np.array(UTT_LABEL)[idx]
            if one_hot:  # IEMOCAP: one-hot float labels, [N, 1] byte-string ids
                np.save(root / "target" / str(k) / f"{part}_label.npy", np.eye(4)[y])
                names = np.array([[UTTS[i].encode()] for i in idx])
            else:  # MSP-IMPROV: integer labels, [N] str ids
                np.save(root / "target" / str(k) / f"{part}_label.npy", y)
                names = np.array([UTTS[i] for i in idx])
            np.save(root / "target" / str(k) / f"{part}_int2name.npy", names)
    return {"feats": feats, "stats": stats, "parts": parts}


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    src = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_features_2021"
    return src, write_mmin(src, 10, one_hot=True)


@pytest.mark.parametrize("name,folds", [("iemocap", 10), ("msp_improv", 12)])
def test_mmin_layout_prepare_load(capsys, data_dir, tmp_path, iemocap, name, folds):
    if name == "iemocap":
        src, raw = iemocap
    else:
        src = tmp_path / "MSP-IMPROV_features_2021"
        raw = write_mmin(src, 12, one_hot=False)
    prepare(capsys, name, src)
    for fold in (1, folds):
        ds = mmjax.data.load(name, fold=fold)
        assert ds.spec.modalities == ("audio", "vision", "text")
        assert ds.spec.shapes == ((9, 130), (6, 342), (7, 1024)) and ds.spec.num_classes == 4
        mean, std = raw["stats"][fold]
        for part, split in (("trn", "train"), ("val", "val"), ("tst", "test")):
            s, idx = ds.splits[split], raw["parts"][fold][part]
            validate_split(ds.spec, s, split)
            np.testing.assert_array_equal(s.label, np.array(UTT_LABEL)[idx])
            assert s.present.all()
            for j, i in enumerate(idx):
                for m in ("audio", "vision", "text"):
                    x = raw["feats"][m][UTTS[i]]
                    assert s.inputs[f"{m}_len"][j] == len(x)
                    want = (x - mean) / std if m == "audio" else x  # MMIN's normalize_on_trn
                    np.testing.assert_allclose(s.inputs[m][j, :len(x)], want, rtol=1e-5,
                                               atol=1e-5)
                    assert not s.inputs[m][j, len(x):].any()
    code, text, err = run_cli(capsys, ["data", "info", name, "--set", f"data.fold={folds}"])
    assert code == 0, err
    assert f"{name}: classification, 4 classes" in text and "train     8 samples" in text
    one_line_error(capsys, ["data", "info", name, "--set", f"data.fold={folds + 1}"],
                   f"data.fold must lie in 1..{folds}, got {folds + 1}")


def corrupt_mmin(src: pathlib.Path, dst: pathlib.Path, case: str) -> str:
    shutil.copytree(src, dst)
    if case == "missing_utterance":
        with h5py.File(dst / "V" / "denseface.h5", "r+") as f:
            del f[UTTS[5]]
        return f"V/denseface.h5: no entry for utterance {UTTS[5]!r}"
    if case == "wrong_dim":
        with h5py.File(dst / "L" / "bert_large.h5", "r+") as f:
            del f[UTTS[2]]
            f[UTTS[2]] = np.zeros((4, 768), np.float32)
        return f"L/bert_large.h5: {UTTS[2]!r} is float32[4, 768], expected float [T >= 1, 1024]"
    if case == "nan":
        with h5py.File(dst / "A" / "comparE.h5", "r+") as f:
            f[UTTS[7]][0, 3] = np.nan
        return f"A/comparE.h5: {UTTS[7]!r} has NaN or inf values"
    if case == "not_one_hot":
        y = np.load(dst / "target" / "4" / "val_label.npy")
        y[1] = [1, 1, 0, 0]
        np.save(dst / "target" / "4" / "val_label.npy", y)
        return "target/4/val_label.npy: labels [N, C] must be one-hot [2, 4]"
    if case == "missing_fold_stats":
        with h5py.File(dst / "A" / "comparE_mean_std.h5", "r+") as f:
            del f["7"]
        return "A/comparE_mean_std.h5: no dataset '7/mean'"
    if case == "missing_target":
        os.remove(dst / "target" / "10" / "tst_int2name.npy")
        return "target/10/tst_int2name.npy: file not found"
    if case == "rows_disagree":
        np.save(dst / "target" / "2" / "trn_label.npy", np.eye(4)[[0, 1, 2]])
        return "target/2/trn_label.npy: labels [N, C] must be one-hot [8, 4]"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_utterance", "wrong_dim", "nan", "not_one_hot",
                                  "missing_fold_stats", "missing_target", "rows_disagree"])
def test_mmin_layout_corrupted(capsys, data_dir, tmp_path, iemocap, case):
    want = corrupt_mmin(iemocap[0], tmp_path / "bad", case)
    one_line_error(capsys, ["data", "prepare", "iemocap", "--from", str(tmp_path / "bad")],
                   f"{tmp_path / 'bad' / want}")
    assert not (data_dir / "tfds").exists()


def test_mmin_missing_folder_says_where(capsys, data_dir, tmp_path):
    one_line_error(capsys, ["data", "prepare", "msp_improv", "--from", str(tmp_path / "nope")],
                   "no such directory", "github.com/sunjunaimer/RedCore")


# ------------------------------------------------------------------------------------------------
# Batches in the runtime: the MM-IMDb config trains a step; sequence lengths travel with batches
# ------------------------------------------------------------------------------------------------

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"


def test_mmimdb_config_trains_a_step(capsys, mmimdb, data_dir):
    import jax

    from mmjax import config as config_lib
    from mmjax import train
    from mmjax.data import pipeline

    prepare(capsys, "mmimdb", mmimdb[0])
    config = config_lib.load(str(CONFIGS / "mmimdb" / "concat.py") + ":quick")
    config = config_lib.override(config, ["train.batch_size=4"])
    s = train.setup(config)
    assert s.dataset.spec.task == "multilabel" and len(s.dataset.splits["train"]) == 8
    data = pipeline.to_arrays(s.dataset.splits["train"])
    batch = pipeline.gather(data, data["present"], np.arange(4), s.dataset.spec.modalities)
    assert batch["inputs"]["image"].shape == (4, 4096) and batch["label"].shape == (4, 23)
    state = s.method.init(jax.random.key(0), batch)
    state, metrics = jax.jit(s.method.train_step)(state, batch)
    assert np.isfinite(float(metrics["loss"]))
    out = s.method.predict(state, batch)
    assert out.shape == (4, 23)


def test_sequence_batches_carry_lengths(capsys, data_dir, tmp_path):
    from mmjax.data import pipeline

    write_multibench_mosi(tmp_path / "mosi_raw.pkl")
    prepare(capsys, "multibench_mosi", tmp_path / "mosi_raw.pkl")
    ds = mmjax.data.load("multibench_mosi")
    data = pipeline.to_arrays(ds.splits["train"])
    present = np.array([[True, False, True]] * 4)
    batch = pipeline.gather(data, present, np.array([3, 0, 2]), ds.spec.modalities)
    assert batch["inputs"]["text"].shape == (3, MB_T, 300)
    assert batch["inputs"]["text_len"].tolist() == [4, 6, 1]
    assert batch["inputs"]["vision_len"].dtype == np.int32
    assert not np.asarray(batch["inputs"]["vision"]).any()  # missing: zero-filled, length kept
    np.testing.assert_allclose(batch["label"], [-3.0, 1.4, 0.0])
    # A length that disagrees with the padding is caught by the runtime's guard.
    bad = ds.splits["train"]
    bad.inputs["audio_len"] = bad.inputs["audio_len"] - 1
    with pytest.raises(UserError, match="input 'audio' is not zero past 'audio_len'"):
        validate_split(ds.spec, bad, "train")
    bad.inputs["audio_len"] = bad.inputs["audio_len"] + 9
    with pytest.raises(UserError, match=r"'audio_len' must lie in \[0, 6\]"):
        validate_split(ds.spec, bad, "train")
