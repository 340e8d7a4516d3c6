"""SMIL's whole per-step objectives against an independent float64 reference of the paper.

Ma et al., AAAI 2021 (papers/004). The reference redoes, from the parameters, the main network
(MLP encoders f1, f2; fusion fc1 -> ReLU -> fc2), the reconstruction of eq. 2 (x2_hat =
<omega, M> / K, omega = 1 + softplus(phi_c(h1)) eps, KL to N(1, I)), the additive regulariser of
eq. 3 at both sites (h + softplus(mu + sigma eps), (mu, sigma) = phi_r(h_prev), KL to N(0, I)),
the inner loop of eq. 4 / Algorithm 1 (K SGD steps of theta on D^m, x2 reconstructed for every
sample; psi not adapted), and the outer loss of eq. 5-7 (L Monte-Carlo samples of CE at theta*
on D^f with the real x2, plus the D^m term at theta, plus kl_weight * KL). The D^f batch is the
batch's complete samples (the memory starts empty) drawn as the step draws them. The meta-
gradient, second order through the inner gradient (hence through phi_c and phi_r), is read off
one plain-SGD step and checked against autodiff of the reference and against central
differences of the reference's integrated outer loss. The pretraining phases are checked too, and
SMIL eq. 1's optional term (``recon_nll_weight``: 0.5 ||x2_hat - f2(x2)||^2 over the batch's
complete samples) against a NumPy float64 reference, value and gradient.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods.smil import SmilConfig
from objective_ref import (assert_close, assert_trees_close, cross_entropy, directional_fd,
                           jitter, linear, masked_mean, mlp_encoder, pure, random_direction, sgd,
                           sgd_gradient, softplus, to64, tree_dot, tree_norm)

SPEC = DatasetSpec("toy", ("a", "b"), ((6,), (5,)), "classification", 3)
LR, ALPHA, KL_WEIGHT, K_INNER, L_MC, PRIORS = 0.1, 0.5, 0.1, 2, 2, 3
PSI = ("recon", "recon_direct", "reg1_mu", "reg1_sigma", "reg2_mu", "reg2_sigma")
# Complete rows (they fill D^f) and rows whose x2 is missing (garbage there: never read).
META = np.array([[1, 1]] * 5 + [[1, 0]] * 3, bool)
# Pretraining also masks the image loss by present[:, 0]: one row lacks x1.
PRETRAIN = META.copy()
PRETRAIN[4] = (False, True)
N = len(META)


@functools.cache
def _method(recon_nll_weight=0.0):
    """The method (every phase of SGD at ``LR``) and its three jitted phase steps; the paper's
    switches, with a large inner step so that the second-order term is large, and SMIL eq. 1's
    term at ``recon_nll_weight``."""
    config = ExperimentConfig(
        method=SmilConfig(phase1_steps=0, phase2_steps=0, num_priors=PRIORS, memory_size=16,
                          inner_steps=K_INNER, mc_samples=L_MC, inner_lr=ALPHA,
                          kl_weight=KL_WEIGHT, recon_nll_weight=recon_nll_weight),
        model=ModelConfig(hidden=5, feature_dim=4), optim=sgd(LR),
        train=TrainConfig(steps=4, batch_size=N))
    method = methods.make(config, SPEC)
    return method, [jax.jit(p.step) for p in method.phases]


def _setup(present, recon_nll_weight=0.0):
    method, steps = _method(recon_nll_weight)
    rng = np.random.default_rng(2)
    # float32-representable inputs: the memory hands D^f to the step in float32.
    inputs = {m: jnp.asarray(rng.normal(size=(N, *s)).astype(np.float32), jnp.float64)
              for m, s in zip(SPEC.modalities, SPEC.shapes)}
    batch = {"inputs": inputs, "present": jnp.asarray(present),
             "label": jnp.asarray(rng.integers(0, 3, N))}
    state = to64(method.init(jax.random.key(0), batch))
    priors = jnp.asarray(rng.normal(size=(PRIORS, 4)))
    state = state.replace(params=jitter(state.params, jax.random.key(3)),
                          extra={**state.extra, "priors": priors})
    return steps, state, batch


def _keys(state):
    """base.step_keys(state, "memory", "dropout", "inner", "outer", "priors"), spelled out."""
    keys = jax.random.split(jax.random.fold_in(state.key, state.step), 5)
    return dict(zip(("memory", "dropout", "inner", "outer", "priors"), keys))


def _memory_batch(batch, key):
    """D^f: the batch's complete samples (the memory was empty), ``N`` drawn uniformly."""
    complete = np.asarray(batch["present"]).all(-1)
    x1, x2 = (batch["inputs"][m][complete] for m in SPEC.modalities)
    y, count = batch["label"][complete], int(complete.sum())
    idx = jnp.minimum((jax.random.uniform(key, (N,)) * count).astype(jnp.int32), count - 1)
    return x1[idx], x2[idx], y[idx]


