"""The papers' datasets: fixtures in the exact published layouts, prepared through the CLI.

Each fixture has the published file names, keys, nesting and file types (npy; real PNG and WAV
files written with pillow and scipy) with tiny contents. It is prepared in-process with
``mmjax data prepare NAME --from PATH`` into a private data dir, loaded, and checked for shapes,
labels, splits and present masks; corrupted copies each give exit code 2 and one error line that
names the file at fault.
"""

import os
import pathlib
import shutil

import numpy as np
import pytest
import scipy.io.wavfile
from PIL import Image

import mmjax.data
from mmjax import cli
from mmjax.data import mfcc, multibench_avmnist, smil_avmnist
from mmjax.data.base import validate_split
from mmjax.errors import UserError

from toy import run_cli

N_TRAIN, N_TEST = 12, 5



def one_line_error(capsys, argv, names: str) -> str:
    code, _, err = run_cli(capsys, argv)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("mmjax: error: "), err
    assert names in err, err
    assert "Traceback" not in err
    return err


# ------------------------------------------------------------------------------------------------
# MultiBench AV-MNIST
# ------------------------------------------------------------------------------------------------


def write_multibench(folder: pathlib.Path) -> dict:
    rng = np.random.default_rng(0)
    (folder / "image").mkdir(parents=True)
    (folder / "audio").mkdir()
    data = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        data[split] = (rng.integers(0, 256, (n, 784)).astype(np.float32),
                       rng.integers(0, 256, (n, 112, 112)).astype(np.float32),
                       np.arange(n) % 10)
        np.save(folder / "image" / f"{split}_data.npy", data[split][0])
        np.save(folder / "audio" / f"{split}_data.npy", data[split][1])
        np.save(folder / f"{split}_labels.npy", data[split][2])
    return data


@pytest.fixture(scope="module")
def multibench(tmp_path_factory):
    src = tmp_path_factory.mktemp("multibench") / "avmnist"
    return src, write_multibench(src)


def test_multibench_prepare_load_info(capsys, multibench, data_dir):
    src, raw = multibench
    code, _, err = run_cli(capsys, ["data", "info", "multibench_avmnist"])
    assert code == 2 and "mmjax data prepare multibench_avmnist --from PATH" in err
    assert err.count("\n") == 1
    code, out, err = run_cli(capsys, ["data", "prepare", "multibench_avmnist", "--from", str(src)])
    assert code == 0, err
    assert str(data_dir) in out
    ds = mmjax.data.load("multibench_avmnist", num_valid=4)
    assert ds.spec.modalities == ("image", "audio")
    assert ds.spec.shapes == ((28, 28, 1), (112, 112, 1))
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 8, "val": 4, "test": N_TEST}
    for name, split in ds.splits.items():
        validate_split(ds.spec, split, name)
        assert split.present.all()
    # The last num_valid training rows are val, in order; values divided by 255.
    image, audio, label = raw["train"]
    np.testing.assert_allclose(ds.splits["val"].inputs["image"][..., 0],
                               image[8:].reshape(4, 28, 28) / 255, rtol=1e-6)
    np.testing.assert_allclose(ds.splits["train"].inputs["audio"][..., 0], audio[:8] / 255,
                               rtol=1e-6)
    np.testing.assert_array_equal(ds.splits["train"].label, label[:8])
    np.testing.assert_array_equal(ds.splits["test"].label, raw["test"][2])
    code, text, err = run_cli(capsys, ["data", "info", "multibench_avmnist", "--set",
                                       "data.num_valid=4"])
    assert code == 0, err
    assert "modality audio  float32 [112, 112, 1]" in text and "val       4 samples" in text
    with pytest.raises(UserError, match="num_valid"):
        mmjax.data.load("multibench_avmnist")  # 5,000 valid rows of a 12-row fixture


def corrupt_multibench(src: pathlib.Path, dst: pathlib.Path, case: str) -> str:
    shutil.copytree(src, dst)
    if case == "missing_file":
        os.remove(dst / "audio" / "test_data.npy")
        return "audio/test_data.npy: file not found"
    if case == "wrong_shape":
        np.save(dst / "image" / "train_data.npy", np.zeros((N_TRAIN, 28, 28), np.float32))
        return "image/train_data.npy: shape [12, 28, 28], expected [N, 784]"
    if case == "nan":
        a = np.load(dst / "audio" / "train_data.npy")
        a[3, 5, 7] = np.nan
        np.save(dst / "audio" / "train_data.npy", a)
        return "audio/train_data.npy: NaN or inf values (first at row 3)"
    if case == "rows_disagree":
        np.save(dst / "test_labels.npy", np.zeros(N_TEST + 1, np.int64))
        return "test_labels.npy: 6 rows"
    if case == "label_range":
        np.save(dst / "train_labels.npy", np.full(N_TRAIN, 10))
        return "train_labels.npy: labels must lie in [0, 9]"
    if case == "not_npy":
        (dst / "train_labels.npy").write_text("not an array")
        return "train_labels.npy: not a readable .npy array"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_file", "wrong_shape", "nan", "rows_disagree",
                                  "label_range", "not_npy"])
