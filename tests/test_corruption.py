"""Tests for RAML's corruption protocols (mmjax/data/corruption.py).

Statistical checks use 5-sigma tolerances from the sampling distribution of the estimator.
"""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.data import corruption
from mmjax.errors import UserError

# Jitted entry points (one program per shape keeps the suite fast on a cold compile cache).
_noise = jax.jit(corruption.gaussian_noise, static_argnames="clip")
_mask = jax.jit(corruption.mask_timesteps, static_argnames="time_axis")


def test_minmax_scale_per_feature():
    train = np.array([[0.0, 10.0, 5.0], [2.0, 30.0, 5.0], [1.0, 20.0, 5.0]], np.float32)
    lo, hi = train.min(0), train.max(0)
    test = jnp.array([[1.0, 40.0, 7.0], [0.0, 10.0, 5.0]])
    out = corruption.minmax_scale(test, lo, hi)
    # feature 0: (1 - 0) / 2 = 0.5; feature 1: (40 - 10) / 20 = 1.5 (beyond the train range);
    # feature 2 is constant on train -> 0.
    np.testing.assert_allclose(out, [[0.5, 1.5, 0.0], [0.0, 0.0, 0.0]], rtol=1e-6)


def test_minmax_scale_scalar_bounds_on_images():
    x = jnp.array([[[0, 255], [51, 102]]], jnp.uint8)  # [1, 2, 2]
    out = corruption.minmax_scale(x, 0, 255)
    np.testing.assert_allclose(out, [[[0, 1], [0.2, 0.4]]], rtol=1e-6)


def test_gaussian_noise_std_and_mean(key):
    n = 200_000
    x = jnp.full((n, 1), 0.5)
    sigma = 0.18
    y = _noise(key, x, sigma)
    d = np.asarray(y - x, np.float64).ravel()
    # mean of n N(0, s^2): sd s / sqrt(n); sample std: sd ~ s / sqrt(2 n).
    assert abs(d.mean()) <= 5 * sigma / math.sqrt(n)
    assert abs(d.std() - sigma) <= 5 * sigma / math.sqrt(2 * n)


def test_gaussian_noise_present_and_clip(key):
    x = jnp.concatenate([jnp.full((2, 3, 3), 0.5), jnp.zeros((2, 3, 3))])  # [4, 3, 3]
    present = jnp.array([True, True, False, False])
    y = _noise(key, x, 0.38, present=present, clip=(0.0, 1.0))
    np.testing.assert_array_equal(y[2:], 0.0)  # missing (zero-filled) samples stay zero
    assert bool((y[:2] != 0.5).any())
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    np.testing.assert_array_equal(_noise(key, x, 0.0), x)


def test_gaussian_noise_determinism_and_dtype(key):
    x = jnp.zeros((4, 5), jnp.bfloat16)
    a = _noise(key, x, 0.1)
    np.testing.assert_array_equal(a, _noise(key, x, 0.1))
    assert a.dtype == jnp.bfloat16
    with pytest.raises(ValueError):
        corruption.gaussian_noise(key, x, -0.1)


def test_gaussian_noise_no_retrace(key):
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(k, x, sigma):
        return corruption.gaussian_noise(k, x, sigma, clip=(0.0, 1.0))

    x = jnp.full((64, 8), 0.5)
    stds = [float(jnp.std(f(key, x, jnp.float32(s)))) for s in (0.08, 0.12, 0.18, 0.26, 0.38)]
    assert stds == sorted(stds)


def test_mask_timesteps_masks_whole_steps(key):
    b, t, d, p = 400, 50, 4, 0.2
    x = jnp.ones((b, t, d))
    y = _mask(key, x, p)
    per_step = np.asarray(y).sum(-1)  # [B, T]: 0 (masked) or d (kept), never partial
    assert set(np.unique(per_step)) <= {0.0, float(d)}
    masked = int((per_step == 0).sum())
    n = b * t
    assert abs(masked - n * p) <= 5 * math.sqrt(n * p * (1 - p))


def test_mask_timesteps_lengths_leave_padding(key):
    x = jnp.ones((3, 6, 2))
    lengths = jnp.array([2, 6, 0])
    y = _mask(key, x, 1.0, lengths=lengths)
    # p = 1: every valid step zeroed, every step past the length untouched.
    expect = (np.arange(6)[None, :] >= np.asarray(lengths)[:, None]).astype(np.float32)
    np.testing.assert_array_equal(y[..., 0], expect)


def test_mask_timesteps_vector_fallback_is_entrywise(key):
    b, d, p = 500, 40, 0.15
    y = _mask(key, jnp.ones((b, d)), p)  # no time axis: feature entries
    n = b * d
    masked = int((y == 0).sum())
    assert abs(masked - n * p) <= 5 * math.sqrt(n * p * (1 - p))
    # time_axis=None masks every entry independently for any rank
    z = _mask(key, jnp.ones((50, 10, 4)), 0.5, time_axis=None)
    per_step = np.asarray(z).sum(-1)
    assert len(np.unique(per_step)) > 2  # partial steps exist


def test_mask_timesteps_token_ids(key):
    tokens = jnp.arange(1, 41, dtype=jnp.int32).reshape(4, 10)
    y = _mask(key, tokens, 0.5, fill_value=103)  # BERT [MASK]
    assert y.dtype == jnp.int32
    changed = np.asarray(y != tokens)
    np.testing.assert_array_equal(np.asarray(y)[changed], 103)
    np.testing.assert_array_equal(_mask(key, tokens, 0.0), tokens)
    with pytest.raises(UserError):
        corruption.mask_timesteps(key, tokens, 1.5)


def test_mask_timesteps_no_retrace(key):
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(k, x, p, lengths):
        return corruption.mask_timesteps(k, x, p, lengths=lengths)

    x = jnp.ones((32, 20, 3))
    fracs = []
    for p in (0.05, 0.1, 0.15, 0.2, 0.25):
        y = f(key, x, jnp.float32(p), jnp.full((32,), 20))
        fracs.append(float((y == 0).mean()))
    assert fracs == sorted(fracs)