def _noise(key, n):
    """eps of omega [n, K], r1 [n, d1 + d2], r2 [n, hidden] for one sample of z."""
    a, b, c = jax.random.split(key, 3)
    return (jax.random.normal(a, (n, PRIORS)), jax.random.normal(b, (n, 8)),
            jax.random.normal(c, (n, 5)))


def _regularise(p, name, h_prev, h, eps):
    """Eq. 3, additive, learned sigma: ``h + softplus(mu + sigma eps)`` and
    KL[N(mu, sigma^2) || N(0, I)] per sample."""
    mu = linear(p[f"{name}_mu"], h_prev)
    sigma = softplus(linear(p[f"{name}_sigma"], h_prev)) + 1e-6
    kl = 0.5 * (sigma ** 2 + mu ** 2 - 1.0 - 2.0 * jnp.log(sigma)).sum(-1)
    return h + softplus(mu + sigma * eps), kl


def _net(p, priors, x1, x2, eps):
    """The main network with the regulariser: ``(logits, kl [n])``. ``x2=None``: x2_hat (eq. 2)
    for every sample, its KL counted; else the real x2 and no reconstruction KL."""
    e_omega, e_r1, e_r2 = eps
    h1 = mlp_encoder(p["enc1"], x1)
    if x2 is None:
        sigma = softplus(linear(p["recon"], h1)) + 1e-6
        h2 = ((1.0 + sigma * e_omega) @ priors) / PRIORS
        kl_w = 0.5 * (sigma ** 2 - 1.0 - 2.0 * jnp.log(sigma)).sum(-1)
    else:
        h2, kl_w = mlp_encoder(p["enc2"], x2), 0.0
    h, kl1 = _regularise(p, "reg1", h1, jnp.concatenate([h1, h2], -1), e_r1)
    a, kl2 = _regularise(p, "reg2", h, jax.nn.relu(linear(p["fc1"], h)), e_r2)
    return linear(p["fc2"], a), kl1 + kl2 + kl_w


def _meta_loss(p, priors, batch, mem, keys):
    """Eq. 4-7 / Algorithm 1 on D^m = ``batch``, D^f = ``mem``:
    ``(L_outer, (loss_inner, loss_outer, kl))``."""
    x1, y = batch["inputs"]["a"], batch["label"]
    mx1, mx2, my = mem

    def inner(q, key):  # D^m: x2 reconstructed for every sample
        logits, kl = _net(q, priors, x1, None, _noise(key, N))
        return cross_entropy(logits, y).mean(), kl.mean()

    theta, first = p, None
    for key in jax.random.split(keys["inner"], K_INNER):  # eq. 4, K steps, second order
        (loss, kl), g = jax.value_and_grad(inner, has_aux=True)(theta, key)
        first = first or (loss, kl)
        theta = {n: v if n in PSI else jax.tree.map(lambda a, b: a - ALPHA * b, v, g[n])
                 for n, v in theta.items()}
    outer = kl_f = 0.0
    for key in jax.random.split(keys["outer"], L_MC):  # eq. 7: L samples at theta*
        logits, kl = _net(theta, priors, mx1, mx2, _noise(key, N))
        outer = outer + cross_entropy(logits, my).mean() / L_MC
        kl_f = kl_f + kl.mean() / L_MC
    kl_total = first[1] + kl_f
    return outer + KL_WEIGHT * kl_total + first[0], (first[0], outer, kl_total)