def test_multibench_corrupted(capsys, multibench, data_dir, tmp_path, case):
    want = corrupt_multibench(multibench[0], tmp_path / "bad", case)
    one_line_error(capsys, ["data", "prepare", "multibench_avmnist", "--from",
                            str(tmp_path / "bad")], want)
    assert not (data_dir / "tfds").exists()  # validation happens before tfds writes anything


def test_missing_folder_says_where_published(capsys, data_dir, tmp_path):
    err = one_line_error(capsys, ["data", "prepare", "multibench_avmnist", "--from",
                                  str(tmp_path / "nowhere")], f"{tmp_path / 'nowhere'}: no such")
    assert "github.com/pliang279/MultiBench" in err
    err = one_line_error(capsys, ["data", "prepare", "smil_avmnist", "--from",
                                  str(tmp_path / "nowhere")], "no such directory")
    assert "github.com/mengmenm/SMIL" in err
    one_line_error(capsys, ["data", "prepare", "smil_avmnist"], "needs --from PATH")
    one_line_error(capsys, ["data", "prepare", "mfeat", "--from", "x"], "mmjax data build mfeat")


# ------------------------------------------------------------------------------------------------
# SMIL's avMNIST
# ------------------------------------------------------------------------------------------------

SPEAKERS = ("jackson", "nicolas", "theo")


def tone(digit: int, speaker: int, idx: int) -> np.ndarray:
    """A short int16 "recording" whose pitch encodes (digit, speaker, idx)."""
    t = np.arange(1600) / 8000.0
    f = 200.0 + 60.0 * digit + 15.0 * speaker + 2.0 * idx
    return (8000 * np.sin(2 * np.pi * f * t) * np.hanning(len(t))).astype(np.int16)


def write_smil(root: pathlib.Path, n_train_images=107, n_test_images=47) -> None:
    for split, n_img in (("train", n_train_images), ("test", n_test_images)):
        for d in range(10):
            folder = root / "mnist" / split / str(d)
            folder.mkdir(parents=True)
            for j in range(n_img):
                # Pixel (0, 0) stores j so the test can tell which images were taken.
                px = np.full((28, 28), d * 20, np.uint8)
                px[0, 0] = j
                Image.fromarray(px, mode="L").save(folder / f"{j:05d}.png")
            folder = root / "sound_450" / split / str(d)
            folder.mkdir(parents=True)
            idxs = range(15, 50) if split == "train" else range(15)
            for s, speaker in enumerate(SPEAKERS):
                for i in idxs:
                    scipy.io.wavfile.write(folder / f"{d}_{speaker}_{i}.wav", 8000, tone(d, s, i))


@pytest.fixture(scope="module")
def smil(tmp_path_factory):
    src = tmp_path_factory.mktemp("smil") / "avmnist"
    write_smil(src)
    return src


