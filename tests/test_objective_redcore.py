"""RedCore's whole training step against an independent float64 reference of the paper.

Sun et al., AAAI 2024 (papers/000). The reference redoes, from the parameters: the self-modal
variational encoders (eq. 3, reparameterised, zbar_m = 0 where m is missing), the residual-
autoencoder cross-modal encoders, eq. (1) z_m = p_m ? zbar_m : zhat_m, the M + 1 heads, L_VIB
(eq. 3; gamma on the KL, each KL_m over the present samples / B), the cross-modal MSE over the
present samples only, the moving averages (eq. 10), the relative advantage of the *averages*
(eqs. 4-5), eta <- Pro_Gamma1[eta - alpha r] every K steps (eq. 9; the projection here is a
bisection on the scale c of max(xi1, c v), not the method's closed form), and
L = L_VIB + sum_m eta_m L_MSE^m with eta the upper-level variable (held fixed in the gradient).
The gradient is read off one plain-SGD step and also checked against central differences of the
reference with eta held (the "eta path": eta moves with the MSE but carries no gradient).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.methods.redcore import RedCoreConfig
from objective_ref import (assert_close, assert_trees_close, cross_entropy, directional_fd,
                           jitter, linear, masked_mean, mlp_encoder, mlp_head, pure,
                           random_direction, sgd, sgd_gradient, step_key, to64, tree_dot,
                           tree_norm)
from toy import TOY_SPEC

MODS = TOY_SPEC.modalities
M = len(MODS)
LR, GAMMA, BETA, ALPHA, K, XI1, XI2 = 0.1, 0.008, 0.7, 0.1, 3, 0.015, 0.15
# Every masking rule: complete rows, each modality missing, each alone, an empty row.
MIXED = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1],
                  [0, 0, 0], [1, 1, 1]], bool)
# Modality c absent from the whole batch: its MSE is undefined and its average is kept.
NO_C = MIXED & np.array([True, True, False])


@functools.cache
def _method(unimodal_ce=True, gamma_on="kl"):
    """The method and its jitted step, built once per switch setting for this file."""
    config = ExperimentConfig(
        method=RedCoreConfig(latent_dim=3, xenc_layers=(4, 2), xenc_blocks=2,
                             unimodal_ce=unimodal_ce, gamma_on=gamma_on),
        model=ModelConfig(hidden=5, feature_dim=4), optim=sgd(LR),
        train=TrainConfig(steps=10, batch_size=len(MIXED)))
    method = methods.make(config, TOY_SPEC)
    return method, jax.jit(method.train_step)


def _setup(present, step, mal, eta, **switches):
    method, step_fn = _method(**switches)
    rng = np.random.default_rng(1)
    # Missing entries hold garbage: a missing input must never be read.
    batch = {"inputs": {m: jnp.asarray(rng.normal(size=(len(present), *s)) * 3.0)
                        for m, s in zip(MODS, TOY_SPEC.shapes)},
             "present": jnp.asarray(present),
             "label": jnp.asarray(rng.integers(0, 3, len(present)))}
    state = to64(method.init(jax.random.key(0), batch))
    extra = {"eta": jnp.asarray(eta, jnp.float64), "mal": jnp.asarray(mal, jnp.float64)}
    state = state.replace(step=jnp.asarray(step, jnp.int32), extra=extra,
                          params=jitter(state.params, jax.random.key(5)))
    return step_fn, state, to64(batch)


def _residual_ae(p, x):
    """The cross-modal encoder: 2 residual blocks (LeakyReLU 0.2 encoder, latent included; ReLU
    decoder, linear output), x_in <- x_in + x_out per block, then trans2(ReLU(trans1(.)))."""
    x_in, x_out = x, jnp.zeros_like(x)
    for b in range(2):
        blk = p["blocks"][b]
        x_in = x_in + x_out
        h = x_in
        for i in range(2):
            h = jax.nn.leaky_relu(linear(blk["enc"][i], h), 0.2)
        h = jax.nn.relu(linear(blk["dec"][0], h))
        x_out = linear(blk["dec"][1], h)
    return linear(p["trans2"], jax.nn.relu(linear(p["trans1"], x_in + x_out)))


def _terms(p, batch, noise_key):
    """CE_joint, CE_m [M], KL_m [M], MSE_m [M] of the paper on this batch."""
    present, label = batch["present"], batch["label"]
    b = present.shape[0]
    keys = jax.random.split(noise_key, M)
    zbar, kl = [], []
    for c, m in enumerate(MODS):
        pc = present[:, c:c + 1]
        f = mlp_encoder(p["encoders"][m], batch["inputs"][m] * pc)  # never read where missing
        mu, logvar = jnp.split(linear(p["gauss"][m], f), 2, axis=-1)
        z = mu + jax.random.normal(keys[c], mu.shape, mu.dtype) * jnp.exp(0.5 * logvar)
        zbar.append(z * pc)
        kl_b = 0.5 * (jnp.exp(logvar) + mu ** 2 - 1.0 - logvar).sum(-1)
        kl.append((kl_b * present[:, c]).sum() / b)
    zhat = [_residual_ae(p["xenc"][m], jnp.concatenate([zbar[o] for o in range(M) if o != c], -1))
            for c, m in enumerate(MODS)]
    z = [jnp.where(present[:, c:c + 1], zbar[c], zhat[c]) for c in range(M)]  # eq. (1)
    anyp = present.any(-1)
    ce = jnp.stack([masked_mean(cross_entropy(mlp_head(p["heads"][m], z[c]), label), anyp)
                    for c, m in enumerate(MODS)])
    ce_joint = masked_mean(cross_entropy(mlp_head(p["joint"], jnp.concatenate(z, -1)), label),
                           anyp)
    mse = jnp.stack([masked_mean(((zbar[c] - zhat[c]) ** 2).sum(-1), present[:, c])
                     for c in range(M)])
    return ce_joint, ce, jnp.stack(kl), mse


def _project(v):
    """Pro_Gamma1(v) for a v with a positive entry: max(xi1, c v) with ||.|| = xi2, c found by
    bisection (the norm grows with c)."""
    v = np.asarray(v, np.float64)
    assert v.max() > 0
    lo, hi = 0.0, 1e6
    for _ in range(200):
        c = 0.5 * (lo + hi)
        lo, hi = (c, hi) if np.linalg.norm(np.maximum(XI1, c * v)) < XI2 else (lo, c)
    return np.maximum(XI1, 0.5 * (lo + hi) * v)


def _red(mse, mal, eta, step, valid):
    """Eq. (10) averages, eqs. (4)-(5) r of the averages, eq. (9) every K steps."""
    mse, mal, eta = (np.asarray(a, np.float64) for a in (mse, mal, eta))
    new_mal = mse if step == 0 else (1 - BETA) * mal + BETA * mse
    new_mal = np.where(valid, new_mal, mal)
    r = (new_mal.mean() - new_mal) / new_mal.mean()
    new_eta = _project(eta - ALPHA * r) if step % K == 0 else eta
    return new_mal, new_eta, r


def _loss(p, batch, noise_key, eta, unimodal_ce=True, gamma_on="kl"):
    """L = L_VIB + eta . L_MSE; ``unimodal_ce=False``: *Red* (CE of z_{M+1} only);
    ``gamma_on="ce"``: eq. 2-3 literally, KL + gamma CE."""
    ce_joint, ce, kl, mse = _terms(p, batch, noise_key)
    ce_sum = ce_joint + (ce.sum() if unimodal_ce else 0.0)
    vib = ce_sum + GAMMA * kl.sum() if gamma_on == "kl" else kl.sum() + GAMMA * ce_sum
    return vib + jnp.dot(eta, mse)


_TERMS = jax.jit(_terms)
_LOSS_GRAD = jax.jit(jax.value_and_grad(_loss), static_argnums=(4, 5))

CASES = {  # (present, step, previous averages, previous eta on Gamma_1)
    "first_step": (MIXED, 0, [0.0, 0.0, 0.0], np.full(3, XI2 / np.sqrt(3))),
    "eta_update_step": (MIXED, 3, [0.9, 0.2, 0.5], XI2 * np.array([0.5, 0.3, 0.8])
                        / np.linalg.norm([0.5, 0.3, 0.8])),
    "c_absent_no_update": (NO_C, 4, [0.9, 0.2, 0.5], XI2 * np.array([0.2, 0.6, 0.7])
                           / np.linalg.norm([0.2, 0.6, 0.7])),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_step_is_the_paper_objective_with_the_red_update(case):
    """Loss, every metric term, eta and the moving averages after the step, and the gradient of
    every parameter group, against the reference (1e-6 relative)."""
    present, step, mal, eta = CASES[case]
    with jax.enable_x64(True):
        step_fn, state, batch = _setup(present, step, mal, eta)
        new, metrics = step_fn(state, batch)
        p, noise_key = pure(state.params), step_key(state, 1, 2)
        ce_joint, ce, kl, mse = _TERMS(p, batch, noise_key)
        new_mal, new_eta, r = _red(mse, mal, eta, step, present.any(0))
        assert_close(new.extra["mal"], new_mal, 1e-6, "moving averages (eq. 10)")
        assert_close(new.extra["eta"], new_eta, 1e-6, "eta (eq. 9)")
        assert (step % K == 0) != np.allclose(new_eta, eta)  # the case moves eta iff it should
        for c, m in enumerate(MODS):
            for name, value in (("ce", ce[c]), ("kl", kl[c]), ("mse", mse[c]), ("ra", r[c])):
                assert_close(metrics[f"{name}_{m}"], value, 1e-6, f"{name}_{m}")
        assert_close(metrics["ce_joint"], ce_joint, 1e-6, "ce_joint")
        expected, grad = _LOSS_GRAD(p, batch, noise_key, jnp.asarray(new_eta))
        assert_close(metrics["loss"], expected, 1e-6, "L = L_VIB + eta . L_MSE")
        assert_trees_close(sgd_gradient(state.params, new.params, LR), grad, 1e-6, "grad")


def test_gradient_is_the_derivative_of_the_objective_with_eta_held():
    """The eta path: at an eta-update step the applied gradient equals central differences
    (float64, h = 1e-6) of the reference L(theta; eta_new), eta_new held, along a random
    direction in each parameter group."""
    present, step, mal, eta = CASES["eta_update_step"]
    with jax.enable_x64(True):
        step_fn, state, batch = _setup(present, step, mal, eta)
        new, _ = step_fn(state, batch)
        grad = sgd_gradient(state.params, new.params, LR)
        p, noise_key = pure(state.params), step_key(state, 1, 2)
        eta_new = jnp.asarray(new.extra["eta"])
        loss = lambda q: _LOSS_GRAD(q, batch, noise_key, eta_new)[0]  # noqa: E731
        for i, group in enumerate(sorted(p)):
            d = random_direction(jax.random.key(i), p, only=(group,))
            fd = directional_fd(loss, p, d)
            assert abs(tree_dot(grad, d) - fd) <= 1e-6 * tree_norm(grad, d), group


@pytest.mark.parametrize("switches", [{"unimodal_ce": False}, {"gamma_on": "ce"}],
                         ids=["red_ablation", "gamma_on_ce"])
def test_ablation_switches_change_the_objective_as_the_paper_says(switches):
    """*Red* (Table 2: no per-modality CE) and gamma on the CE (eq. 2-3 read literally): the
    loss and the gradient of the switched objective, eta and the averages as in the paper."""
    present, step, mal, eta = CASES["eta_update_step"]
    with jax.enable_x64(True):
        step_fn, state, batch = _setup(present, step, mal, eta, **switches)
        new, metrics = step_fn(state, batch)
        p, noise_key = pure(state.params), step_key(state, 1, 2)
        expected, grad = _LOSS_GRAD(p, batch, noise_key, jnp.asarray(new.extra["eta"]),
                                    switches.get("unimodal_ce", True),
                                    switches.get("gamma_on", "kl"))
        assert_close(metrics["loss"], expected, 1e-6, "switched L")
        assert_trees_close(sgd_gradient(state.params, new.params, LR), grad, 1e-6, "grad")
