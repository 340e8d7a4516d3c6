"""AV-MNIST-offline: the full default dataset through mmjax.data.load; small builds for the rest."""

import hashlib
import json
import sys

import numpy as np
import pytest

import mmjax.data
from mmjax.data import avmnist_offline, speech
from mmjax.data.base import validate_split
from mmjax.errors import UserError


@pytest.fixture(scope="module")
def full():
    return mmjax.data.load("avmnist_offline")


@pytest.fixture(scope="module")
def full_npz():
    return np.load(mmjax.data.build("avmnist_offline"))


def test_spec_shapes_dtypes_and_ranges(full):
    assert full.spec.modalities == ("image", "audio")
    assert full.spec.shapes == ((28, 28, 1), (20, 20, 1))
    assert full.spec.task == "classification" and full.spec.num_classes == 10
    for name, split in full.splits.items():
        validate_split(full.spec, split, name)
        img, aud = split.inputs["image"], split.inputs["audio"]
        assert img.dtype == aud.dtype == np.float32
        assert img.min() >= 0.0 and img.max() <= 1.0
        assert split.label.dtype == np.int32
        assert split.present.all() and split.present.shape == (len(split), 2)


def test_split_sizes_and_class_balance(full):
    sizes = {"train": 350, "val": 50, "test": 100}
    total = np.zeros(10, int)
    for name, per_class in sizes.items():
        counts = np.bincount(full.splits[name].label, minlength=10)
        assert counts.tolist() == [per_class] * 10, name
        total += counts
    assert total.tolist() == [500] * 10


