"""CCA / DCCA / DCCAE's correlation (``mmjax/methods/dcca.py``): Andrew et al.'s total
correlation against an independent float64 computation (the inverse square roots by
eigendecomposition, where the module uses Cholesky), its gradient against central finite
differences, its invariances, the masks it reads, and the method's phases, one program per phase
for every mask, and its argument checks.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.data import missing
from mmjax.errors import UserError
from mmjax.methods import dcca
from mmjax.methods.base import step_keys
from mmjax.methods.dcca import CcaConfig, DccaConfig, DccaeConfig
from toy import TOY_SPEC, assert_one_program_per_phase, phase_stepper, random_batch

RIDGE = 1e-3


def reference_correlation(h1, h2, weight, ridge):
    """numpy float64: the sum of the canonical correlations of the rows with ``weight``,
    T = S_11^{-1/2} S_12 S_22^{-1/2} with the inverse square roots from ``eigh``."""
    rows = np.flatnonzero(weight)
    if len(rows) < 2:
        return 0.0
    a, b = (np.asarray(h, np.float64)[rows] for h in (h1, h2))
    a, b = a - a.mean(0), b - b.mean(0)
    m, eye = len(rows), np.eye(a.shape[1])

    def inv_sqrt(s):
        values, vectors = np.linalg.eigh(s)
        return vectors @ np.diag(values ** -0.5) @ vectors.T

    t = inv_sqrt(a.T @ a / (m - 1) + ridge * eye) @ (a.T @ b / (m - 1)) @ inv_sqrt(
        b.T @ b / (m - 1) + ridge * eye)
    return float(np.linalg.svd(t, compute_uv=False).sum())


def _views(key, n=12, o=3):
    k1, k2, k3 = jax.random.split(key, 3)
    h1 = jax.random.normal(k1, (n, o), jnp.float64)
    # Correlated with h1, so the canonical correlations are well inside (0, 1).
    h2 = h1 @ jax.random.normal(k2, (o, o), jnp.float64) + jax.random.normal(k3, (n, o),
                                                                             jnp.float64)
    return h1, h2


@pytest.mark.parametrize("weight", [np.ones(12, bool), np.arange(12) % 3 != 0],
                         ids=["all", "two-thirds"])
def test_total_correlation_equals_the_eigendecomposition_reference(weight):
    with jax.enable_x64(True):
        h1, h2 = _views(jax.random.key(0))
        got = dcca.total_correlation(h1, h2, jnp.asarray(weight), RIDGE)
        assert abs(float(got) - reference_correlation(h1, h2, weight, RIDGE)) <= 1e-10


def test_rows_without_both_views_do_not_count():
    """Rows of weight 0 may hold anything: the statistics are those of the weighted rows."""
    with jax.enable_x64(True):
        h1, h2 = _views(jax.random.key(1))
        weight = jnp.arange(12) < 8
        wild = h1.at[8:].set(1e3), h2.at[8:].set(-7.0)
        a = dcca.total_correlation(h1[:8], h2[:8], jnp.ones(8, bool), RIDGE)
        b = dcca.total_correlation(*wild, weight, RIDGE)
        assert abs(float(a) - float(b)) <= 1e-10


def test_fewer_than_two_pairs_add_nothing_and_a_finite_zero_gradient():
    with jax.enable_x64(True):
        h1, h2 = _views(jax.random.key(2))
        for count in (0, 1):
            weight = jnp.arange(12) < count
            value, grad = jax.value_and_grad(dcca.total_correlation)(h1, h2, weight, RIDGE)
            assert float(value) == 0.0
            assert np.all(np.asarray(grad) == 0.0)


def test_linearly_related_views_have_every_correlation_one():
    """corr = o when one view is an invertible linear map of the other (ridge ~ 0), and it is
    unchanged by an affine map of either view (CCA's invariance)."""
    with jax.enable_x64(True):
        h1, h2 = _views(jax.random.key(3))
        mix = jax.random.normal(jax.random.key(4), (3, 3), jnp.float64) + 3 * jnp.eye(3)
        ones = jnp.ones(12, bool)
        assert abs(float(dcca.total_correlation(h1, h1 @ mix, ones, 1e-12)) - 3.0) <= 1e-8
        base = dcca.total_correlation(h1, h2, ones, 1e-12)
        moved = dcca.total_correlation(h1 @ mix + 5.0, h2, ones, 1e-12)
        assert abs(float(base) - float(moved)) <= 1e-8


def test_gradient_equals_central_finite_differences():
    with jax.enable_x64(True):
        h1, h2 = _views(jax.random.key(5))
        weight = jnp.arange(12) % 4 != 0

        def f(a, b):
            return dcca.total_correlation(a, b, weight, RIDGE)

        g1, g2 = jax.grad(f, argnums=(0, 1))(h1, h2)
        eps = 1e-6
        for i, direction in enumerate(jax.random.normal(jax.random.key(6), (3, 2, 12, 3),
                                                        jnp.float64)):
            d1, d2 = direction
            numeric = (f(h1 + eps * d1, h2 + eps * d2) - f(h1 - eps * d1, h2 - eps * d2)) / (
                2 * eps)
            analytic = (g1 * d1).sum() + (g2 * d2).sum()
            assert abs(float(numeric - analytic)) <= 1e-6 * max(1.0, abs(float(analytic))), i


def test_the_objective_sums_every_view_pair_on_its_shared_samples():
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(7), 3)
        z = {m: jax.random.normal(k, (16, 2), jnp.float64) for m, k in zip("abc", keys)}
        present = jax.random.bernoulli(jax.random.key(8), 0.7, (16, 3))
        got = dcca.correlation_objective(z, present, ("a", "b", "c"), RIDGE)
        p = np.asarray(present)
        want = sum(reference_correlation(z[x], z[y], p[:, i] & p[:, j], RIDGE)
                   for (i, x), (j, y) in [((0, "a"), (1, "b")), ((0, "a"), (2, "c")),
                                          ((1, "b"), (2, "c"))])
        assert abs(float(got) - want) <= 1e-10


