"""SMIL: the inner SGD step, the meta-gradient, priors, switches, memory, and a short run."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig, validate
from mmjax.data import missing
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods import smil, smil_priors
from mmjax.methods.smil import SmilConfig
from toy import phase_stepper

SPEC = DatasetSpec("toy", ("a", "b"), ((6,), (5,)), "classification", 3)


def _config(steps=8, **method):
    method = {"phase1_steps": 2, "phase2_steps": 2, "memory_size": 32, "num_priors": 3, **method}
    return ExperimentConfig(method=SmilConfig(**method), model=ModelConfig(hidden=8, feature_dim=4),
                            optim=OptimConfig(lr=1e-2), train=TrainConfig(steps=steps,
                                                                           batch_size=8))


def _batch(key, n=8, present=None):
    k1, k2, k3 = jax.random.split(key, 3)
    if present is None:
        present = jnp.ones((n, 2), bool).at[n // 2:, 1].set(False)
    inputs = {"a": jax.random.normal(k1, (n, 6)), "b": jax.random.normal(k2, (n, 5))}
    inputs = missing.apply(inputs, present, SPEC.modalities)
    return {"inputs": inputs, "present": present,
            "label": jax.random.randint(k3, (n,), 0, 3)}


def _net(config, state):
    model = methods.smil.NNXModel(lambda rngs: smil.SmilNet(SPEC, config.model, 3, rngs=rngs))
    return nnx.merge(model.graphdef, state.params, state.model_state)


# --- the inner loop and the meta-gradient (eq. 4, Algorithm 1) ---------------------------------

def _quadratic_problem(dtype=jnp.float32):
    """theta = {"w"}, psi = {"recon"}: L_in = mean((X (w + recon) - y)^2), L_out on other data."""
    rng = np.random.default_rng(0)
    x_in, y_in = rng.normal(size=(7, 3)), rng.normal(size=7)
    x_out, y_out = rng.normal(size=(5, 3)), rng.normal(size=5)
    params = {"w": jnp.asarray(rng.normal(size=3), dtype),
              "recon": jnp.asarray(rng.normal(size=3), dtype)}
    x_in, y_in, x_out, y_out = (jnp.asarray(a, dtype) for a in (x_in, y_in, x_out, y_out))

    def inner_loss(p, key):
        del key
        return jnp.mean((x_in @ (p["w"] + p["recon"]) - y_in) ** 2), jnp.zeros(())

    def outer_loss(p):
        return jnp.mean((x_out @ (p["w"] * p["recon"]) - y_out) ** 2)

    return params, inner_loss, outer_loss, (x_in, y_in, x_out, y_out)


def test_one_inner_step_is_theta_minus_alpha_grad_by_hand():
    """theta_1 = theta - alpha * (2/n) X^T (X (w + recon) - y); psi ("recon") is not adapted."""
    params, inner_loss, _, (x, y, _, _) = _quadratic_problem()
    alpha = 0.1
    theta, (losses, _) = smil.adapt(inner_loss, params, smil.theta_mask(params),
                                    jnp.asarray([alpha]), jax.random.split(jax.random.key(0), 1),
                                    first_order=False)
    w, r = np.asarray(params["w"], np.float64), np.asarray(params["recon"], np.float64)
    xn, yn = np.asarray(x, np.float64), np.asarray(y, np.float64)
    grad = 2.0 / len(yn) * xn.T @ (xn @ (w + r) - yn)
    np.testing.assert_allclose(theta["w"], w - alpha * grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(theta["recon"], params["recon"])
    np.testing.assert_allclose(losses[0], np.mean((xn @ (w + r) - yn) ** 2), rtol=1e-5)


def _meta(params, inner_loss, outer_loss, first_order, steps=2, alpha=0.05):
    def f(p):
        theta, _ = smil.adapt(inner_loss, p, smil.theta_mask(p), jnp.full((steps,), alpha),
                              jax.random.split(jax.random.key(0), steps), first_order)
        return outer_loss(theta)
    return f


def test_meta_gradient_matches_finite_differences():
    """Second-order meta-gradient of L_out(adapt(theta, psi)) over 2 inner steps, w.r.t. both
    theta and psi, against central differences in float64 (h = 1e-6)."""
    with jax.enable_x64(True):
        params, inner_loss, outer_loss, _ = _quadratic_problem(jnp.float64)
        f = _meta(params, inner_loss, outer_loss, first_order=False)
        grad = jax.grad(f)(params)
        h = 1e-6
        for name in ("w", "recon"):
            for i in range(3):
                plus = {**params, name: params[name].at[i].add(h)}
                minus = {**params, name: params[name].at[i].add(-h)}
                fd = (f(plus) - f(minus)) / (2 * h)
                np.testing.assert_allclose(grad[name][i], fd, rtol=1e-6, atol=1e-9)


def test_first_order_drops_the_second_order_term():
    """One inner step, L_in quadratic with Hessian H = (2/n) X^T X in theta:
    second order  d/dw = (I - alpha H) g*,  first order  d/dw = g* = grad L_out(theta*)."""
    with jax.enable_x64(True):
        params, inner_loss, outer_loss, (x, _, _, _) = _quadratic_problem(jnp.float64)
        alpha = 0.05
        theta, _ = smil.adapt(inner_loss, params, smil.theta_mask(params), jnp.asarray([alpha]),
                              jax.random.split(jax.random.key(0), 1), False)
        g_star = jax.grad(outer_loss)(theta)["w"]
        hess = 2.0 / x.shape[0] * x.T @ x
        so = jax.grad(_meta(params, inner_loss, outer_loss, False, steps=1, alpha=alpha))(params)
        fo = jax.grad(_meta(params, inner_loss, outer_loss, True, steps=1, alpha=alpha))(params)
        np.testing.assert_allclose(fo["w"], g_star, rtol=1e-10)
        np.testing.assert_allclose(so["w"], g_star - alpha * hess @ g_star, rtol=1e-10)
        assert np.abs(np.asarray(so["w"] - fo["w"])).max() > 1e-4


# --- priors -------------------------------------------------------------------------------------

def test_kmeans_recovers_separated_clusters_ignores_zero_weight_rows_and_is_reproducible():
    rng = np.random.default_rng(0)
    means = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = np.concatenate([m + 0.1 * rng.normal(size=(20, 2)) for m in means]
                       + [np.full((5, 2), 1e3)])  # far rows with weight 0 (empty memory slots)
    w = np.r_[np.ones(60), np.zeros(5)]
    c1 = smil_priors.kmeans(jax.random.key(3), jnp.asarray(x, jnp.float32), jnp.asarray(w), 3)
    c2 = smil_priors.kmeans(jax.random.key(3), jnp.asarray(x, jnp.float32), jnp.asarray(w), 3)
    np.testing.assert_array_equal(c1, c2)
    found = np.asarray(c1)[np.argsort(np.asarray(c1)[:, 0] * 100 + np.asarray(c1)[:, 1])]
    expected = np.stack([x[i * 20:(i + 1) * 20].mean(0) for i in range(3)])
    expected = expected[np.argsort(expected[:, 0] * 100 + expected[:, 1])]
    np.testing.assert_allclose(found, expected, atol=1e-4)


def test_pca_priors_are_mean_plus_one_std_along_the_leading_axes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 4)) * np.array([5.0, 2.0, 1.0, 0.1]) + 3.0
    priors = np.asarray(smil_priors.pca(jnp.asarray(x, jnp.float32), jnp.ones(200), 2))
    mean = x.mean(0)
    evals, evecs = np.linalg.eigh(np.cov(x.T, bias=True))
    for k, j in enumerate((3, 2)):  # descending eigenvalues
        step = priors[k] - mean
        np.testing.assert_allclose(np.linalg.norm(step), np.sqrt(evals[j]), rtol=1e-3)
        assert abs(abs(step @ evecs[:, j]) / np.linalg.norm(step) - 1) < 1e-3


@pytest.mark.slow
def test_method_priors_are_reproducible_for_a_seed():
    """Same seed -> bit-identical priors at the first meta step; another seed -> different."""
    method = methods.make(_config(), SPEC)
    step = phase_stepper(method, 8)

    def priors(seed):
        state = method.init(jax.random.key(seed), _batch(jax.random.key(0)))
        for i in range(5):  # phases 1 and 2, then the meta phase's enter computes the priors
            state, _ = step(state, _batch(jax.random.key(i % 2)))
        return np.asarray(state.extra["priors"])

    p0 = priors(0)
    assert np.abs(p0).sum() > 0
    np.testing.assert_array_equal(p0, priors(0))
    assert not np.array_equal(p0, priors(1))


# --- memory -------------------------------------------------------------------------------------

def test_memory_stores_each_complete_sample_once():
    method = methods.make(_config(), SPEC)
    batch = _batch(jax.random.key(0))
    state = method.init(jax.random.key(0), batch)
    extra = smil.memory_insert(state.extra, batch, SPEC.modalities, jnp.ones(6), jnp.ones(5) * .5)
    extra = smil.memory_insert(extra, batch, SPEC.modalities, jnp.ones(6), jnp.ones(5) * .5)
    assert int(extra["count"]) == 4  # 4 complete samples, inserted twice
    np.testing.assert_array_equal(extra["x2"][:4], batch["inputs"]["b"][:4])
    np.testing.assert_array_equal(extra["y"][:4], batch["label"][:4])


def test_memory_duplicate_tolerance_is_relative_to_the_fingerprints_magnitude():
    """A stored sample is recognised by its fingerprint up to float32 rounding, which grows with
    the fingerprint's magnitude (the same sample's fingerprint can differ in its last bits between
    batches): a few ulps off at |fp| ~ 1e4 is still the stored sample, while a sample whose
    fingerprint differs by 1e-3 relative is a new one."""
    method = methods.make(_config(), SPEC)
    rng = np.random.default_rng(0)
    # Positive inputs of magnitude ~1e3, so the fingerprint (sum of 11 terms) is ~1e4.
    inputs = {"a": jnp.asarray(rng.uniform(500, 1500, (2, 6)), jnp.float32),
              "b": jnp.asarray(rng.uniform(500, 1500, (2, 5)), jnp.float32)}
    batch = {"inputs": inputs, "present": jnp.ones((2, 2), bool), "label": jnp.array([0, 2])}
    state = method.init(jax.random.key(0), batch)
    r1, r2 = jnp.ones(6), jnp.full((5,), 0.5)
    extra = smil.memory_insert(state.extra, batch, SPEC.modalities, r1, r2)
    assert int(extra["count"]) == 2
    fp = np.asarray(extra["fp"][:2])
    assert np.all(np.abs(fp) > 5e3)
    # The stored fingerprints 4 ulps off (as if computed in another reduction order).
    shifted = fp.copy()
    for _ in range(4):
        shifted = np.nextafter(shifted, np.array([np.inf, -np.inf], np.float32))
    assert np.all(shifted != fp)
    extra = {**extra, "fp": extra["fp"].at[:2].set(shifted)}
    extra = smil.memory_insert(extra, batch, SPEC.modalities, r1, r2)
    assert int(extra["count"]) == 2  # both recognised as stored
    # One input moved by 10 (fingerprint moved by 10, i.e. ~1e-3 of it): a new sample, stored.
    moved = {**batch, "inputs": {**inputs, "a": inputs["a"].at[1, 0].add(10.0)}}
    extra = smil.memory_insert(extra, moved, SPEC.modalities, r1, r2)
    assert int(extra["count"]) == 3
    np.testing.assert_array_equal(extra["x1"][2], moved["inputs"]["a"][1])


# --- switches -----------------------------------------------------------------------------------

def _features(seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(4, 4)), jnp.float32),
            jnp.asarray(rng.normal(size=(3, 4)), jnp.float32))


def test_reconstruction_switch():
    """paper: <omega, M> / K with omega = 1 + softplus(phi_c(h1)) eps (eps=None: mean of M);
    released: softplus-weighted average of M; direct: phi_c regression, priors unused."""
    config = _config()
    state = methods.make(config, SPEC).init(jax.random.key(0), _batch(jax.random.key(0)))
    net = _net(config, state)
    h1, priors = _features()
    a = np.asarray(net.recon(h1), np.float64)
    sp = np.log1p(np.exp(a))
    eps = jax.random.normal(jax.random.key(1), (4, 3))
    paper = SmilConfig(reconstruction="paper")
    out, kl = smil.reconstruct(net, paper, h1, priors, eps)
    omega = 1 + (sp + 1e-6) * np.asarray(eps)
    np.testing.assert_allclose(out, omega @ np.asarray(priors) / 3, rtol=1e-4, atol=1e-5)
    s = sp + 1e-6
    np.testing.assert_allclose(kl, 0.5 * (s**2 - 1 - 2 * np.log(s)).sum(-1), rtol=1e-4)
    mean, _ = smil.reconstruct(net, paper, h1, priors, None)
    np.testing.assert_allclose(mean, np.tile(np.asarray(priors).mean(0), (4, 1)), rtol=1e-5)
    released, _ = smil.reconstruct(net, SmilConfig(reconstruction="released"), h1, priors, eps)
    np.testing.assert_allclose(released, sp @ np.asarray(priors) / sp.sum(-1, keepdims=True),
                               rtol=1e-4, atol=1e-5)
    direct, _ = smil.reconstruct(net, SmilConfig(reconstruction="direct"), h1, priors * 0, eps)
    np.testing.assert_allclose(direct, net.recon_direct(h1), rtol=1e-6)


def test_regulariser_switch():
    """additive h + softplus(r), multiplicative h * softplus(r), none; r = mu + sigma eps with
    sigma = softplus(.) (learned) or 1 (fixed); fixed_gaussian r = eps; eps=None r = mu."""
    config = _config()
    state = methods.make(config, SPEC).init(jax.random.key(0), _batch(jax.random.key(0)))
    net = _net(config, state)
    rng = np.random.default_rng(2)
    h_prev = jnp.asarray(rng.normal(size=(4, 4)), jnp.float32)
    h = jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
    eps = jnp.asarray(rng.normal(size=(4, 8)), jnp.float32)
    mu = np.asarray(net.reg1_mu(h_prev))
    sig = np.log1p(np.exp(np.asarray(net.reg1_sigma(h_prev)))) + 1e-6
    softplus = lambda v: np.log1p(np.exp(v))  # noqa: E731
    cases = {
        SmilConfig(): np.asarray(h) + softplus(mu + sig * np.asarray(eps)),
        SmilConfig(regularization="multiplicative"): np.asarray(h) * softplus(
            mu + sig * np.asarray(eps)),
        SmilConfig(reg_sigma="fixed"): np.asarray(h) + softplus(mu + np.asarray(eps)),
        SmilConfig(fixed_gaussian=True): np.asarray(h) + softplus(np.asarray(eps)),
        SmilConfig(regularization="none"): np.asarray(h),
    }
    for mc, expected in cases.items():
        out, _ = smil.regularize(net.reg1_mu, net.reg1_sigma, mc, h_prev, h, eps)
        np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6, err_msg=str(mc))
    out, _ = smil.regularize(net.reg1_mu, net.reg1_sigma, SmilConfig(), h_prev, h, None)
    np.testing.assert_allclose(out, np.asarray(h) + softplus(mu), rtol=1e-5, atol=1e-6)


def test_predict_uses_x2_where_present_and_the_reconstruction_where_missing():
    """Reconstruction off for complete samples (output independent of phi_c and of the priors),
    on for image-only ones (output independent of the zero-filled x2). The released form, whose
    deterministic reconstruction depends on phi_c (the paper form's mean is the prior average)."""
    method = methods.make(_config(reconstruction="released"), SPEC)
    batch = _batch(jax.random.key(0))
    state = method.init(jax.random.key(0), batch)
    priors = jax.random.normal(jax.random.key(5), (3, 4))
    state = state.replace(extra={**state.extra, "priors": priors})
    out = method.predict(state, batch)
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 1.0 if getattr(p[0], "key", "") == "recon" else x, state.params)
    other = method.predict(state.replace(params=params), batch)
    np.testing.assert_allclose(out[:4], other[:4], rtol=1e-6)  # complete: recon off
    assert np.abs(np.asarray(out[4:] - other[4:])).max() > 1e-4  # missing: recon on
    noisy = {**batch, "inputs": {**batch["inputs"], "b": batch["inputs"]["b"] + 5.0}}
    np.testing.assert_allclose(method.predict(state, noisy)[4:], out[4:], rtol=1e-6)


