"""The shared pieces of the Method contract in ``mmjax.methods.base``: the phase switch and the
two-optimiser update that SMIL, UME-MMA, MMIN and AE imputation build their phases from."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mmjax.methods.base import phased_update, select_tree


def test_select_tree_picks_whole_trees_leafwise():
    a = {"w": jnp.ones((2, 3)), "b": jnp.full((3,), 2.0)}
    b = {"w": jnp.zeros((2, 3)), "b": jnp.full((3,), -1.0)}
    chosen = jax.jit(select_tree)(jnp.asarray(False), a, b)
    np.testing.assert_array_equal(chosen["w"], b["w"])
    np.testing.assert_array_equal(chosen["b"], b["b"])
    chosen = jax.jit(select_tree)(jnp.asarray(True), a, b)
    np.testing.assert_array_equal(chosen["b"], a["b"])


def test_phased_update_advances_only_the_current_phase_optimizer():
    # tx1: SGD lr 0.1. tx2: SGD whose lr falls 1.0, 0.9, 0.8, ... with its own step count, so
    # its updates show whether its state moved during phase 1 (it must not).
    tx1 = optax.sgd(0.1)
    tx2 = optax.sgd(optax.linear_schedule(1.0, 0.0, 10))
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 4.0])}
    states = (tx1.init(params), tx2.init(params))
    update = jax.jit(lambda first, s: phased_update(first, tx1, tx2, grads, s, params))
    for _ in range(3):  # phase 1: -0.1 g every step, tx2 untouched
        updates, states = update(jnp.asarray(True), states)
        np.testing.assert_allclose(updates["w"], [-0.05, -0.4], rtol=1e-6)
    for lr in (1.0, 0.9):  # phase 2 starts tx2's schedule at its first value
        updates, states = update(jnp.asarray(False), states)
        np.testing.assert_allclose(updates["w"], [-0.5 * lr, -4.0 * lr], rtol=1e-6)
    assert int(optax.tree_utils.tree_get(states[1], "count")) == 2