def test_audio_standardised_with_train_stats(full):
    train = full.splits["train"].inputs["audio"][..., 0]
    np.testing.assert_allclose(train.mean(axis=(0, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(train.std(axis=(0, 2)), 1.0, atol=1e-3)
    test = full.splits["test"].inputs["audio"][..., 0]
    assert np.abs(test.mean(axis=(0, 2))).max() < 0.5  # same statistics, not re-standardised


def test_images_are_the_real_mnist_sample(full):
    images, labels = avmnist_offline.load_mnist_5k()
    pool = {hashlib.sha1(im.tobytes()).hexdigest(): int(y) for im, y in zip(images, labels)}
    for split in full.splits.values():
        for im, y in zip(split.inputs["image"][:50], split.label[:50]):
            key = hashlib.sha1(np.round(im[..., 0] * 255).astype(np.uint8).tobytes()).hexdigest()
            assert pool.get(key) == y


def test_test_voices_never_in_train_or_val(full_npz):
    variant = full_npz["voice_meta"][:, 1].astype(int)
    split = full_npz["split"]
    test_v, train_v, val_v = (set(variant[split == c]) for c in (2, 0, 1))
    assert test_v and not test_v & train_v and not test_v & val_v
    assert val_v <= train_v  # val shares the training voices (documented)
    assert len(test_v | train_v) >= 90  # nearly all 104 variants are used


def test_voice_parameters_within_recipe(full_npz):
    cols = list(full_npz["voice_meta_columns"])
    meta = full_npz["voice_meta"]
    snr = meta[:, cols.index("snr_db")]
    assert 5.0 <= snr.min() and snr.max() < 30.0
    assert set(meta[:, cols.index("accent")].astype(int)) == set(range(len(speech.ACCENTS)))


def test_modalities_are_informative_and_complementary(full):
    # Nearest class centroid on the test split (a weak classifier, so the bands are loose); the
    # fused score adds each modality's distances divided by their mean (late fusion).
    tr, te = full.splits["train"], full.splits["test"]

    def distances(m):
        x_tr, x_te = (s.inputs[m].reshape(len(s), -1) for s in (tr, te))
        cent = np.stack([x_tr[tr.label == c].mean(0) for c in range(10)])
        d = ((x_te[:, None] - cent[None]) ** 2).sum(-1)
        return d / d.mean()

    d_img, d_aud = distances("image"), distances("audio")
    acc = lambda d: float((d.argmin(1) == te.label).mean())  # noqa: E731
    a_img, a_aud, a_both = acc(d_img), acc(d_aud), acc(d_img + d_aud)
    assert 0.65 < a_img < 0.97 and 0.65 < a_aud < 0.97, (a_img, a_aud)
    assert a_both > max(a_img, a_aud) + 0.03, (a_img, a_aud, a_both)


def test_pca_energy_knob_removes_image_information(full):
    images = np.concatenate([full.splits[s].inputs["image"] for s in ("train", "test")])
    is_train = np.arange(len(images)) < len(full.splits["train"])
    errors = []
    for energy in (1.0, 0.9, 0.5, 0.25):
        rec = avmnist_offline.pca_degrade(images, is_train, energy)
        assert rec.shape == images.shape and rec.dtype == np.float32
        errors.append(float(np.mean((rec - images) ** 2)))
    assert errors[0] == 0.0
    assert errors[0] < errors[1] < errors[2] < errors[3]


def test_pca_knob_through_load(full):
    degraded = mmjax.data.load("avmnist_offline", image_pca_energy=0.5)
    a, b = full.splits["test"], degraded.splits["test"]
    np.testing.assert_array_equal(a.inputs["audio"], b.inputs["audio"])
    assert np.mean((a.inputs["image"] - b.inputs["image"]) ** 2) > 1e-3
    with pytest.raises(UserError, match="image_pca_energy"):
        mmjax.data.load("avmnist_offline", image_pca_energy=0.0)


@pytest.mark.slow
def test_small_build_is_byte_reproducible(tmp_path):
    a = avmnist_offline.build(tmp_path / "a", n_per_class=10)
    b = avmnist_offline.build(tmp_path / "b", n_per_class=10)
    assert a.read_bytes() == b.read_bytes()
    meta = json.loads((a.parent / "build.json").read_text())
    assert meta["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest()
    assert not list(a.parent.glob("*.tmp")), "no temporary files may stay behind"
    c = avmnist_offline.build(tmp_path / "a", n_per_class=10, seed=1)
    assert c.parent != a.parent and c.read_bytes() != a.read_bytes()
    # The noise range is part of the cache key (checked without a third build).
    params = dict(seed=0, snr_db=(5.0, 30.0), n_per_class=10, mfcc_variant="mmjax")
    keys = {avmnist_offline._cache_key(avmnist_offline._check_build_params(**params), {})}
    params["snr_db"] = (0.0, 5.0)
    keys.add(avmnist_offline._cache_key(avmnist_offline._check_build_params(**params), {}))
    assert len(keys) == 2
    with np.load(a) as z:
        assert np.bincount(z["label"]).tolist() == [10] * 10
        assert np.bincount(z["split"]).tolist() == [70, 10, 20]


def test_smil_mfcc_variant_builds(tmp_path):
    ds = mmjax.data.load("avmnist_offline", data_dir=str(tmp_path), n_per_class=10,
                         mfcc_variant="smil")
    aud = ds.splits["train"].inputs["audio"]
    assert aud.shape == (70, 20, 20, 1) and np.isfinite(aud).all()


def test_views_option_selects_modalities(full):
    audio_only = mmjax.data.load("avmnist_offline", views=("audio",))
    assert audio_only.spec.modalities == ("audio",) and audio_only.spec.shapes == ((20, 20, 1),)
    test = audio_only.splits["test"]
    assert test.present.shape == (1000, 1) and set(test.inputs) == {"audio"}
    np.testing.assert_array_equal(test.inputs["audio"], full.splits["test"].inputs["audio"])
    swapped = mmjax.data.load("avmnist_offline", views=("audio", "image"))
    assert swapped.spec.modalities == ("audio", "image")
    with pytest.raises(UserError, match="valid views: image, audio"):
        mmjax.data.load("avmnist_offline", views=("video",))


def test_bad_options_are_user_errors():
    with pytest.raises(UserError, match="valid options: views, seed, snr_db"):
        mmjax.data.load("avmnist_offline", noise=3)
    with pytest.raises(UserError, match="valid datasets: avmnist_offline, mfeat"):
        mmjax.data.load("avmnist")
    with pytest.raises(UserError, match="snr_db"):
        mmjax.data.load("avmnist_offline", snr_db=(30.0, 5.0))
    with pytest.raises(UserError, match="n_per_class"):
        mmjax.data.build("avmnist_offline", n_per_class=1000)


def test_missing_synthesiser_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # makes the import fail
    monkeypatch.setattr(speech, "_engine", None)
    with pytest.raises(UserError, match=r"pip install 'mmjax\[demo\]'"):
        speech.sample_rate()


def test_sample_grid_png(tmp_path, full):
    out = avmnist_offline.save_sample_grid(tmp_path / "grid.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 200_000


def test_tensorflow_never_imported(full):
    assert "tensorflow" not in sys.modules


# The default split, fingerprinted: sha256 over (split, id, label) of every sample, measured on
# the build the committed experiments use (seed 0, n_per_class 500; the same from a fresh build
# by the code before ``regime`` existed). A change of the default regime or of the split recipe
# changes it.
DEFAULT_SPLIT_SHA256 = "934e3c54c14513a5b8c2ce38da65310fcf91307675861d57c4139211a712c3c1"


def _split_fingerprint(raw) -> str:
    h = hashlib.sha256()
    for s in avmnist_offline.SPLITS:
        h.update(s.encode())
        h.update(np.asarray(raw[s]["id"], np.int64).tobytes())
        h.update(np.asarray(raw[s]["label"], np.int64).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def full_raw():
    from mmjax.data import prepared

    return avmnist_offline.read_raw(mmjax.data.build("avmnist_offline"), prepared.data_root())


def test_default_regime_keeps_the_committed_split(full_raw, full):
    assert avmnist_offline.select_regime(full_raw, "mmjax") is full_raw
    assert _split_fingerprint(full_raw) == DEFAULT_SPLIT_SHA256
    for s in avmnist_offline.SPLITS:  # what load() returns is that split
        np.testing.assert_array_equal(full.splits[s].label, full_raw[s]["label"])


def test_smil_regime_sizes_class_balance_and_disjoint_splits(full_raw):
    """SMIL's avMNIST sizes per digit: 105 train, 45 val, 45 test; each taken from the build's
    own split (so the three are disjoint and test keeps its unseen voices), first in build order."""
    smil = avmnist_offline.select_regime(full_raw, "smil")
    for s, per_class in (("train", 105), ("val", 45), ("test", 45)):
        assert np.bincount(smil[s]["label"], minlength=10).tolist() == [per_class] * 10, s
        assert set(smil[s]["id"]) <= set(full_raw[s]["id"]), s
        for c in range(10):  # the first per_class of the digit, in build (id) order
            ids = full_raw[s]["id"][full_raw[s]["label"] == c]
            np.testing.assert_array_equal(smil[s]["id"][smil[s]["label"] == c], ids[:per_class])
    train, val, test = (set(smil[s]["id"].tolist()) for s in avmnist_offline.SPLITS)
    assert not train & val and not train & test and not val & test
    assert not set(smil["test"]["variant"]) & set(smil["train"]["variant"])
    ds = avmnist_offline.from_raw(smil)
    assert {s: len(ds.splits[s]) for s in ds.splits} == {"train": 1050, "val": 450, "test": 450}
    audio = ds.splits["train"].inputs["audio"][..., 0]  # standardised with the 1,050's statistics
    np.testing.assert_allclose(audio.mean(axis=(0, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(audio.std(axis=(0, 2)), 1.0, atol=1e-3)


def test_regime_is_checked_before_building():
    """An unknown regime, or one a build is too small for, is refused from the option values
    alone; the smallest build it fits is accepted."""
    assert avmnist_offline.split_sizes(500) == {"train": 350, "val": 50, "test": 100}
    with pytest.raises(UserError, match="regime=smil takes 105 train samples per digit; "
                                        "n_per_class=10 gives 7 "):
        avmnist_offline.check_regime("smil", 10)
    with pytest.raises(UserError, match="regime=smil takes 45 val samples per digit; "
                                        "n_per_class=440 gives 44 "):
        avmnist_offline.check_regime("smil", 440)
    avmnist_offline.check_regime("smil", 450)
    with pytest.raises(UserError, match="regime must be one of mmjax, smil, got 'paper'"):
        avmnist_offline.check_regime("paper", 500)
