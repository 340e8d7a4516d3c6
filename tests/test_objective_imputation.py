"""Whole-objective tests of the imputation baselines (issue 21): autoencoder imputation and MVAE.
Each phase's loss and its gradient with respect to every parameter group equal an independent
float64 reference, and each phase moves only its own parameters and optimiser state.

AE imputation: SMIL's "AE" baseline (Ma et al. AAAI 2021, papers/004, Tables 1-2), as
``mmjax/methods/ae_imputation.py`` specifies it: phase 1 L_ae = mean_{complete} ||AE(x1) - x2||^2
/ dim(x2); phase 2 the concat-fusion CE on x2 imputed by stop_grad(AE(x1)) where x2 is missing.
MVAE: Wu & Goodman, NeurIPS 2018, section 2: the product of Gaussian experts with the prior
expert, mu = sum_m T_m mu_m / (1 + sum_m T_m), var = 1 / (1 + sum_m T_m), T_m = 1 / var_m; the
ELBO with one reparameterised sample z = mu + sqrt(var) eps; the sub-sampled training objective
(the observed set, every single modality, random subsets) with an annealed KL weight beta_t; then
SMIL's linear probe on the frozen PoE mean (papers/004, "Baselines").
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods.ae_imputation import AeImputationConfig
from mmjax.methods.mvae import MvaeConfig
from objective_check import (ALL_PATTERNS_3, assert_close, assert_tree_close, cross_entropy,
                             dense, make_batch, masked_mean, mlp_encoder, mlp_head, pure,
                             run_step, sgd, step_keys, to_f64, value_and_grad)
from toy import TOY_SPEC

MODEL = ModelConfig(hidden=5, feature_dim=4, dropout=0.0)
sg = jax.lax.stop_gradient


def _counts(state):
    """Each optimiser's step count (SGD's only state), in the state's order."""
    return [int(c) for c in jax.tree.leaves(state.opt_state)]


# ----------------------------------------------------------------------------------------------
# AE imputation.
# ----------------------------------------------------------------------------------------------

PAIR = DatasetSpec("toy", ("a", "b"), ((6,), (5,)), "classification", 3)
PAIR_PRESENT = np.array([[1, 1], [1, 1], [1, 0], [1, 0], [0, 1], [0, 0]], bool)


def autoencoder(P, x1):
    """``x1 -> relu(fc1) -> relu(fc2) -> out``."""
    h = jax.nn.relu(dense(P["fc2"], jax.nn.relu(dense(P["fc1"], x1))))
    return dense(P["out"], h)


def ae_objective(P, batch):
    """Phase 1: the per-sample mean squared error of AE(x1) against x2, complete samples."""
    x, present = batch["inputs"], batch["present"]
    per = ((autoencoder(P["ae"], x["a"]) - x["b"]) ** 2).mean(1)
    return masked_mean(per, present.all(1))


def fusion_objective(P, batch):
    """Phase 2: x2 replaced by sg(AE(x1)) where x2 is missing and x1 present, which marks x2
    present; concat fusion ``head([f_1 p_1; f_2 p_2'])``; CE over samples with a modality."""
    x, present = batch["inputs"], np.asarray(batch["present"])
    fill = present[:, 0] & ~present[:, 1]
    x2 = jnp.where(fill[:, None], sg(autoencoder(P["ae"], x["a"])), x["b"])
    p1, p2 = present[:, :1].astype(float), (present[:, :1] | present[:, 1:]).astype(float)
    net = P["net"]
    feats = jnp.concatenate([mlp_encoder(net["encoders"]["a"], x["a"]) * p1,
                             mlp_encoder(net["encoders"]["b"], x2) * p2], -1)
    return masked_mean(cross_entropy(mlp_head(net["head"], feats), batch["label"]),
                       present.any(1))


def test_ae_imputation_phases_equal_the_reference():
    with jax.enable_x64(True):
        config = ExperimentConfig(method=AeImputationConfig(ae_steps=1, ae_hidden=5),
                                  model=MODEL, optim=sgd(), train=TrainConfig(steps=3))
        method = methods.make(config, PAIR)
        first, second = method.phases
        assert (first.name, first.steps, second.name, second.steps) == (
            "autoencoder", 1, "fusion", None)
        batch = make_batch(jax.random.key(0), PAIR, PAIR_PRESENT)
        state = method.init(jax.random.key(1), batch)
        state = state.replace(params=to_f64(state.params))
        s1, m1, grads = run_step(first.step, state, batch)
        loss, want = value_and_grad(ae_objective, pure(state.params), batch)
        assert_close(m1["loss"], loss)
        assert_tree_close(grads, want)  # the fusion model gets nothing
        s2, m2, grads = run_step(second.step, s1, batch)
        loss, want = value_and_grad(fusion_objective, pure(s1.params), batch)
        assert_close(m2["loss"], loss)
        assert_tree_close(grads, want)  # the autoencoder gets nothing (stop-gradient)
        assert [_counts(s) for s in (state, s1, s2)] == [[0, 0], [1, 0], [1, 1]]


# ----------------------------------------------------------------------------------------------
# MVAE.
# ----------------------------------------------------------------------------------------------

SPEC = TOY_SPEC  # a (5), b (3), c (4); 3 classes
MODS = SPEC.modalities
PRESENT = np.concatenate([ALL_PATTERNS_3, np.ones((2, 3), bool)])
LATENT, RANDOM_SUBSETS, KL_WEIGHT, ANNEAL, PROBE_LR = 2, 2, 0.8, 2, 0.5


