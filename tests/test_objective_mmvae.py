"""Whole-objective tests of MMVAE (Shi et al., NeurIPS 2019, section 3; RAML's Table I baseline).

The reference is written from the paper and the released code (``m_dreg_looser``,
``m_iwae_looser``), sample by sample and stratum by stratum, in float64, apart from
``mmjax/methods/mmvae.py``: Laplace experts with scales ``L softmax(r) + 1e-6``, the Laplace prior
of scale ``L softmax(pi)``, the mixture ``q(z | X_S) = (1/|S|) sum_{d in S} q_d`` over the present
set, ``log w = log p(z) + sum_{d in S} -0.5 ||x_d - D_d(z)||^2 - log q(z | X_S)``, and the loss
``-mean_b (1/|S_b|) sum_{m in S_b} log (1/K) sum_k w_{m,k,b}`` over the samples with a modality.
Its gradient: "iwae" the loss's own; "dreg" the generative parameters' ``sum_k w~_k grad log w_k``
and the encoders' ``sum_k w~_k^2 (d log w_k / dz) (dz / dphi)`` with q's parameters held
(Tucker et al. 2019), computed here by the chain rule through an explicit ``jax.vjp`` of the
samples, not by the module's surrogate.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.methods.mmvae import MmvaeConfig
from objective_check import (ALL_PATTERNS_3, assert_close, assert_tree_close, cross_entropy,
                             dense, jitter, make_batch, masked_mean, mlp_encoder, mlp_head, pure,
                             run_step, sgd, step_keys, to_f64, value_and_grad)
from toy import TOY_SPEC

SPEC = TOY_SPEC  # a (5), b (3), c (4); 3 classes
MODS = SPEC.modalities
MODEL = ModelConfig(hidden=5, feature_dim=4, dropout=0.0)
PRESENT = np.concatenate([ALL_PATTERNS_3, np.ones((1, 3), bool)])
LATENT, K, PROBE_LR = 2, 4, 0.5  # K != M = 3: a K for an M is seen
sg = jax.lax.stop_gradient


def experts(P, x):
    """Every modality's Laplace expert: ``[a_m, r_m] = W_m E_m(x_m) + c_m``, scale
    ``L softmax(r_m) + 1e-6``."""
    out = {m: dense(P["experts"][m], mlp_encoder(P["encoders"][m], x[m])) for m in MODS}
    return {m: (o[:, :LATENT], LATENT * jax.nn.softmax(o[:, LATENT:], -1) + 1e-6)
            for m, o in out.items()}


def log_laplace(z, loc, scale):
    """``sum_l log Laplace(z_l; loc_l, scale_l)``."""
    return jnp.sum(-jnp.log(2 * scale) - jnp.abs(z - loc) / scale)


def samples(P, x, eps):
    """``z[m, k, b] = a_m(b) + b_m(b) eps[m, k, b]``, every stratum."""
    e = experts(P, x)
    return jnp.stack([e[m][0][None] + e[m][1][None] * eps[c] for c, m in enumerate(MODS)])


def log_w(P_gen, expert, x, z, present):
    """``log w`` of one sample ``z`` of one datum (section 3's importance weight): ``expert``
    and ``x`` that datum's, ``present`` its bool mask, not empty."""
    prior = LATENT * jax.nn.softmax(P_gen["prior_logits"])
    lik = sum(jnp.where(present[c], -0.5 * jnp.sum(
        (x[m] - mlp_head(P_gen["decoders"][m], z[None])[0]) ** 2), 0.0)
        for c, m in enumerate(MODS))
    log_q = jnp.stack([jnp.where(present[c], log_laplace(z, *expert[m]), -jnp.inf)
                       for c, m in enumerate(MODS)])
    return (log_laplace(z, 0.0, prior) + lik
            - (jax.scipy.special.logsumexp(log_q) - jnp.log(present.sum())))


def all_log_w(P_gen, expert, x, z, present):
    """``log w [M, K, B]`` (0 where the stratum's modality or every modality is missing)."""
    safe = np.where(present.any(1, keepdims=True), present, True)
    one = lambda z, e, x, p: log_w(P_gen, e, x, z, p)  # noqa: E731
    per_b = jax.vmap(one, in_axes=(0, 0, 0, 0))  # over the data
    lw = jax.vmap(jax.vmap(per_b, in_axes=(0, None, None, None)),  # over k, then strata
                  in_axes=(0, None, None, None))(z, expert, x, jnp.asarray(safe))
    return jnp.where(present.T[:, None, :], lw, 0.0)


def stratum_weights(present):
    """``1 / (|S_b| N)`` on each present stratum, N the samples with a modality, ``[M, 1, B]``."""
    n = present.any(1).sum()
    return np.where(present.T, 1.0 / np.maximum(present.sum(1), 1) / n, 0.0)[:, None, :]


def bound_loss(P, x, eps, present):
    """``-mean_b (1/|S_b|) sum_{m in S_b} log (1/K) sum_k w``: the IWAE-MoE objective."""
    lw = all_log_w(P, experts(P, x), x, samples(P, x, eps), present)
    per = jax.scipy.special.logsumexp(lw, axis=1, keepdims=True) - math.log(K)
    return -(per * stratum_weights(present)).sum()


def dreg_grads(P, x, eps, present):
    """Tucker et al.'s DReG gradient of ``bound_loss`` by the chain rule (see the docstring)."""
    expert, z = experts(P, x), samples(P, x, eps)
    held = jax.tree.map(sg, expert)
    lw = all_log_w(P, held, x, z, present)
    w = jax.nn.softmax(lw, axis=1) * present.T[:, None, :]  # w~ over k, [M, K, B]
    c = -stratum_weights(present)
    generative = jax.grad(lambda Pg: (c * sg(w) * all_log_w(Pg, held, x, sg(z), present)).sum()
                          )(P)
    gz = jax.grad(lambda zz: (c * sg(w) ** 2 * all_log_w(sg_tree(P), held, x, zz, present)
                              ).sum())(z)
    _, pullback = jax.vjp(lambda Pe: samples(Pe, x, eps), P)
    (encoder,) = pullback(gz)
    return jax.tree.map(jnp.add, generative, encoder)


def sg_tree(tree):
    return jax.tree.map(sg, tree)


def _setup(estimator="dreg", learn_prior=True, steps=4):
    mc = MmvaeConfig(latent_dim=LATENT, decoder_hidden=5, vae_steps=2, num_particles=K,
                     estimator=estimator, learn_prior=learn_prior, probe_lr=PROBE_LR)
    config = ExperimentConfig(method=mc, model=MODEL, optim=sgd(),
                              train=TrainConfig(steps=steps))
    method = methods.make(config, SPEC)
    batch = make_batch(jax.random.key(0), SPEC, PRESENT)
    state = method.init(jax.random.key(1), batch)
    # Jittered: the prior's logits start at 0 (equal scales), which would hide a swapped axis.
    state = state.replace(params=to_f64(jitter(state.params, jax.random.key(2), 0.3)))
    return method, batch, state


def _vae_eps(state):
    """The step's Laplace noise from its "eps" key (keys: subsets, eps, dropout)."""
    return jax.random.laplace(step_keys(state, 3)[1], (3, K, len(PRESENT), LATENT),
                              jnp.float64)


@pytest.mark.parametrize("estimator", ["dreg", "iwae"])
def test_phase_one_loss_and_gradient_equal_the_reference(estimator):
    with jax.enable_x64(True):
        method, batch, state = _setup(estimator)
        vae, probe = method.phases
        assert (vae.name, vae.steps, probe.name, probe.steps) == ("vae", 2, "probe", None)
        new, metrics, grads = run_step(vae.step, state, batch)
        x, eps = batch["inputs"], _vae_eps(state)
        P = pure(state.params)
        loss, iwae_grads = value_and_grad(lambda P: bound_loss(P["vae"], x, eps, PRESENT), P)
        assert_close(metrics["loss"], loss)
        assert_close(metrics["loss_iwae"], loss)
        if estimator == "iwae":
            want = iwae_grads
        else:
            want = {"vae": dreg_grads(P["vae"], x, eps, PRESENT),
                    "probe": jax.tree.map(jnp.zeros_like, P["probe"])}
            # DReG is a different estimator: it must not equal the bound's own gradient.
            enc = np.asarray(want["vae"]["experts"]["a"]["kernel"])
            assert not np.allclose(enc, iwae_grads["vae"]["experts"]["a"]["kernel"], rtol=1e-3)
        assert_tree_close(grads, want)  # the probe gets nothing
        assert [int(c) for c in jax.tree.leaves(new.opt_state)] == [0, 1]  # probe, vae


def test_a_held_prior_gets_no_gradient():
    with jax.enable_x64(True):
        method, batch, state = _setup(learn_prior=False)
        _, _, grads = run_step(method.phases[0].step, state, batch)
        assert float(jnp.abs(pure(grads)["vae"]["prior_logits"]).max()) == 0.0
        _, _, learned = run_step(_setup()[0].phases[0].step, state, batch)
        assert float(jnp.abs(pure(learned)["vae"]["prior_logits"]).max()) > 1e-3


def mixture_mean(P, x, present):
    """The probe's input: the mean of the present experts' locations (0 with none)."""
    e = experts(P, x)
    total = sum(e[m][0] * present[:, c, None] for c, m in enumerate(MODS))
    return total / np.maximum(present.sum(1, keepdims=True), 1)


def test_the_probe_step_and_predict_equal_the_reference():
    with jax.enable_x64(True):
        method, batch, state = _setup()
        at = state.replace(step=jnp.asarray(2, jnp.int32))
        new, metrics, grads = run_step(method.phases[1].step, at, batch, lr=PROBE_LR)
        x = batch["inputs"]

        def probe_loss(P):
            mean = sg(mixture_mean(P["vae"], x, PRESENT))
            logits = mean @ P["probe"]["w"] + P["probe"]["b"][None]
            return masked_mean(cross_entropy(logits, batch["label"]), PRESENT.any(1))

        loss, want = value_and_grad(probe_loss, pure(at.params))
        assert_close(metrics["loss"], loss)
        assert_tree_close(grads, want)  # the VAE gets nothing
        assert [int(c) for c in jax.tree.leaves(new.opt_state)] == [1, 0]
        P = pure(state.params)
        mean = mixture_mean(P["vae"], x, PRESENT)
        np.testing.assert_allclose(method.predict(state, batch),
                                   mean @ P["probe"]["w"] + P["probe"]["b"][None], rtol=1e-6)
