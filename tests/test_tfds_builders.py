"""tfds builders: array_record on disk, exact round trip, id order, no TensorFlow, fast loads."""

import sys
import time

import numpy as np
import pytest

import mmjax.data
from mmjax.data import avmnist_offline, mfeat


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds-small")
    npz = avmnist_offline.build(root, n_per_class=10)
    return root, npz


def test_avmnist_roundtrip_is_exact(small):
    root, npz = small
    raw = avmnist_offline.read_raw(npz, root)
    with np.load(npz) as z:
        for code, s in enumerate(avmnist_offline.SPLITS):
            rows = np.flatnonzero(z["split"] == code)
            np.testing.assert_array_equal(raw[s]["id"], rows)  # restored to source order
            np.testing.assert_array_equal(raw[s]["image"][..., 0], z["image"][rows])
            assert raw[s]["audio"].dtype == np.float16
            np.testing.assert_array_equal(raw[s]["audio"], z["audio"][rows])
            np.testing.assert_array_equal(raw[s]["label"], z["label"][rows])
            np.testing.assert_array_equal(raw[s]["variant"], z["voice_meta"][rows, 1].astype(int))


def test_files_are_array_record_and_self_describing(small):
    import tensorflow_datasets as tfds

    root, npz = small
    builder = avmnist_offline.builder(npz, root)
    files = sorted(p.name for p in (root / "tfds").rglob("*") if p.is_file())
    assert any(".array_record-" in f for f in files)
    assert not any("tfrecord" in f for f in files)
    again = tfds.builder_from_directory(builder.data_dir)
    source = again.as_data_source(split="test")
    assert len(source) == 20 and set(source[0]) >= {"id", "image", "audio", "label"}


def test_mfeat_builder_split_sizes(tmp_path):
    builder = mfeat.builder(tmp_path, seed=0)
    sizes = {s: builder.info.splits[s].num_examples for s in ("train", "val", "test")}
    assert sizes == {"train": 1400, "val": 200, "test": 400}


def test_full_load_is_fast_after_the_first_build():
    mmjax.data.build("avmnist_offline")
    start = time.perf_counter()
    ds = mmjax.data.load("avmnist_offline")
    assert time.perf_counter() - start < 3.0
    assert len(ds.splits["train"]) == 3500


def test_build_returns_the_same_cached_path():
    assert mmjax.data.build("avmnist_offline") == mmjax.data.build("avmnist_offline")
    assert mmjax.data.build("mfeat").is_dir()


def test_tensorflow_is_never_imported():
    assert "tensorflow" not in sys.modules
