"""Shared by the whole-objective tests (``test_objective_*.py``, issue 21): one step of a method
in float64 with the gradient it applied, and the plain ``jax.numpy`` layers the tests' independent
references are written with.

The gradient is read off the update: SGD without momentum moves every parameter by
``-lr * grad`` (``optax.sgd``), so ``(params - new_params) / lr`` is the gradient the step really
applied, its masks, stop-gradients and frozen parts included. The references are differentiated
with ``jax.grad``; only the forward pass is written here, never the method's own helpers.

Imported as ``from objective_check import ...`` (pytest puts tests/ on the path). Call everything
inside ``jax.enable_x64(True)``.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mmjax.config import OptimConfig
from mmjax.data.base import DatasetSpec

# Tolerance of every loss and gradient comparison: the methods compute their task losses in
# float32 (``losses.per_example`` casts), which bounds the agreement at ~1e-7 relative.
RTOL = 1e-6

# Every pattern of three modalities, the empty one included: every masking rule (any / all / per
# modality / none present) meets samples on both of its sides.
ALL_PATTERNS_3 = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0],
                           [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], bool)


def sgd(lr: float = 1.0) -> OptimConfig:
    """Plain SGD (no momentum, no decay): the update is ``-lr * grad``."""
    return OptimConfig(name="sgd", lr=lr, momentum=0.0)


def to_f64(tree):
    """Every floating leaf of ``tree`` cast to float64 (other leaves as they are)."""
    return jax.tree.map(
        lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


def jitter(params, key, scale: float = 0.1):
    """``params`` plus ``scale`` standard-normal noise on every leaf: Flax initialises biases to
    zero, so at init a zero-filled (missing) input gives exactly zero features, and a rule that
    forgets to mask them could not be seen."""
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(treedef, [x + scale * jax.random.normal(k, x.shape, x.dtype)
                                        for x, k in zip(leaves, keys)])


def pure(tree):
    """Plain nested dicts of arrays from ``nnx.State`` parameters (or dicts holding them)."""
    if isinstance(tree, nnx.State):
        return nnx.to_pure_dict(tree)
    if isinstance(tree, dict):
        return {k: pure(v) for k, v in tree.items()}
    return tree


def make_batch(key, spec: DatasetSpec, present) -> dict:
    """A float64 batch of ``spec`` with this ``present`` mask, missing inputs zero-filled (the
    batch contract), standard-normal inputs and uniform labels."""
    present = jnp.asarray(present, bool)
    keys = jax.random.split(key, spec.num_modalities + 1)
    n = present.shape[0]
    inputs = {m: jax.random.normal(k, (n, *s), jnp.float64)
              * present[:, c].reshape(-1, *[1] * len(s))
              for c, (m, s, k) in enumerate(zip(spec.modalities, spec.shapes, keys))}
    return {"inputs": inputs, "present": present,
            "label": jax.random.randint(keys[-1], (n,), 0, spec.num_classes)}


def run_step(step, state, batch, lr: float = 1.0, params=lambda p: p):
    """``(new_state, metrics, grad)``: one jitted ``step``; ``grad`` (plain dicts) is
    ``(params - new_params) / lr`` of the parameters ``params(state.params)`` selects."""
    new, metrics = jax.jit(step)(state, batch)
    before, after = pure(params(state.params)), pure(params(new.params))
    return new, metrics, jax.tree.map(lambda a, b: (a - b) / lr, before, after)


def value_and_grad(reference, P, *args, has_aux: bool = False):
    """``(reference(P, *args), its gradient in P)``, jitted with ``args`` closed over (so a
    reference may read them as concrete numpy values); ``has_aux`` as in ``jax.value_and_grad``."""
    return jax.jit(jax.value_and_grad(lambda params: reference(params, *args),
                                      has_aux=has_aux))(P)


def assert_close(got, want, rtol: float = RTOL, what: str = "loss"):
    """``|got - want| <= rtol * |want|`` for scalars."""
    got, want = float(got), float(want)
    assert abs(got - want) <= rtol * abs(want), f"{what}: {got} vs {want}"


def assert_tree_close(got, want, rtol: float = RTOL):
    """Same leaves; each leaf within ``rtol`` of the reference, relative to the reference leaf's
    largest entry (a reference leaf of zeros must be met exactly)."""
    flat_got = dict(jax.tree_util.tree_leaves_with_path(got))
    flat_want = dict(jax.tree_util.tree_leaves_with_path(want))
    assert set(flat_got) == set(flat_want), sorted(
        jax.tree_util.keystr(p) for p in set(flat_got) ^ set(flat_want))
    for path, w in flat_want.items():
        g, w = np.asarray(flat_got[path], np.float64), np.asarray(w, np.float64)
        err, scale = np.abs(g - w).max(), np.abs(w).max()
        assert err <= rtol * scale, (f"{jax.tree_util.keystr(path)}: max error {err:.3g}, "
                                     f"largest reference entry {scale:.3g}")


def step_keys(state, count: int):
    """The step's keys as the method contract draws them: ``split(fold_in(key, step), count)``
    (``mmjax.methods.base`` module docstring), in the order the method names its purposes."""
    return jax.random.split(jax.random.fold_in(state.key, state.step), count)


# ----------------------------------------------------------------------------------------------
# Plain layers for the references.
# ----------------------------------------------------------------------------------------------


def dense(p, x):
    """``x W + b`` of a linear layer's parameters ``{"kernel", "bias"}``."""
    out = x @ p["kernel"]
    return out + p["bias"].reshape((1,) * (out.ndim - 1) + p["bias"].shape)


def mlp_encoder(p, x):
    """The two-layer MLP encoder: ``relu(fc2(relu(fc1(flatten(x)))))``."""
    h = jax.nn.relu(dense(p["fc1"], x.reshape(x.shape[0], -1)))
    return jax.nn.relu(dense(p["fc2"], h))


def mlp_head(p, x):
    """The fusion head: ``fc2(relu(fc1(x)))``."""
    return dense(p["fc2"], jax.nn.relu(dense(p["fc1"], x)))


def cross_entropy(logits, label):
    """Per-example softmax cross-entropy ``logsumexp(z) - z_y``, ``[B]``."""
    return (jax.scipy.special.logsumexp(logits, -1)
            - jnp.take_along_axis(logits, label[:, None], -1)[:, 0])


def masked_mean(values, mask):
    """The mean of ``values`` over the samples where ``mask``; 0 when there are none."""
    mask = jnp.asarray(mask, values.dtype)
    return (values * mask).sum() / jnp.maximum(mask.sum(), 1.0)
