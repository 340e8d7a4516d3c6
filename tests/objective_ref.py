"""Shared by the whole-objective tests (tests/test_objective_*.py): plain-jnp building blocks of
independent float64 references, a state cast to float64, the gradient read off one SGD step,
and tree comparisons that name the failing parameter.

The references never call a method's own helpers: they read the parameters as plain nested
dicts (``pure``) and redo every layer here. A method is run with plain SGD (no momentum, no
decay), so ``(params - new_params) / lr`` is exactly the gradient the step applied; that checks
the gradient *through the real step*, wiring included.

Imported as ``from objective_ref import ...`` (pytest puts tests/ on the path).
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mmjax.config import OptimConfig


def sgd(lr: float) -> OptimConfig:
    """Plain SGD at ``lr``: ``new = params - lr * grad`` exactly (no momentum, no decay)."""
    return OptimConfig(name="sgd", lr=lr, momentum=0.0)


def pure(tree):
    """An ``nnx.State`` (or a plain pytree) as nested dicts of arrays."""
    return nnx.to_pure_dict(tree) if isinstance(tree, nnx.State) else tree


def to64(tree):
    """Every floating leaf of ``tree`` cast to float64 (call inside ``jax.enable_x64``)."""
    return jax.tree.map(
        lambda x: x.astype(jnp.float64) if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
        else x, tree)


def sgd_gradient(before, after, lr: float):
    """The gradient one plain-SGD step applied: ``(before - after) / lr`` as nested dicts."""
    return jax.tree.map(lambda a, b: (a - b) / lr, pure(before), pure(after))


def flat(tree) -> dict[str, np.ndarray]:
    """``{"enc/a/fc1/kernel": array}``: the leaves of nested dicts by slash-joined path."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out["/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)] = np.asarray(
            leaf, np.float64)
    return out


def assert_trees_close(actual, expected, rtol: float, what: str = "") -> None:
    """Every leaf of ``actual`` within ``rtol`` of ``expected`` in relative L2 norm
    (``||a - e|| <= rtol * ||e||``, floor 1e-12), the same set of leaves; the message names the
    leaf. A zero expected leaf must be zero to 1e-12."""
    a, e = flat(actual), flat(expected)
    assert sorted(a) == sorted(e), f"{what}: leaves differ: {sorted(set(a) ^ set(e))}"
    for name in e:
        err = np.linalg.norm(a[name] - e[name])
        scale = max(np.linalg.norm(e[name]), 1e-12)
        assert err <= rtol * scale, (f"{what} {name}: |actual - expected| = {err:.3g}, "
                                     f"|expected| = {scale:.3g} (rtol {rtol})")


def assert_close(actual, expected, rtol: float, what: str = "") -> None:
    """``actual`` within ``rtol`` of ``expected`` in relative L2 norm (arrays or scalars)."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    err, scale = np.linalg.norm(a - e), max(np.linalg.norm(e), 1e-12)
    assert err <= rtol * scale, f"{what}: {a} vs {e} (rel. error {err / scale:.3g})"


def step_key(state, index: int, count: int):
    """Key ``index`` of ``base.step_keys(state, ...)`` with ``count`` purposes, spelled out:
    ``split(fold_in(state.key, state.step), count)[index]`` (the documented contract)."""
    return jax.random.split(jax.random.fold_in(state.key, state.step), count)[index]


def linear(p: dict, x):
    """``nnx.Linear``: ``x @ kernel + bias`` (kernel stored ``[in, out]``; any leading axes)."""
    return x @ p["kernel"] + p["bias"].reshape((1,) * (x.ndim - 1) + (-1,))


def mlp_encoder(p: dict, x):
    """``encoders.MLPEncoder`` with dropout off: ReLU(fc2(ReLU(fc1(flatten x))))."""
    x = x.reshape(x.shape[0], -1)
    return jax.nn.relu(linear(p["fc2"], jax.nn.relu(linear(p["fc1"], x))))


def mlp_head(p: dict, x):
    """``fusion.MLPHead`` with dropout off: fc2(ReLU(fc1(x)))."""
    return linear(p["fc2"], jax.nn.relu(linear(p["fc1"], x)))


def softplus(x):
    """log(1 + e^x), stable."""
    return jnp.logaddexp(x, 0.0)


def cross_entropy(logits, label):
    """Softmax cross-entropy per example with integer labels: ``-log softmax(logits)[y]``."""
    logp = logits - jax.scipy.special.logsumexp(logits, -1, keepdims=True)
    return -jnp.take_along_axis(logp, label[:, None], -1)[:, 0]


def masked_mean(values, mask):
    """Mean of ``values`` over the rows where ``mask`` is set (0 when none is)."""
    w = jnp.asarray(mask, values.dtype)
    return (values * w).sum() / jnp.maximum(w.sum(), 1.0)


def directional_fd(f, params, direction, h: float = 1e-6):
    """Central difference ``(f(p + h d) - f(p - h d)) / 2h`` of a scalar ``f`` of nested dicts."""
    plus = jax.tree.map(lambda p, d: p + h * d, params, direction)
    minus = jax.tree.map(lambda p, d: p - h * d, params, direction)
    return (float(f(plus)) - float(f(minus))) / (2 * h)


def random_direction(key, tree, only=None):
    """A standard-normal direction shaped like ``tree``; zero outside the top-level groups in
    ``only`` (None: everywhere)."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    noise = jax.tree.unflatten(treedef, [jax.random.normal(k, x.shape, x.dtype)
                                         for k, x in zip(keys, leaves)])
    if only is None:
        return noise
    return {g: (v if g in only else jax.tree.map(jnp.zeros_like, v)) for g, v in noise.items()}


def tree_dot(a, b) -> float:
    """Sum of the element-wise products of two like-shaped trees."""
    return float(sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))))


def jitter(params, key, scale: float = 0.2):
    """``params`` plus ``scale`` standard-normal noise on every leaf. Fresh ``nnx.Linear`` biases
    are exactly zero, so a zero-filled input sits exactly on every ReLU kink (where autodiff and
    finite differences disagree) and a bias bug would go unseen; the noise moves both away."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [x + scale * jax.random.normal(k, x.shape, x.dtype)
                                        for k, x in zip(keys, leaves)])


def tree_norm(grad, direction) -> float:
    """``||grad|| * ||direction||`` over the leaves where ``direction`` is non-zero: the scale of
    a directional derivative (Cauchy-Schwarz), against which its error is measured (a small
    directional derivative of a large gradient carries the gradient's absolute rounding)."""
    g2 = d2 = 0.0
    for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction)):
        if jnp.any(d != 0):
            g2, d2 = g2 + float(jnp.vdot(g, g)), d2 + float(jnp.vdot(d, d))
    return float(np.sqrt(g2 * d2))
