"""Corruption protocols of RAML's robustness tables: Gaussian noise and time-step/token masking.

RAML (Tables II-III) corrupts test inputs while keeping every modality present: images get
additive Gaussian noise at the five ImageNet-C levels sigma in {0.08, 0.12, 0.18, 0.26, 0.38}
(RAML's reference [31], Michaelis et al. 2019, which uses ImageNet-C's noise on inputs scaled to
[0, 1]), and texts get each word masked with probability p in {0.05, ..., 0.25}. RAML's text calls
sigma a "variance", but the values are ImageNet-C's ``scale``, i.e. the standard deviation; this
module uses sigma as the standard deviation.

All functions are pure and jit-able; ``sigma`` and ``p`` may be traced, so a sweep over levels
reuses one compiled evaluation step. Only ``minmax_scale`` bounds, ``clip`` and axes are static.
"""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp

from mmjax.data.missing import check_rate

__all__ = ["gaussian_noise", "mask_timesteps", "minmax_scale"]


def _expand_to(a: jax.Array, ndim: int) -> jax.Array:
    """Prepends unit axes so ``a`` broadcasts against an ``ndim``-rank array without implicit
    rank promotion (the tests run with ``jax_numpy_rank_promotion="raise"``)."""
    a = jnp.asarray(a)
    if a.ndim == 0:
        return a
    return a.reshape((1,) * (ndim - a.ndim) + a.shape)


def minmax_scale(x: jax.Array, lo, hi) -> jax.Array:
    """Maps ``x`` affinely so that ``lo -> 0`` and ``hi -> 1``: ``(x - lo) / (hi - lo)``.

    RAML adds its Gaussian noise to inputs in [0, 1] (ImageNet-C convention). Callers compute the
    bounds on the *training* split only, never on the data being corrupted, so every split and
    every noise level sees the same transform::

        lo = train_x.min(axis=0)           # per feature, or a scalar (e.g. 0 and 255 for pixels)
        hi = train_x.max(axis=0)
        x01 = minmax_scale(test_x, lo, hi)
        noisy = gaussian_noise(key, x01, sigma, clip=(0.0, 1.0))

    Test values beyond the training range map outside [0, 1] (pass ``clip`` to the noise to clamp
    the result). Features with ``hi == lo`` (constant on the training split) map to 0.

    Args:
      x: array ``[..., *feature_shape]``.
      lo: scalar or array broadcastable to the trailing axes of ``x``.
      hi: same shape as ``lo``.

    Returns:
      The scaled array, same shape as ``x``, floating dtype.
    """
    x = jnp.asarray(x)
    dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.float32
    lo = _expand_to(jnp.asarray(lo, dtype), x.ndim)
    hi = _expand_to(jnp.asarray(hi, dtype), x.ndim)
    span = hi - lo
    safe = jnp.where(span > 0, span, 1.0)
    return jnp.where(span > 0, (x.astype(dtype) - lo) / safe, jnp.zeros((), dtype))


def gaussian_noise(
    key: jax.Array,
    x: jax.Array,
    sigma,
    *,
    present: jax.Array | None = None,
    clip: tuple[float, float] | None = None,
) -> jax.Array:
    """Adds i.i.d. Gaussian noise of standard deviation ``sigma`` to every entry of ``x``.

    ``y = x + sigma * eps``, ``eps ~ N(0, I)``, then optionally ``clip(y, *clip)``. ImageNet-C
    (followed by RAML) scales images to [0, 1], adds the noise and clips to [0, 1]; use
    ``minmax_scale`` first and ``clip=(0.0, 1.0)``. For pre-extracted feature vectors there is no
    natural range, so leave ``clip=None``.

    Args:
      key: a typed PRNG key.
      x: float array ``[B, ...]``.
      sigma: noise standard deviation; may be traced. RAML: 0.08, 0.12, 0.18, 0.26, 0.38.
      present: optional bool[B]; samples where it is False are returned unchanged, so a missing
        (zero-filled) modality stays zero.
      clip: optional static ``(low, high)`` bounds applied after adding the noise.

    Returns:
      Array with the shape and dtype of ``x``.

    References:
      Chen et al., "Redundancy-Adaptive Multimodal Learning for Imperfect Data" (RAML), Tables
      II-III; Hendrycks & Dietterich, ImageNet-C (ICLR 2019); Michaelis et al. 2019.
    """
    if isinstance(sigma, numbers.Real) and not sigma >= 0:
        raise ValueError(f"sigma must be a non-negative number, got {sigma!r}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"gaussian_noise needs a floating input, got {x.dtype}")
    y = x + jnp.asarray(sigma, x.dtype) * jax.random.normal(key, x.shape, x.dtype)
    if clip is not None:
        y = jnp.clip(y, clip[0], clip[1])
    if present is not None:
        keep = jnp.asarray(present, jnp.bool_).reshape((x.shape[0],) + (1,) * (x.ndim - 1))
        y = jnp.where(keep, y, x)
    return y


def mask_timesteps(
    key: jax.Array,
    x: jax.Array,
    p,
    *,
    time_axis: int | None = 1,
    lengths: jax.Array | None = None,
    fill_value=0,
) -> jax.Array:
    """Sets each time step (token, frame) to ``fill_value`` independently with probability p.

    For ``x`` of shape ``[B, T, D...]`` a step is masked across all its features; for token ids
    ``[B, T]`` each token is replaced (0 is the pad id of BERT-style vocabularies; pass the
    ``[MASK]`` id as ``fill_value`` to mask instead). Fallback for vector features ``[B, D]``, which
    have no time axis: with the default ``time_axis=1`` the feature axis plays that role, so each
    feature entry is zeroed independently with probability p; ``time_axis=None`` does the same for
    inputs of any rank (every non-batch entry independently).

    With ``lengths`` only valid steps (``t < lengths[b]``) can be masked; padding is left alone, so
    the expected number of masked tokens is ``p * lengths[b]``.

    Args:
      key: a typed PRNG key.
      x: array ``[B, ...]`` of any dtype.
      p: masking probability; may be traced. RAML: 0.05, 0.10, 0.15, 0.20, 0.25.
      time_axis: the time/token axis (static), or None for entry-wise masking.
      lengths: optional int[B] valid lengths along ``time_axis``.
      fill_value: the value written into masked steps.

    Returns:
      Array with the shape and dtype of ``x``.

    References:
      RAML, Tables II-III ("masking partial words within a certain probability in each text").
    """
    if isinstance(p, numbers.Real):
        check_rate("p", p)
    x = jnp.asarray(x)
    b = x.shape[0]
    if time_axis is None:
        mshape = x.shape
        axis = None
    else:
        axis = time_axis % x.ndim
        if axis == 0:
            raise ValueError("time_axis cannot be the batch axis 0")
        mshape = tuple(d if i in (0, axis) else 1 for i, d in enumerate(x.shape))
    drop = jax.random.uniform(key, mshape) < jnp.asarray(p, jnp.float32)  # [B, 1.., T, 1..]
    if lengths is not None:
        if axis is None:
            raise ValueError("lengths needs a time_axis")
        t = jnp.arange(x.shape[axis]).reshape(tuple(-1 if i == axis else 1 for i in range(x.ndim)))
        n = jnp.asarray(lengths).reshape((b,) + (1,) * (x.ndim - 1))
        drop = drop & (t < n)
    return jnp.where(drop, jnp.asarray(fill_value, x.dtype), x)