@pytest.fixture(scope="module")
def smil_prepared(smil, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("smil-data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMJAX_DATA_DIR", str(data_dir))
        assert cli.main(["data", "prepare", "smil_avmnist", "--from", str(smil)]) == 0
    return data_dir


def test_smil_pairing_and_protocol(smil_prepared):
    ds = mmjax.data.load("smil_avmnist", data_dir=smil_prepared, per_class_num=15)
    assert ds.spec.shapes == ((28, 28, 1), (20, 20, 1))
    assert set(ds.splits) == {"train", "test"}
    train, test = ds.splits["train"], ds.splits["test"]
    for name, split in ds.splits.items():
        validate_split(ds.spec, split, name)
    assert len(train) == 1050 and len(test) == 450
    assert np.bincount(train.label).tolist() == [105] * 10
    assert train.present[:, 0].all() and test.present.all()
    paired = train.present[:, 1].reshape(10, 105)
    assert paired[:, :15].all() and not paired[:, 15:].any()  # the first per_class_num per digit
    assert not train.inputs["audio"][~train.present[:, 1]].any()  # zero-filled
    # First 105 train images, last 45 test images (pixel (0, 0) holds the file index).
    first = np.rint((train.inputs["image"][:, 0, 0, 0] * 0.5 + 0.5) * 255).astype(int)
    assert first.reshape(10, 105)[3].tolist() == list(range(105))
    last = np.rint((test.inputs["image"][:, 0, 0, 0] * 0.5 + 0.5) * 255).astype(int)
    assert last.reshape(10, 45)[7].tolist() == list(range(2, 47))
    # Image j of digit d is paired with jackson's first 5, nicolas' first 5 and theo's first 5
    # recordings in file-name order; audio standardised per coefficient with those recordings.
    expect = np.stack([mfcc.mfcc(tone(d, g, 15 + r) / 32768.0, 8000)
                       for d in range(10) for g in range(3) for r in range(5)])
    mean = expect.mean(axis=(0, 2))[:, None]
    std = expect.std(axis=(0, 2))[:, None]
    np.testing.assert_allclose(train.inputs["audio"][train.present[:, 1]][..., 0],
                               (expect - mean) / std, atol=2e-4)
    # Test recordings in file-name order: 0, 1, 10, .., 14, 2, .., 9 per speaker.
    order = sorted(range(15), key=str)
    expect = np.stack([mfcc.mfcc(tone(4, g, i) / 32768.0, 8000) for g in range(3) for i in order])
    np.testing.assert_allclose(test.inputs["audio"][4 * 45:5 * 45, ..., 0], (expect - mean) / std,
                               atol=2e-4)
    # Audio standardised per coefficient with the paired training recordings.
    np.testing.assert_allclose(train.inputs["audio"][train.present[:, 1]].mean(axis=(0, 2)), 0,
                               atol=1e-4)
    assert abs(train.inputs["image"].min() + 1) < 1e-6


def test_smil_options(smil_prepared):
    ds = mmjax.data.load("smil_avmnist", data_dir=smil_prepared, mfcc_variant="smil")
    assert ds.splits["train"].present[:, 1].sum() == 210  # default per_class_num 21
    text = mmjax.data.info("smil_avmnist", data_dir=smil_prepared)
    assert "test    450 samples" in text and "modality audio  float32 [20, 20, 1]" in text
    for bad in ({"per_class_num": 20}, {"per_class_num": 108}, {"mfcc_variant": "librosa"}):
        with pytest.raises(UserError, match="per_class_num|mfcc_variant"):
            mmjax.data.load("smil_avmnist", data_dir=smil_prepared, **bad)


def test_smil_options_from_the_command_line(capsys, smil_prepared, monkeypatch):
    monkeypatch.setenv("MMJAX_DATA_DIR", str(smil_prepared))
    code, out, err = run_cli(capsys, ["data", "info", "smil_avmnist", "--set",
                                      "data.per_class_num=15", "--set", "data.mfcc_variant=smil"])
    assert code == 0, err
    assert "'per_class_num': 15, 'mfcc_variant': 'smil'" in out
    one_line_error(capsys, ["data", "info", "smil_avmnist", "--set", "data.per_class_num=20"],
                   "per_class_num must be a multiple of 3")
    one_line_error(capsys, ["data", "info", "mfeat", "--set", "data.num_valid=3"],
                   "data.num_valid only applies to multibench_avmnist, not mfeat")


def corrupt_smil(src: pathlib.Path, dst: pathlib.Path, case: str) -> str:
    shutil.copytree(src, dst, copy_function=os.link)  # hard links: cheap; replaced files unlinked
    if case == "missing_folder":
        shutil.rmtree(dst / "sound_450" / "test" / "6")
        return "sound_450/test/6: no such directory"
    if case == "too_few_images":
        for j in range(3, 107):
            os.remove(dst / "mnist" / "train" / "2" / f"{j:05d}.png")
        return "mnist/train/2: 3 PNG images"
    if case == "wrong_image_size":
        f = dst / "mnist" / "test" / "9" / "00046.png"
        os.remove(f)
        Image.fromarray(np.zeros((32, 32), np.uint8), mode="L").save(f)
        return "mnist/test/9/00046.png: image is 32x32"
    if case == "bad_wav_name":
        os.link(dst / "sound_450" / "train" / "1" / "1_theo_21.wav",
                dst / "sound_450" / "train" / "1" / "one_theo.wav")
        return "sound_450/train/1/one_theo.wav: file name must be"
    if case == "nan_wav":
        f = dst / "sound_450" / "train" / "5" / "5_jackson_30.wav"
        os.remove(f)
        x = tone(5, 0, 30).astype(np.float32)
        x[10] = np.nan
        scipy.io.wavfile.write(f, 8000, x)
        return "sound_450/train/5/5_jackson_30.wav: NaN or inf samples"
    if case == "not_a_wav":
        f = dst / "sound_450" / "test" / "0" / "0_nicolas_3.wav"
        os.remove(f)
        f.write_bytes(b"RIFF....")
        return "sound_450/test/0/0_nicolas_3.wav: not a readable WAV file"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_folder", "too_few_images", "wrong_image_size",
                                  "bad_wav_name", "nan_wav", "not_a_wav"])
def test_smil_corrupted(capsys, smil, data_dir, tmp_path, case):
    want = corrupt_smil(smil, tmp_path / "bad", case)
    one_line_error(capsys, ["data", "prepare", "smil_avmnist", "--from", str(tmp_path / "bad")],
                   str(tmp_path / "bad" / want))
    assert not (data_dir / "tfds").exists()