_META_GRAD = jax.jit(jax.value_and_grad(_meta_loss, has_aux=True))


@pytest.mark.slow
def test_meta_step_is_the_paper_outer_loss_and_its_second_order_gradient():
    """Loss and its parts (metrics), the memory after the step, and the gradient of every
    parameter group (theta and psi; the unimodal heads get exactly zero) to 1e-6 relative."""
    with jax.enable_x64(True):
        steps, state, batch = _setup(META)
        new, metrics = steps[2](state, batch)
        keys = _keys(state)
        mem = _memory_batch(batch, keys["memory"])
        (loss, (inner, outer, kl)), grad = _META_GRAD(pure(state.params), state.extra["priors"],
                                                      batch, mem, keys)
        assert_close(metrics["loss"], loss, 1e-6, "L_outer")
        assert_close(metrics["loss_inner"], inner, 1e-6, "D^m term at theta")
        assert_close(metrics["loss_outer"], outer, 1e-6, "D^f term at theta*")
        assert_close(metrics["kl"], kl, 1e-6, "KL")
        assert int(new.extra["count"]) == META.all(-1).sum()
        assert_trees_close(sgd_gradient(state.params, new.params, LR), grad, 1e-6, "meta-grad")


def test_meta_gradient_matches_central_differences_of_the_integrated_outer_loss():
    """Central differences (float64, h = 1e-6; the error measured against |grad| |direction|)
    of the reference outer loss, theta* recomputed at every perturbed point, along a random
    direction in each parameter group that the outer loss reads; the psi groups reach it
    through theta* (second order) as well as directly."""
    with jax.enable_x64(True):
        steps, state, batch = _setup(META)
        new, _ = steps[2](state, batch)
        grad = sgd_gradient(state.params, new.params, LR)
        p, keys, priors = pure(state.params), _keys(state), state.extra["priors"]
        mem = _memory_batch(batch, keys["memory"])
        loss = lambda q: _META_GRAD(q, priors, batch, mem, keys)[0][0]  # noqa: E731
        for i, group in enumerate(sorted(set(p) - {"head1", "head2", "recon_direct"})):
            d = random_direction(jax.random.key(i), p, only=(group,))
            fd = directional_fd(loss, p, d)
            assert abs(tree_dot(grad, d) - fd) <= 1e-6 * tree_norm(grad, d), group


def _pretrain_losses(p, batch, key):
    """Phase 1: CE(head1(f1(x1))) over the rows with x1 + CE(head2(f2(x2))) on D^f; phase 2:
    CE(fc2(ReLU(fc1([f1(x1); f2(x2)])))) on D^f, no regulariser. ``(l_img, l_snd, l_fus)``."""
    x1, y = batch["inputs"]["a"], batch["label"]
    mx1, mx2, my = _memory_batch(batch, key)
    l_img = masked_mean(cross_entropy(linear(p["head1"], mlp_encoder(p["enc1"], x1)), y),
                        batch["present"][:, 0])
    h2 = mlp_encoder(p["enc2"], mx2)
    l_snd = cross_entropy(linear(p["head2"], h2), my).mean()
    h = jnp.concatenate([mlp_encoder(p["enc1"], mx1), h2], -1)
    l_fus = cross_entropy(linear(p["fc2"], jax.nn.relu(linear(p["fc1"], h))), my).mean()
    return l_img, l_snd, l_fus


