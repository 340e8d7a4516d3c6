"""Whole-objective tests of CCA, DCCA and DCCAE (``mmjax/methods/dcca.py``): each phase's loss
and its gradient with respect to every parameter equal an independent float64 reference
through the real step, and each phase moves only its own optimiser state.

The references, written from the papers' definitions (module docstring): every view's canonical
output z_m (the MLP encoder then a linear layer; CCA: a linear layer on the input); phase 1
L_1 = -sum_{m<n} corr(Z_m, Z_n) on the samples with both views, corr = the sum of the singular
values of S_11^{-1/2} S_12 S_22^{-1/2} (Andrew et al. sec. 2; the inverse square roots by
``eigh`` here, by Cholesky in the module), plus DCCAE's lambda sum_m mean_{present}
||x_m - p_m(z_m)||^2 (Wang et al. sec. 3); phase 2 the cross-entropy of the head on
[sg(z_1) p_1; ...], averaged over the samples with a view.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.methods.dcca import CcaConfig, DccaConfig, DccaeConfig
from objective_check import (ALL_PATTERNS_3, assert_close, assert_tree_close, cross_entropy,
                             dense, jitter, make_batch, masked_mean, mlp_encoder, mlp_head, pure,
                             run_step, sgd, to_f64, value_and_grad)
from toy import TOY_SPEC

MODS = TOY_SPEC.modalities
MODEL = ModelConfig(hidden=5, feature_dim=4, dropout=0.0)
PRESENT = np.concatenate([ALL_PATTERNS_3, np.ones((6, 3), bool)])
DIM, RIDGE, LAMBDA = 2, 1e-3, 0.3
sg = jax.lax.stop_gradient
# A shift of z_m changes no correlation, so the projection biases' phase-1 gradient is zero up
# to float64 rounding (both sides ~1e-16): such a leaf is checked against this absolute bound.
ZERO = 1e-12


def canonical(P, x, linear: bool):
    """``{m: z_m}``: ``project_m(encoder_m(x_m))``, or ``project_m(x_m)`` for CCA."""
    return {m: dense(P["project"][m], x[m].reshape(x[m].shape[0], -1) if linear
                     else mlp_encoder(P["encoders"][m], x[m])) for m in MODS}


def correlation(a, b, rows):
    """Andrew et al.'s corr on the rows ``rows`` (concrete indices), inverse roots by eigh."""
    if len(rows) < 2:
        return 0.0
    a, b = a[rows] - a[rows].mean(0, keepdims=True), b[rows] - b[rows].mean(0, keepdims=True)
    m, eye = len(rows), jnp.eye(a.shape[1])

    def inv_sqrt(s):
        values, vectors = jnp.linalg.eigh(s)
        return (vectors * values[None, :] ** -0.5) @ vectors.T

    t = inv_sqrt(a.T @ a / (m - 1) + RIDGE * eye) @ (a.T @ b / (m - 1)) @ inv_sqrt(
        b.T @ b / (m - 1) + RIDGE * eye)
    return jnp.sqrt(jnp.linalg.eigvalsh(t.T @ t)).sum()


def correlation_objective(P, batch, linear: bool, recon_weight: float):
    """Phase 1: minus the pairwise correlations, plus lambda times the reconstructions."""
    x, present = batch["inputs"], np.asarray(batch["present"])
    z = canonical(P, x, linear)
    corr = sum(correlation(z[MODS[i]], z[MODS[j]], np.flatnonzero(present[:, i] & present[:, j]))
               for i, j in itertools.combinations(range(3), 2))
    loss = -corr
    if recon_weight:
        for c, m in enumerate(MODS):
            decoded = mlp_head(P["decoders"][m], z[m])
            loss += recon_weight * masked_mean(((decoded - x[m]) ** 2).sum(1), present[:, c])
    return loss