@pytest.mark.parametrize("switches, moved", [
    ({"reconstruction": "released"}, "recon"),
    ({"reconstruction": "direct"}, "recon_direct"),
    ({"reconstruction": "paper", "deterministic": True}, None),
])
def test_eq1_term_updates_only_the_reconstruction_network_that_the_switch_uses(switches, moved):
    """SMIL eq. 1 (``recon_nll_weight``) in one SGD meta step, against the same step without it:
    only phi_c's layer of the reconstruction form changes (the released weights ``recon``, the
    direct regression ``recon_direct``); the paper form's deterministic reconstruction is the
    prior average, so the term gives it no gradient and changes nothing."""
    sgd = OptimConfig(name="sgd", lr=0.1, momentum=0.0)
    batch = _batch(jax.random.key(0))
    params = {}
    for weight in (0.0, 1.0):
        config = _config(steps=4, phase1_steps=0, phase2_steps=0, recon_nll_weight=weight,
                         **switches)
        method = methods.make(dataclasses.replace(config, optim=sgd), SPEC)
        state = method.init(jax.random.key(0), batch)
        state = state.replace(extra={**state.extra,
                                     "priors": jax.random.normal(jax.random.key(5), (3, 4))})
        new, metrics = jax.jit(method.phases[2].step)(state, batch)
        assert (float(metrics["recon_nll"]) > 0) == (weight > 0)
        params[weight] = nnx.to_pure_dict(new.params)
    for group in params[0.0]:
        same = all(np.allclose(a, b, rtol=1e-6, atol=1e-7) for a, b in zip(
            jax.tree.leaves(params[0.0][group]), jax.tree.leaves(params[1.0][group])))
        assert same == (group != moved), group