@pytest.mark.parametrize("phase", [0, 1])
def test_pretraining_steps_are_the_unimodal_and_the_fusion_losses(phase):
    with jax.enable_x64(True):
        steps, state, batch = _setup(PRETRAIN)
        new, metrics = steps[phase](state, batch)

        def loss(p):
            l_img, l_snd, l_fus = _pretrain_losses(p, batch, _keys(state)["memory"])
            return l_img + l_snd if phase == 0 else l_fus

        expected, grad = jax.value_and_grad(loss)(pure(state.params))
        assert_close(metrics["loss"], expected, 1e-6, f"phase {phase + 1} loss")
        assert_trees_close(sgd_gradient(state.params, new.params, LR), grad, 1e-6, "grad")


# --- SMIL eq. 1 as a term of the outer loss (``recon_nll_weight``) -----------------------------

NLL_WEIGHT = 0.7
# eq. 1's term enters the outer loss additively, so the loss with the term minus the loss
# without it is weight * NLL up to float64 rounding of the shared part: both losses are O(10)
# sums of O(100) float64 operations (relative error ~1e-14). 1e-10 relative to the loss is far
# above that and far below any mistake the tests guard against (a wrong sign, mask or reduction
# moves the difference by O(NLL) ~ 1, see the checks on the fixture below).
NLL_TOL = 1e-10
NO_COMPLETE = np.array([[1, 0]] * N, bool)


def _np_mlp(p, x):
    """``encoders.MLPEncoder`` in NumPy float64, dropout off: ReLU(fc2(ReLU(fc1(x))))."""
    def lin(q, v):
        return v @ np.asarray(q["kernel"], np.float64) + np.asarray(q["bias"], np.float64)

    return np.maximum(lin(p["fc2"], np.maximum(lin(p["fc1"], x.reshape(len(x), -1)), 0.0)), 0.0)


def _eq1_reference(state, batch, rows=None):
    """SMIL eq. 1 in NumPy float64 from the parameters: -log N(f2(x2); x2_hat, I) without its
    constant, 0.5 ||x2_hat - f2(x2)||^2, averaged over ``rows`` (default: the complete samples;
    0 when there are none). x2_hat = (1 + softplus(phi_c(f1(x1))) eps) @ M / K (eq. 2) with eps
    the first inner step's omega draw. Returns ``(nll, per-sample values, d nll / d phi_c)``, the
    gradient by hand: f1(x1) and f2(x2) are constants of eq. 1 (it minimises over phi_c)."""
    p = pure(state.params)
    x1, x2 = (np.asarray(batch["inputs"][m], np.float64) for m in SPEC.modalities)
    rows = np.asarray(batch["present"]).all(-1) if rows is None else rows
    eps = np.asarray(_noise(jax.random.split(_keys(state)["inner"], K_INNER)[0], N)[0],
                     np.float64)
    priors = np.asarray(state.extra["priors"], np.float64)
    h1 = _np_mlp(p["enc1"], x1)
    a = h1 @ np.asarray(p["recon"]["kernel"], np.float64) + np.asarray(p["recon"]["bias"],
                                                                       np.float64)
    sigma = np.logaddexp(a, 0.0) + 1e-6
    with np.errstate(invalid="ignore"):  # NaN targets on rows that are not counted
        resid = (1.0 + sigma * eps) @ priors / PRIORS - _np_mlp(p["enc2"], x2)
    per = 0.5 * (resid ** 2).sum(-1)
    n = int(rows.sum())
    if n == 0:
        return 0.0, per, {"kernel": np.zeros((h1.shape[1], a.shape[1])),
                          "bias": np.zeros(a.shape[1])}
    g_hat = np.where(rows[:, None], resid, 0.0) / n  # d nll / d x2_hat
    g_a = (g_hat @ priors.T / PRIORS) * eps / (1.0 + np.exp(-a))  # softplus' = sigmoid
    return per[rows].mean(), per, {"kernel": h1.T @ g_a, "bias": g_a.sum(0)}