# ------------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------------

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"


@pytest.mark.parametrize("dataset,method", [(d, m) for d in ("multibench_avmnist", "smil_avmnist")
                                            for m in ("concat", "augmentation")])
def test_configs_build_their_models(dataset, method):
    from mmjax import config as config_lib
    from mmjax import methods

    config = config_lib.load(str(CONFIGS / dataset / f"{method}.py") + ":quick")
    assert config.data.name == dataset
    module = multibench_avmnist if dataset == "multibench_avmnist" else smil_avmnist
    methods.make(config, module.spec())  # builds every encoder abstractly: shapes must fit


def test_smil_config_runs_setup(smil_prepared, monkeypatch):
    from mmjax import config as config_lib
    from mmjax import train

    monkeypatch.setenv("MMJAX_DATA_DIR", str(smil_prepared))
    config = config_lib.load(str(CONFIGS / "smil_avmnist" / "concat.py") + ":quick")
    s = train.setup(config)
    assert len(s.dataset.splits["train"]) == 1050
    assert s.dataset.splits["train"].present[:, 1].sum() == 210


@pytest.mark.slow
def test_spec_lenet_encoder():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from mmjax.models import encoders

    enc = encoders.make_encoder("spec_lenet", (112, 112, 1), hidden=8, out_dim=8, dropout=0.0,
                                rngs=nnx.Rngs(0))
    assert enc.out_dim == 192
    # MultiBench's LeNet(1, 6, 5): bias-free convs 5x5 then 3x3, BatchNorm scale and bias.
    params = nnx.state(enc, nnx.Param)
    n = sum(x.size for x in jax.tree.leaves(params))
    chans = (1, 6, 12, 24, 48, 96, 192)
    convs = sum(a * b * (25 if i == 0 else 9) for i, (a, b) in enumerate(zip(chans, chans[1:])))
    assert n == convs + 2 * sum(chans[1:])
    out = enc(jnp.ones((2, 112, 112, 1)), deterministic=True)
    assert out.shape == (2, 192) and bool(jnp.isfinite(out).all())
    with pytest.raises(UserError, match="spec_lenet"):
        encoders.make_encoder("spec_lenet", (20, 20, 1), hidden=8, out_dim=8, dropout=0.0,
                              rngs=nnx.Rngs(0))


SMIL_CONFIGS = ("smil", "lower_bound", "upper_bound", "ae_imputation")


@pytest.mark.parametrize("name", SMIL_CONFIGS)
def test_smil_avmnist_configs_share_smils_budget_and_build(name):
    """SMIL's Figure 4 lines on SMIL's avMNIST: the paper's 15,000 iterations each (SMIL's two
    pretraining phases inside them), the dataset's own pairing, the upper bound on every image
    paired; each builds its models against the dataset's spec."""
    from mmjax import config as config_lib
    from mmjax import methods

    config = config_lib.load(str(CONFIGS / "smil_avmnist" / f"{name}.py"))
    assert config.data.name == "smil_avmnist" and config.train.steps == 15_000
    assert config.missing.protocol == "none"
    assert config.data.per_class_num == (105 if name == "upper_bound" else 21)
    if name == "smil":
        assert config.method.memory_size >= 10 * smil_avmnist.TRAIN_IMAGES  # every image paired
    methods.make(config_lib.load(str(CONFIGS / "smil_avmnist" / f"{name}.py") + ":quick"),
                 smil_avmnist.spec())


@pytest.mark.slow
@pytest.mark.parametrize("name", SMIL_CONFIGS)
def test_smil_avmnist_configs_train_and_evaluate(name, smil_prepared, tmp_path, monkeypatch,
                                                 capsys):
    """Each Figure 4 config trains (through every phase) and evaluates on the fixture with
    ``mmjax train``: image alone and image + audio on the test pairs."""
    import json

    monkeypatch.setenv("MMJAX_DATA_DIR", str(smil_prepared))
    small = ["train.steps=10", "train.batch_size=8", "train.steps_per_call=1"]
    small += {"smil": ["method.phase1_steps=2", "method.phase2_steps=2", "method.memory_size=256"],
              "ae_imputation": ["method.ae_steps=3"]}.get(name, [])
    argv = ["train", "--config", str(CONFIGS / "smil_avmnist" / f"{name}.py") + ":quick",
            "--workdir", str(tmp_path / name)]
    code, _, err = run_cli(capsys, argv + [a for s in small for a in ("--set", s)])
    assert code == 0, err
    result = json.loads((tmp_path / name / "eval.json").read_text())
    for subset in ("image", "image+audio"):
        assert 0.0 <= result["subsets"][subset]["accuracy"] <= 1.0