# --- the jitted step ----------------------------------------------------------------------------

def test_changing_eta_never_recompiles_and_phases_run():
    """Masks from paired_fraction at eta = 0.1, 0.5, 1.0 go through one trace of each phase's
    step; the run crosses both phase boundaries (phase metric 1, 2, 3), losses stay finite."""
    traces = []
    method = methods.make(_config(), SPEC)
    assert [p.name for p in method.phases] == ["pretrain_unimodal", "pretrain_fusion", "meta"]
    assert [p.steps for p in method.phases] == [2, 2, None]
    step = phase_stepper(method, 8, traces)
    state = method.init(jax.random.key(0), _batch(jax.random.key(0)))
    phases = []
    for i, eta in enumerate((0.1, 0.5, 1.0, 0.5, 0.1, 0.5)):
        present = missing.paired_fraction(jax.random.key(i), 8, 2, eta)
        state, metrics = step(state, _batch(jax.random.key(i), present=present))
        assert np.isfinite(float(metrics["loss"]))
        phases.append(float(metrics["phase"]))
    assert traces == ["pretrain_unimodal", "pretrain_fusion", "meta"]
    assert phases == [1, 1, 2, 2, 3, 3]
    assert int(state.extra["count"]) > 0


@pytest.mark.parametrize("overrides", [
    {"outer_loss": "released", "reconstruction": "released", "reg_sigma": "fixed",
     "kl_weight": 0.0, "inner_lr_decay_every": 1, "inner_steps": 2, "priors": "pca"},
    {"reconstruction": "direct", "regularization": "none", "first_order": True,
     "deterministic": True, "mc_samples": 2},
])
@pytest.mark.slow
def test_switch_combinations_train(overrides):
    """The released-code settings and the ablations run through both phases and meta steps."""
    method = methods.make(_config(steps=4, phase1_steps=1, phase2_steps=1, **overrides), SPEC)
    step = phase_stepper(method, 4)
    state = method.init(jax.random.key(0), _batch(jax.random.key(0)))
    for i in range(4):
        state, metrics = step(state, _batch(jax.random.key(i)))
        assert all(np.isfinite(float(v)) for v in metrics.values())
    assert float(metrics["phase"]) == 3


def test_bad_settings_fail_with_user_errors():
    with pytest.raises(UserError, match="reconstruction"):
        methods.make(_config(reconstruction="gan"), SPEC)
    with pytest.raises(UserError, match="two modalities"):
        methods.make(_config(), DatasetSpec("t", ("a", "b", "c"), ((2,),) * 3,
                                            "classification", 2))
    with pytest.raises(UserError, match="exceeds"):
        methods.make(_config(steps=3), SPEC)
    with pytest.raises(UserError, match="recon_nll_weight"):
        validate(_config(recon_nll_weight=-1.0))