def experts(P, x):
    """Every modality's Gaussian expert ``[mu_m, log var_m] = W_m E_m(x_m) + b_m``."""
    out = {m: dense(P["experts"][m], mlp_encoder(P["encoders"][m], x[m])) for m in MODS}
    return {m: (o[:, :LATENT], o[:, LATENT:]) for m, o in out.items()}


def poe(expert, subset):
    """Section 2's product of the prior N(0, I) and the experts in ``subset`` (bool [B, M])."""
    precision = [jnp.exp(-expert[m][1]) * subset[:, c, None] for c, m in enumerate(MODS)]
    total = 1.0 + sum(precision)
    mean = sum(p * expert[m][0] for p, m in zip(precision, MODS)) / total
    return mean, 1.0 / total


def subsets(state, present):
    """The sub-sampled ELBO's subsets: the observed set, each single modality, and
    ``RANDOM_SUBSETS`` random halves of the observed set (Bernoulli(1/2) on the "subsets" key;
    keys: subsets, eps, dropout)."""
    present = np.asarray(present)
    singles = [present & np.eye(3, dtype=bool)[m] for m in range(3)]
    coins = np.asarray(jax.random.bernoulli(step_keys(state, 3)[0], 0.5,
                                            (RANDOM_SUBSETS, *present.shape)))
    return [present, *singles, *(present & coins)]


def elbo_objective(P, batch, masks, eps, beta):
    """sum over the subsets S of mean_{S non-empty} [sum_{m in S} 0.5 ||x_m - D_m(z)||^2
    + beta KL(q(z | X_S) || N(0, I))], z = mu_S + sqrt(var_S) eps_S."""
    x = batch["inputs"]
    expert = experts(P["vae"], x)
    total = 0.0
    for t, S in enumerate(masks):
        mean, var = poe(expert, S)
        z = mean + jnp.sqrt(var) * eps[t]
        rec = sum(S[:, c] * 0.5 * ((x[m] - mlp_head(P["vae"]["decoders"][m], z)) ** 2).sum(1)
                  for c, m in enumerate(MODS))
        kl = 0.5 * (var + mean ** 2 - 1.0 - jnp.log(var)).sum(1)
        total = total + masked_mean(rec + beta * kl, S.any(1))
    return total


def probe_objective(P, batch):
    """The linear probe's CE on the frozen (stop-gradient) PoE mean of the present experts,
    over the samples with one."""
    present = np.asarray(batch["present"])
    mean = sg(poe(experts(P["vae"], batch["inputs"]), present)[0])
    logits = mean @ P["probe"]["w"] + P["probe"]["b"][None]
    return masked_mean(cross_entropy(logits, batch["label"]), present.any(1))


@pytest.mark.slow
def test_mvae_elbo_and_probe_steps_equal_the_reference():
    """The ELBO step at t = 1 (beta = 0.8 * 1/2) and t = 5 (beta capped at 0.8) moves the VAE
    only; the probe step (at probe_lr) moves the probe only."""
    with jax.enable_x64(True):
        mc = MvaeConfig(latent_dim=LATENT, decoder_hidden=5, vae_steps=2,
                        num_random_subsets=RANDOM_SUBSETS, kl_weight=KL_WEIGHT,
                        kl_annealing_steps=ANNEAL, probe_lr=PROBE_LR)
        config = ExperimentConfig(method=mc, model=MODEL, optim=sgd(), train=TrainConfig(steps=6))
        method = methods.make(config, SPEC)
        vae, probe = method.phases
        assert (vae.name, vae.steps, probe.name, probe.steps) == ("vae", 2, "probe", None)
        batch = make_batch(jax.random.key(0), SPEC, PRESENT)
        state = method.init(jax.random.key(1), batch)
        state = state.replace(params=to_f64(state.params))
        for t, beta in ((1, 0.4), (5, 0.8)):
            at = state.replace(step=jnp.asarray(t, jnp.int32))
            masks = subsets(at, batch["present"])
            assert any((m != PRESENT).any() and m.any() for m in masks[4:])  # a real subset
            # The reparameterisation noise from the "eps" key; beta_t = kl_weight min(1, t / 2).
            eps = jax.random.normal(step_keys(at, 3)[1], (len(masks), PRESENT.shape[0], LATENT))
            new, metrics, grads = run_step(vae.step, at, batch)
            loss, want = value_and_grad(elbo_objective, pure(at.params), batch, masks, eps,
                                        KL_WEIGHT * min(1.0, t / ANNEAL))
            np.testing.assert_allclose(float(metrics["beta"]), beta, rtol=1e-6)
            assert_close(metrics["loss"], loss)
            assert_tree_close(grads, want)  # the probe gets nothing
            assert _counts(new) == [0, 1]  # opt_state {"probe", "vae"}: only the VAE's moved
        at = state.replace(step=jnp.asarray(2, jnp.int32))
        new, metrics, grads = run_step(probe.step, at, batch, lr=PROBE_LR)
        loss, want = value_and_grad(probe_objective, pure(at.params), batch)
        assert_close(metrics["loss"], loss)
        assert_tree_close(grads, want)  # the VAE gets nothing
        assert _counts(new) == [1, 0]
