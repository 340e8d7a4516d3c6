"""Tests for the missing-modality protocols (mmjax/data/missing.py).

Bernoulli tolerances are 5 binomial standard deviations, sqrt(n p (1 - p)): a correct sampler
fails one check with probability below 1e-6, and the keys are fixed, so the tests are
deterministic anyway.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.data import missing
from mmjax.errors import UserError


# Jitted entry points with the static arguments marked: one compiled program per shape instead of
# one per primitive keeps the suite fast on a cold compile cache. Rates passed as Python values are
# traced here, so validation is tested separately on the plain functions.
_independent = jax.jit(
    missing.independent, static_argnums=1, static_argnames=("exact", "forbid_empty")
)
_at_least_one = jax.jit(missing.at_least_one, static_argnums=(1, 2), static_argnames="exact")
_paired_fraction = jax.jit(
    missing.paired_fraction, static_argnums=(1, 2), static_argnames="complete"
)
_augmentation_dropout = jax.jit(missing.augmentation_dropout, static_argnames="mode")


def _within_5_sigma(count, n, p):
    return abs(float(count) - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1e-9


# ---------------------------------------------------------------------------------------------
# check_rate


@pytest.mark.parametrize(
    "value", [0, 1, 0.3, np.float32(0.5), [0.2, 0.5, 0.8], np.array([0.0, 1.0])]
)
def test_check_rate_accepts_rates(value):
    missing.check_rate("rate", value)


@pytest.mark.parametrize(
    "value", [1.5, -0.1, float("nan"), True, "0.3", [0.2, 1.2], np.array([2.0])]
)
def test_check_rate_rejects(value):
    with pytest.raises(UserError, match="rate"):
        missing.check_rate("rate", value)


def test_check_rate_skips_tracers():
    @jax.jit
    def f(r):
        missing.check_rate("rate", r)  # a tracer: must not raise nor try to read its value
        return r

    assert float(f(jnp.float32(3.0))) == 3.0


def test_python_rates_are_validated(key):
    with pytest.raises(UserError):
        missing.independent(key, 10, (0.2, 1.5))
    with pytest.raises(UserError):
        missing.at_least_one(key, 10, 3, -0.2)
    with pytest.raises(UserError):
        missing.paired_fraction(key, 10, 2, 2.0)
    with pytest.raises(UserError):
        missing.augmentation_dropout(key, jnp.ones((4, 2), bool), 1.1)


# ---------------------------------------------------------------------------------------------
# independent (RedCore)


def test_independent_exact_counts(key):
    present = _independent(key, 1000, (0.2, 0.5, 0.8))
    assert present.shape == (1000, 3) and present.dtype == jnp.bool_
    np.testing.assert_array_equal((~present).sum(0), [200, 500, 800])


def test_independent_counts_truncate_like_released_code(key):
    # RedCore: size=int(num_sample * ratio), a truncation: int(5 * 0.7) = int(3.5) = 3 where
    # rounding would give 4; int(7 * 0.5) = 3. int(10 * 0.7) = int(7.000000000000001) = 7 in
    # Python although float32 computes 0.7 * 10 as 6.9999995: the count must still be 7.
    assert int((~_independent(key, 5, (0.7,))).sum()) == 3
    assert int((~_independent(key, 10, (0.7,))).sum()) == 7
    assert int((~_independent(key, 7, (0.5,))).sum()) == 3  # int(3.5)


def test_independent_modalities_are_independent(key):
    # 250 of 1000 missing in each column: the overlap is hypergeometric with mean 250 * 250 / 1000
    # = 62.5 and variance 250 * (250 / 1000) * (750 / 1000) * (750 / 999) = 35.2 (sd 5.9).
    present = _independent(key, 1000, (0.25, 0.25))
    both = int((~present).all(1).sum())
    assert abs(both - 62.5) <= 5 * 5.94


@pytest.mark.parametrize("seed", range(3))
def test_independent_forbid_empty_keeps_exact_counts(seed):
    # Feasible whenever sum of counts <= n (M - 1); (0.4, 0.55) and (0.9, 0.3, 0.6, 0.8) are close.
    key = jax.random.key(seed)
    for rates in [(0.2, 0.5, 0.8), (0.5, 0.5, 0.5), (0.4, 0.55), (0.9, 0.3, 0.6, 0.8)]:
        n = 1000
        present = _independent(key, n, rates, forbid_empty=True)
        assert bool(present.any(1).all())
        want = [int(n * r) for r in rates]
        np.testing.assert_array_equal((~present).sum(0), want)


def test_independent_forbid_empty_infeasible_still_never_empty(key):
    # counts 8 + 8 + 8 = 24 > n (M - 1) = 20: impossible to keep both; emptiness wins.
    present = _independent(key, 10, (0.8, 0.8, 0.8), forbid_empty=True)
    assert bool(present.any(1).all())
    assert bool(((~present).sum(0) <= 8).all())


def test_independent_bernoulli_rates(key):
    n = 20000
    rates = (0.1, 0.5, 0.9)
    present = _independent(key, n, rates, exact=False)
    for m, r in enumerate(rates):
        assert _within_5_sigma((~present[:, m]).sum(), n, r)


def test_independent_bernoulli_forbid_empty(key):
    n = 20000
    rates = (0.5, 0.6, 0.7)
    present = _independent(key, n, rates, exact=False, forbid_empty=True)
    assert bool(present.any(1).all())
    # Repair restores one of M modalities uniformly: rate_m - prod(rates) / M.
    prod = 0.5 * 0.6 * 0.7
    for m, r in enumerate(rates):
        assert _within_5_sigma((~present[:, m]).sum(), n, r - prod / 3)


def test_independent_determinism(key):
    a = _independent(key, 1000, (0.2, 0.5, 0.8), forbid_empty=True)
    b = _independent(key, 1000, (0.2, 0.5, 0.8), forbid_empty=True)
    c = _independent(jax.random.key(1), 1000, (0.2, 0.5, 0.8), forbid_empty=True)
    np.testing.assert_array_equal(a, b)
    assert bool((a != c).any())


def test_independent_no_retrace_when_rates_change(key):
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(k, rates):
        return _independent(k, 400, rates, forbid_empty=True)

    for rates in [(0.2, 0.5, 0.8), (0.5, 0.5, 0.5), (0.0, 0.9, 0.1)]:
        present = f(key, jnp.asarray(rates, jnp.float32))
        np.testing.assert_array_equal((~present).sum(0), [int(400 * r) for r in rates])

    @jax.jit
    @chex.assert_max_traces(n=1)
    def g(k, rates):
        return _independent(k, 400, rates, exact=False)

    g(key, jnp.array([0.1, 0.2]))
    g(key, jnp.array([0.7, 0.3]))


# ---------------------------------------------------------------------------------------------
# at_least_one (CPM-Net / MLA)


@pytest.mark.parametrize("m,rate", [(3, 0.1), (3, 0.5), (2, 0.3), (4, 0.7)])
def test_at_least_one_exact_entry_count(key, m, rate):
    n = 1000
    present = _at_least_one(key, n, m, rate)
    assert bool(present.any(1).all())
    assert int((~present).sum()) == round(rate * n * m)


def test_at_least_one_saturates_to_one_modality(key):
    # rate >= (M - 1) / M: exactly one modality per sample, as CPM-Net's one-hot branch.
    for rate in (2 / 3, 0.9, 1.0):
        present = _at_least_one(key, 1000, 3, rate)
        np.testing.assert_array_equal(present.sum(1), np.ones(1000))
    # ... and that one modality is uniform: each column ~ Binomial(1000, 1/3).
    for m in range(3):
        assert _within_5_sigma(present[:, m].sum(), 1000, 1 / 3)


def test_at_least_one_single_modality(key):
    np.testing.assert_array_equal(_at_least_one(key, 5, 1, 0.5), np.ones((5, 1), bool))


def test_at_least_one_rate_zero_is_complete(key):
    assert bool(_at_least_one(key, 1000, 3, 0.0).all())


def test_at_least_one_bernoulli(key):
    n, m, rate = 20000, 3, 0.4
    present = _at_least_one(key, n, m, rate, exact=False)
    assert bool(present.any(1).all())
    # The n (M - 1) non-kept entries are missing with probability rate M / (M - 1) = 0.6.
    assert _within_5_sigma((~present).sum(), n * (m - 1), rate * m / (m - 1))


def test_test_missing_rate_matches_at_least_one(key):
    a = jax.jit(missing.test_missing_rate, static_argnums=(1, 2))(key, 1000, 3, 0.4)
    b = _at_least_one(key, 1000, 3, 0.4, exact=True)
    np.testing.assert_array_equal(a, b)
    assert int((~a).sum()) == 1200  # 0.4 * 1000 * 3


def test_at_least_one_no_retrace(key):
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(k, rate):
        return _at_least_one(k, 200, 3, rate)

    for rate in (0.1, 0.3, 0.6, 0.9):
        present = f(key, jnp.float32(rate))
        assert int((~present).sum()) == min(round(rate * 600), 400)


# ---------------------------------------------------------------------------------------------
# paired_fraction (SMIL)


def test_paired_fraction_unstratified(key):
    present = _paired_fraction(key, 1050, 2, 0.2)
    assert bool(present[:, 0].all())
    assert int(present[:, 1].sum()) == 210


def test_paired_fraction_complete_index_and_shared_pairing(key):
    present = _paired_fraction(key, 100, 3, 0.3, complete=2)
    assert bool(present[:, 2].all())
    np.testing.assert_array_equal(present[:, 0], present[:, 1])  # one paired subset D^f
    assert int(present[:, 0].sum()) == 30


def test_paired_fraction_stratified_like_smil(key):
    # SMIL avMNIST: 105 training images per class, 15 of them paired with sound (eta = 15/105).
    label = jnp.repeat(jnp.arange(10), 105)
    label = jax.random.permutation(jax.random.key(7), label)
    present = _paired_fraction(key, 1050, 2, 15 / 105, label=label)
    per_class = np.bincount(np.asarray(label)[np.asarray(present[:, 1])], minlength=10)
    np.testing.assert_array_equal(per_class, np.full(10, 15))
    assert bool(present[:, 0].all())


def test_paired_fraction_stratified_uneven_classes(key):
    # class sizes 10, 5, 1 with eta = 0.3:
    #   round(3.0) = 3, round(1.5) = 2 (halves up), round(0.3) = 0
    label = jnp.array([0] * 10 + [1] * 5 + [2])
    present = _paired_fraction(key, 16, 2, 0.3, label=label)
    per_class = np.bincount(np.asarray(label)[np.asarray(present[:, 1])], minlength=3)
    np.testing.assert_array_equal(per_class, [3, 2, 0])


def test_paired_fraction_no_retrace(key):
    label = jnp.repeat(jnp.arange(4), 25)

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(k, eta, y):
        return _paired_fraction(k, 100, 2, eta, label=y)

    for eta in (0.1, 0.2, 0.4):
        assert int(f(key, jnp.float32(eta), label)[:, 1].sum()) == 4 * round(25 * eta + 1e-9)
    f(key, jnp.float32(0.5), jnp.flip(label))


# ---------------------------------------------------------------------------------------------
# augmentation_dropout (UME-MMA)


def test_augmentation_dropout_one_mode_marginals(key):
    n = 20000
    out = _augmentation_dropout(key, jnp.ones((n, 2), bool), 0.3)
    assert bool(out.any(1).all())
    # Exclusive drops: modality 1 dropped 30%, modality 2 dropped 30%, complete 40%.
    assert _within_5_sigma((~out[:, 0]).sum(), n, 0.3)
    assert _within_5_sigma((~out[:, 1]).sum(), n, 0.3)
    assert _within_5_sigma(out.all(1).sum(), n, 0.4)


def test_augmentation_dropout_one_mode_three_modalities(key):
    n = 20000
    out = _augmentation_dropout(key, jnp.ones((n, 3), bool), 0.2)
    assert int((~out).sum(1).max()) == 1  # at most one modality dropped
    for m in range(3):
        assert _within_5_sigma((~out[:, m]).sum(), n, 0.2)


def test_augmentation_dropout_independent_mode(key):
    n = 20000
    out = _augmentation_dropout(key, jnp.ones((n, 2), bool), 0.3, mode="independent")
    assert bool(out.any(1).all())
    # p - p^2 / 2 = 0.3 - 0.045 = 0.255 per modality.
    for m in range(2):
        assert _within_5_sigma((~out[:, m]).sum(), n, 0.255)


@pytest.mark.parametrize("mode", ["one", "independent"])
def test_augmentation_dropout_respects_existing_mask(key, mode):
    present = _at_least_one(jax.random.key(3), 1000, 3, 0.5)
    out = _augmentation_dropout(key, present, 0.9, mode=mode)
    assert bool((out <= present).all())  # never adds a modality
    assert bool(out.any(1).all())  # never removes a sample's last modality
    single = present.sum(1) == 1
    np.testing.assert_array_equal(out[single], present[single])


def test_augmentation_dropout_p_zero_is_identity(key):
    present = _at_least_one(jax.random.key(3), 1000, 3, 0.3)
    for mode in ("one", "independent"):
        np.testing.assert_array_equal(_augmentation_dropout(key, present, 0.0, mode=mode), present)


def test_augmentation_dropout_no_retrace(key):
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(k, present, p):
        return _augmentation_dropout(k, present, p)

    rng = np.random.default_rng(0)
    for i, p in enumerate((0.1, 0.3, 0.5)):
        present = rng.random((64, 2)) < 0.7
        present[~present.any(1), 0] = True
        out = f(jax.random.fold_in(key, i), jnp.asarray(present), jnp.float32(p))
        assert bool(out.any(1).all())


def test_augmentation_dropout_bad_mode(key):
    with pytest.raises(ValueError, match="mode"):
        _augmentation_dropout(key, jnp.ones((2, 2), bool), 0.3, mode="all")


# ---------------------------------------------------------------------------------------------
# Subsets and apply


def test_all_subsets_names_and_order():
    names, masks = missing.all_subsets(("audio", "video", "text"))
    assert names == [
        "audio+video+text",
        "audio+video",
        "audio+text",
        "video+text",
        "audio",
        "video",
        "text",
    ]
    assert masks.dtype == np.bool_ and masks.shape == (7, 3)
    np.testing.assert_array_equal(masks[3], [False, True, True])


@pytest.mark.parametrize("m", [1, 2, 3, 4, 6])
def test_all_subsets_count(m):
    mods = tuple(f"m{i}" for i in range(m))
    names, masks = missing.all_subsets(mods)
    assert len(names) == len(set(names)) == 2**m - 1
    assert masks.any(1).all()
    assert len({tuple(r) for r in masks}) == 2**m - 1
    assert masks[0].all()
    assert (np.diff(masks.sum(1)) <= 0).all()  # decreasing size
    for name, row in zip(names, masks):
        np.testing.assert_array_equal(missing.subset_mask(name, mods), row)


def test_all_subsets_two_modalities():
    names, _ = missing.all_subsets(("image", "audio"))
    assert names == ["image+audio", "image", "audio"]


def test_subset_mask_forms():
    mods = ("image", "audio", "text")
    np.testing.assert_array_equal(missing.subset_mask("image+text", mods), [True, False, True])
    np.testing.assert_array_equal(missing.subset_mask(["audio"], mods), [False, True, False])
    np.testing.assert_array_equal(missing.subset_mask((0, 1), mods), [True, True, False])
    for bad in ("video", (), [5], "image+"):
        with pytest.raises(UserError):
            missing.subset_mask(bad, mods)


def test_apply_zero_fills_any_shape():
    inputs = {
        "image": jnp.ones((3, 4, 4, 1)),
        "audio": jnp.full((3, 5), jnp.nan),
        "text": jnp.arange(6, dtype=jnp.int32).reshape(3, 2) + 1,
        "text_len": jnp.array([2, 1, 2]),
    }
    present = jnp.array([[True, False, True], [False, True, False], [True, True, True]])
    out = missing.apply(inputs, present, ("image", "audio", "text"))
    assert set(out) == set(inputs)
    np.testing.assert_array_equal(out["image"].sum((1, 2, 3)), [16, 0, 16])
    assert not bool(jnp.isnan(out["audio"][0]).any())  # NaN in a missing input does not leak
    assert bool(jnp.isnan(out["audio"][1]).all())
    np.testing.assert_array_equal(out["text"], [[1, 2], [0, 0], [5, 6]])
    assert out["text"].dtype == jnp.int32
    np.testing.assert_array_equal(out["text_len"], [2, 0, 2])  # a missing sequence is empty


def test_apply_no_retrace_when_mask_changes(key):
    mods = ("image", "audio")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(inputs, present):
        return missing.apply(inputs, present, mods)

    inputs = {"image": jnp.ones((8, 3)), "audio": jnp.ones((8, 2, 2))}
    for i in range(3):
        present = _at_least_one(jax.random.key(i), 8, 2, 0.4)
        out = f(inputs, present)
        np.testing.assert_array_equal(out["image"][:, 0], present[:, 0])
        np.testing.assert_array_equal(out["audio"][:, 0, 0], present[:, 1])