def _with_and_without_eq1(present, x2=None):
    """One meta step of the same state and batch without (weight 0) and with eq. 1's term:
    ``(state, batch, (new, metrics) without, (new, metrics) with)``; ``x2`` replaces the
    batch's modality 2."""
    steps0, state, batch = _setup(present)
    if x2 is not None:
        batch = {**batch, "inputs": {**batch["inputs"], "b": x2}}
    steps_w = _method(NLL_WEIGHT)[1]
    return state, batch, steps0[2](state, batch), steps_w[2](state, batch)


def test_eq1_term_is_the_gaussian_nll_averaged_over_the_complete_samples():
    """SMIL eq. 1 (``recon_nll_weight``): L_outer(w) - L_outer(0) = w * NLL_1, NLL_1 from the
    float64 NumPy reference on the batch's complete rows; the metric is NLL_1 (0 when off)."""
    with jax.enable_x64(True):
        state, batch, (_, off), (_, on) = _with_and_without_eq1(META)
        nll, per, _ = _eq1_reference(state, batch)
        loss_off = float(off["loss"])
        assert abs(float(on["loss"]) - loss_off - NLL_WEIGHT * nll) <= NLL_TOL * max(
            1.0, abs(loss_off))
        assert_close(on["recon_nll"], nll, 1e-12, "recon_nll")
        assert float(off["recon_nll"]) == 0.0
        # the fixture tells the mistakes apart: the sign, every row's mean (the missing rows
        # hold random x2 here), the sum over the complete rows
        complete = META.all(-1)
        for wrong in (-nll, per.mean(), per[complete].sum()):
            assert abs(wrong - nll) > 1e-2 * nll


def test_eq1_gradient_reaches_phi_c_and_nothing_else():
    """The term's gradient (with minus without, read off the SGD steps) is w * d NLL_1 / d phi_c
    of the reference on the reconstruction network ``recon`` and zero on every other group
    (f1(x1) and f2(x2) are constants of eq. 1). At weight 0 the step is the reference without
    the term (test_meta_step_is_the_paper_outer_loss_and_its_second_order_gradient)."""
    with jax.enable_x64(True):
        state, batch, (new_off, _), (new_on, _) = _with_and_without_eq1(META)
        _, _, ref = _eq1_reference(state, batch)
        delta = jax.tree.map(lambda a, b: a - b, sgd_gradient(state.params, new_on.params, LR),
                             sgd_gradient(state.params, new_off.params, LR))
        want = {n: NLL_WEIGHT * v for n, v in ref.items()}
        assert tree_norm(want, want) > 1e-3  # the term moves phi_c
        assert_trees_close(delta["recon"], want, 1e-8, "d(w NLL_1)/d phi_c")
        for group in set(delta) - {"recon"}:
            for leaf in jax.tree.leaves(delta[group]):
                assert np.abs(np.asarray(leaf)).max() <= 1e-10, group


def test_eq1_term_without_complete_samples_is_zero_and_reads_no_missing_x2():
    """No complete row: the term is 0, the objective finite and unchanged, no gradient; the
    missing x2 is NaN here, so a term that read it (a wrong mask, or a mask applied after the
    square, whose gradient is 0 * NaN) would make the loss or the parameters NaN."""
    with jax.enable_x64(True):
        nan = jnp.full((N, 5), jnp.nan)
        state, batch, (new_off, off), (new_on, on) = _with_and_without_eq1(NO_COMPLETE, nan)
        assert _eq1_reference(state, batch)[0] == 0.0
        assert float(on["recon_nll"]) == 0.0 and np.isfinite(float(on["loss"]))
        assert abs(float(on["loss"]) - float(off["loss"])) <= NLL_TOL * abs(float(off["loss"]))
        for a, b in zip(jax.tree.leaves(new_on.params), jax.tree.leaves(new_off.params)):
            assert np.all(np.isfinite(np.asarray(a)))
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