def _config(method=None, steps=4):
    return ExperimentConfig(method=method or DccaConfig(cca_steps=2, cca_dim=2),
                            model=ModelConfig(hidden=5, feature_dim=4, dropout=0.0),
                            train=TrainConfig(steps=steps))


@pytest.mark.parametrize("cls", [CcaConfig, DccaConfig, DccaeConfig])
def test_registered_names_and_phases(cls):
    """The three registry names build the two phases; training raises the correlation."""
    config = _config(cls(cca_steps=30, cca_dim=2), steps=31)
    assert methods.entry(cls().name).config_class is cls
    method = methods.make(config, TOY_SPEC)
    assert [(p.name, p.steps) for p in method.phases] == [("correlation", 30),
                                                          ("classifier", None)]
    batch = random_batch(jax.random.key(0), n=32)
    state = method.init(jax.random.key(1), batch)
    step = phase_stepper(method, config.train.steps)
    first = None
    for _ in range(30):
        state, metrics = step(state, batch)
        first = first if first is not None else float(metrics["correlation"])
    assert float(metrics["correlation"]) > first
    state, metrics = step(state, batch)
    assert float(metrics["phase"]) == 2.0 and float(metrics["loss_ce"]) > 0


def test_one_program_per_phase_for_every_mask():
    config = _config(DccaeConfig(cca_steps=1, cca_dim=2), steps=8)
    assert_one_program_per_phase(methods.make(config, TOY_SPEC), config.train.steps,
                                 random_batch(jax.random.key(0)),
                                 missing.all_subsets(TOY_SPEC.modalities)[1],
                                 ["correlation", "classifier"])


def test_bad_settings_fail_with_one_line():
    with pytest.raises(UserError, match="cca_steps"):
        methods.make(_config(DccaConfig(cca_steps=5), steps=4), TOY_SPEC)
    one = DatasetSpec("one", ("a",), ((5,),), "classification", 3)
    with pytest.raises(UserError, match="at least two"):
        methods.make(_config(), one)


def test_the_vmapped_step_calls_no_lapack_kernel():
    """The correlation phase vmapped over replicas lowers to plain XLA ops: the pinned jaxlib's
    batched LAPACK kernels hung a 35-replica program (module docstring)."""
    config = _config(DccaeConfig(cca_steps=2, cca_dim=3), steps=4)
    method = methods.make(config, TOY_SPEC)
    batch = random_batch(jax.random.key(0), n=16)
    states = jax.vmap(method.init, in_axes=(0, None))(jax.random.split(jax.random.key(1), 2),
                                                      batch)
    step = jax.vmap(method.phases[0].step, in_axes=(0, None))
    text = jax.jit(step).lower(states, batch).as_text()
    assert "lapack" not in text.lower() and "custom_call" not in text


