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
differences of the reference's integrated outer loss. The pretraining phases are checked too.
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
def _method():
    """The method (every phase of SGD at ``LR``) and its three jitted phase steps; the paper's
    switches, with a large inner step so that the second-order term is large."""
    config = ExperimentConfig(
        method=SmilConfig(phase1_steps=0, phase2_steps=0, num_priors=PRIORS, memory_size=16,
                          inner_steps=K_INNER, mc_samples=L_MC, inner_lr=ALPHA,
                          kl_weight=KL_WEIGHT),
        model=ModelConfig(hidden=5, feature_dim=4), optim=sgd(LR),
        train=TrainConfig(steps=4, batch_size=N))
    method = methods.make(config, SPEC)
    return method, [jax.jit(p.step) for p in method.phases]


def _setup(present):
    method, steps = _method()
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