def assert_gradients_close(got, want):
    """``assert_tree_close``, but a reference leaf that rounding alone keeps from zero
    (every entry below ``ZERO``) must be below ``ZERO`` too."""
    got, want = dict(jax.tree_util.tree_leaves_with_path(got)), dict(
        jax.tree_util.tree_leaves_with_path(want))
    assert set(got) == set(want)
    zero = [p for p, w in want.items() if np.abs(np.asarray(w)).max() < ZERO]
    for path in zero:
        assert np.abs(np.asarray(got[path])).max() < ZERO, jax.tree_util.keystr(path)
    assert_tree_close([got[p] for p in want if p not in zero],
                      [want[p] for p in want if p not in zero])


def classifier_objective(P, batch, linear: bool):
    """Phase 2: CE of the head on the frozen canonical outputs, a missing view's zeroed."""
    x, present = batch["inputs"], np.asarray(batch["present"])
    z = canonical(P, x, linear)
    fused = jnp.concatenate([sg(z[m]) * present[:, c:c + 1] for c, m in enumerate(MODS)], -1)
    return masked_mean(cross_entropy(mlp_head(P["head"], fused), batch["label"]),
                       present.any(1))


@pytest.mark.parametrize("method", [CcaConfig(cca_steps=1, cca_dim=DIM, ridge=RIDGE),
                                    DccaConfig(cca_steps=1, cca_dim=DIM, ridge=RIDGE),
                                    DccaeConfig(cca_steps=1, cca_dim=DIM, ridge=RIDGE,
                                                recon_weight=LAMBDA)],
                         ids=lambda m: m.name)
def test_both_phases_equal_the_reference(method):
    with jax.enable_x64(True):
        config = ExperimentConfig(method=method, model=MODEL, optim=sgd(),
                                  train=TrainConfig(steps=3))
        first, second = methods.make(config, TOY_SPEC).phases
        batch = make_batch(jax.random.key(0), TOY_SPEC, PRESENT)
        state = methods.make(config, TOY_SPEC).init(jax.random.key(1), batch)
        state = state.replace(params=jitter(to_f64(state.params), jax.random.key(2)))
        linear = method.encoder == "linear"
        assert ("encoders" in pure(state.params)) is not linear
        assert ("decoders" in pure(state.params)) is (method.recon_weight > 0)
        s1, m1, grads = run_step(first.step, state, batch)
        loss, want = value_and_grad(correlation_objective, pure(state.params), batch, linear,
                                    method.recon_weight)
        assert_close(m1["loss"], loss)
        assert_gradients_close(grads, want)  # the head gets nothing
        s2, m2, grads = run_step(second.step, s1, batch)
        loss, want = value_and_grad(classifier_objective, pure(s1.params), batch, linear)
        assert_close(m2["loss"], loss)
        assert_tree_close(grads, want)  # only the head moves (stop-gradient)
        counts = [[int(c) for c in jax.tree.leaves(s.opt_state)] for s in (state, s1, s2)]
        assert counts == [[0, 0], [1, 0], [1, 1]]


def test_predict_is_the_head_on_the_present_views():
    with jax.enable_x64(True):
        method = DccaeConfig(cca_steps=1, cca_dim=DIM, recon_weight=LAMBDA)
        config = ExperimentConfig(method=method, model=MODEL, train=TrainConfig(steps=3))
        built = methods.make(config, TOY_SPEC)
        batch = make_batch(jax.random.key(3), TOY_SPEC, PRESENT)
        state = built.init(jax.random.key(4), batch)
        state = state.replace(params=jitter(to_f64(state.params), jax.random.key(5)))
        P, present = pure(state.params), np.asarray(batch["present"])
        z = canonical(P, batch["inputs"], linear=False)
        fused = jnp.concatenate([z[m] * present[:, c:c + 1] for c, m in enumerate(MODS)], -1)
        np.testing.assert_allclose(built.predict(state, batch), mlp_head(P["head"], fused),
                                   rtol=1e-6, atol=1e-6)