def test_the_plain_jnp_factorisations_equal_numpy():
    """``cholesky``, ``forward_solve`` (a right-hand side of another width) and
    ``polar_factor`` (a tall matrix: orthonormal columns, U V' of its SVD; ``iterations`` Newton-
    Schulz steps exactly) against numpy float64."""
    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        g = rng.normal(size=(6, 4))
        spd = g.T @ g + 0.1 * np.eye(4)
        factor = dcca.cholesky(jnp.asarray(spd))
        np.testing.assert_allclose(factor, np.linalg.cholesky(spd), rtol=1e-12, atol=1e-12)
        b = rng.normal(size=(4, 2))
        np.testing.assert_allclose(dcca.forward_solve(factor, jnp.asarray(b)),
                                   np.linalg.solve(np.linalg.cholesky(spd), b), rtol=1e-10,
                                   atol=1e-12)
        t = rng.normal(size=(5, 3))
        u, _, vt = np.linalg.svd(t, full_matrices=False)
        np.testing.assert_allclose(dcca.polar_factor(jnp.asarray(t)), u @ vt, atol=1e-10)
        x = t / np.linalg.norm(t)
        one_step = 0.5 * x @ (3.0 * np.eye(3) - x.T @ x)
        np.testing.assert_allclose(dcca.polar_factor(jnp.asarray(t), iterations=1), one_step,
                                   rtol=1e-12, atol=1e-12)


def test_each_phase_builds_its_optimiser_for_its_own_length():
    """Phase 1's optimiser is built for cca_steps, phase 2's for the rest (each at least 1: a
    schedule decays over its own phase)."""
    for cca_steps, want in ((3, [3, 5]), (0, [1, 8]), (8, [8, 1])):
        lengths = []

        def factory(optim, total_steps):
            lengths.append(total_steps)
            return optax.sgd(0.1)

        config = _config(DccaConfig(cca_steps=cca_steps, cca_dim=2), steps=8)
        methods.make(config, TOY_SPEC, tx=factory)
        assert lengths == want, cca_steps


def test_the_correlation_phase_trains_with_dropout():
    """Phase 1 runs the encoders in training mode (dropout on): its logged correlation is not
    the deterministic one of the same parameters; phase 2 runs them deterministically."""
    config = dataclasses.replace(_config(DccaConfig(cca_steps=1, cca_dim=2), steps=3),
                                 model=ModelConfig(hidden=16, feature_dim=8, dropout=0.5))
    method = methods.make(config, TOY_SPEC)
    batch = random_batch(jax.random.key(0), n=32)
    state = method.init(jax.random.key(1), batch)
    _, metrics = jax.jit(method.phases[0].step)(state, batch)
    net = dcca.DccaNet(TOY_SPEC, config, rngs=nnx.Rngs(0))
    nnx.update(net, state.params, state.model_state)
    z = net.canonical(batch["inputs"], deterministic=True)
    still = dcca.correlation_objective(z, batch["present"], TOY_SPEC.modalities,
                                       config.method.ridge)
    assert abs(float(metrics["correlation"]) - float(still)) > 1e-3


def test_phase_two_trains_the_head_with_dropout_on_deterministic_features():
    """Phase 2's loss is the head's, with dropout (the step's key), on the deterministic
    canonical outputs; ``predict`` runs both without dropout."""
    config = dataclasses.replace(_config(DccaConfig(cca_steps=1, cca_dim=2), steps=3),
                                 model=ModelConfig(hidden=16, feature_dim=8, dropout=0.5))
    method = methods.make(config, TOY_SPEC)
    batch = random_batch(jax.random.key(0), n=32)
    state, _ = jax.jit(method.phases[0].step)(method.init(jax.random.key(1), batch), batch)
    after, metrics = jax.jit(method.phases[1].step)(state, batch)

    def net_of(s):
        net = dcca.DccaNet(TOY_SPEC, config, rngs=nnx.Rngs(0))
        nnx.update(net, s.params, s.model_state)
        return net

    net = net_of(state)
    z = net.canonical(batch["inputs"], deterministic=True)
    key = step_keys(state, "dropout")["dropout"]
    logits = net.classify(z, batch["present"], deterministic=False, rngs=nnx.Rngs(dropout=key))
    want = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
    assert abs(float(metrics["loss"]) - float(want)) <= 1e-5 * float(want)
    net = net_of(after)
    still = net.classify(net.canonical(batch["inputs"], deterministic=True), batch["present"],
                         deterministic=True)
    np.testing.assert_allclose(method.predict(after, batch), still, rtol=1e-5, atol=1e-6)
