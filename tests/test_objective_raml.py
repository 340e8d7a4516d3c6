"""RAML's whole training step against an independent float64 reference of Algorithm 1.

Chen et al. (papers/001), section III-B and Algorithm 1. The reference redoes, from the
parameters: the Gaussian unimodal encoders (eq. 1: mu_m, log sigma_m^2 heads on the MLP
features), each sample under every non-empty missing pattern S (delta = present & S, a dropped
modality carrying its zero-filled input's encoding), the precision-weighted fusion of eq. 4
(w_m = delta_m (1/sigma_m^2) / sum_k delta_k / sigma_k^2), L^M (eq. 5), L^U with reparameterised
samples h_m = mu_m + rho sigma_m through the shared predictor (eq. 2; every modality, a dropped
one as its zero input's sample), L^D with weights over all modalities (eq. 3), and
L = L^M + lambda_1 L^U + lambda_2 L^D (eq. 6) averaged over the (sample, pattern) pairs with a
non-empty delta. The log-variances are moved well away from 0 (sigma about 0.6), so sigma and
sigma^2 differ and the samples differ from the means.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.methods.raml import RamlConfig
from objective_ref import (assert_close, assert_trees_close, cross_entropy, jitter, linear,
                           masked_mean, mlp_encoder, pure, sgd, sgd_gradient, step_key, to64)
from toy import TOY_SPEC

MODS = TOY_SPEC.modalities
M = len(MODS)
LR, LAMBDA_U, LAMBDA_D = 0.1, 0.7, 0.3
# Every masking rule: complete rows, each modality missing, each alone, an empty row.
PRESENT = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1],
                    [0, 0, 0], [1, 1, 1]], bool)
PATTERNS = np.array([s for s in itertools.product((0, 1), repeat=M) if any(s)], bool)


def _encode(p, x, m):
    """Eq. 1: ``(mu, log sigma^2)`` of modality m's input x."""
    f = mlp_encoder(p["encoders"][m], x)
    return linear(p["mu_heads"][m], f), linear(p["logvar_heads"][m], f)


def _precision_weights(logvar, mask):
    """(1/sigma_m^2) / sum_{k in mask} 1/sigma_k^2 over the modality axis -2; 0 outside mask."""
    prec = jnp.exp(-logvar) * mask[..., None]
    total = prec.sum(-2, keepdims=True)
    return prec / jnp.where(total > 0, total, 1.0)  # an empty mask: weights 0, gradient 0


def _loss(p, batch, rho, rho0, patterns):
    """Eq. 6 over every (sample, pattern) pair with a non-empty delta; ``(L, parts)``."""
    x, present, y = batch["inputs"], batch["present"], batch["label"]
    enc = [_encode(p, x[m], m) for m in MODS]
    enc0 = [_encode(p, jnp.zeros((1, *x[m].shape[1:])), m) for m in MODS]
    mu, logvar = (jnp.stack([e[i] for e in enc], 1) for i in (0, 1))  # [B, M, D]
    mu0, logvar0 = (jnp.concatenate([e[i] for e in enc0], 0) for i in (0, 1))  # [M, D]
    f = lambda h: linear(p["predictors"]["shared"], h)  # noqa: E731  (shared f)
    h_m = mu + rho * jnp.exp(0.5 * logvar)  # the reparameterised samples of L^U
    h_0 = mu0[None] + rho0 * jnp.exp(0.5 * logvar0)[None]
    ce = jnp.stack([cross_entropy(f(h_m[:, c]), y) for c in range(M)], -1)  # [B, M]
    ce0 = jnp.stack([cross_entropy(f(h_0[:, c]), y) for c in range(M)], -1)
    lm_all, lu_all, ld_all, valid_all = [], [], [], []
    for pattern in patterns:
        delta = present & pattern[None]  # [B, M]
        mu_p = jnp.where(delta[..., None], mu, mu0[None])
        lv_p = jnp.where(delta[..., None], logvar, logvar0[None])
        h = (_precision_weights(lv_p, delta) * mu_p).sum(1)  # eq. 4
        lm_all.append(cross_entropy(f(h), y))  # eq. 5
        lu_all.append(jnp.where(delta, ce, ce0).sum(-1))  # eq. 2
        w_all = _precision_weights(lv_p, jnp.ones_like(delta))
        ld_all.append(jnp.abs(w_all * mu_p).sum((1, 2)))  # eq. 3
        valid_all.append(delta.any(-1))
    valid = jnp.concatenate(valid_all)
    lm, lu, ld = (masked_mean(jnp.concatenate(v), valid) for v in (lm_all, lu_all, ld_all))
    own = _precision_weights(logvar, present)  # the batch's own pattern, for the metrics
    weights = [masked_mean(own[:, c].mean(-1), present[:, c]) for c in range(M)]
    return lm + LAMBDA_U * lu + LAMBDA_D * ld, (lm, lu, ld, weights)


@pytest.mark.slow
@pytest.mark.parametrize("augment, patterns", [("all_patterns", PATTERNS),
                                               ("none", np.ones((1, M), bool))])
def test_step_is_algorithm_1_with_reparameterised_unimodal_samples(augment, patterns):
    """The loss, its three terms, the fusion-weight metrics and the gradient of every parameter
    group (encoders, mu and log-variance heads, the shared predictor) to 1e-6 relative; with the
    missing-pattern augmentation (section III-A) and without it (Table IV: the batch's own
    pattern only)."""
    config = ExperimentConfig(
        method=RamlConfig(latent_dim=3, lambda_unimodal=LAMBDA_U, lambda_sparsity=LAMBDA_D,
                          augment=augment),
        model=ModelConfig(hidden=5, feature_dim=4), optim=sgd(LR),
        train=TrainConfig(steps=4, batch_size=len(PRESENT)))
    method = methods.make(config, TOY_SPEC)
    rng = np.random.default_rng(4)
    # Missing entries hold garbage: a missing input must never be read.
    batch = {"inputs": {m: jnp.asarray(rng.normal(size=(len(PRESENT), *s)) * 3.0)
                        for m, s in zip(MODS, TOY_SPEC.shapes)},
             "present": jnp.asarray(PRESENT),
             "label": jnp.asarray(rng.integers(0, 3, len(PRESENT)))}
    with jax.enable_x64(True):
        state = to64(method.init(jax.random.key(0), batch))
        params = jitter(state.params, jax.random.key(6))
        params["logvar_heads"] = jax.tree.map(lambda v: v - 1.0, params["logvar_heads"])
        state, batch = state.replace(params=params), to64(batch)
        new, metrics = jax.jit(method.train_step)(state, batch)
        shape = (len(PRESENT), M, 3)
        rho = jax.random.normal(step_key(state, 1, 4), shape)
        rho0 = jax.random.normal(step_key(state, 2, 4), shape)
        (loss, (lm, lu, ld, weights)), grad = jax.value_and_grad(_loss, has_aux=True)(
            pure(state.params), batch, rho, rho0, patterns)
        assert_close(metrics["loss"], loss, 1e-6, "L (eq. 6)")
        for name, value in (("loss_fused", lm), ("loss_unimodal", lu), ("loss_sparsity", ld)):
            assert_close(metrics[name], value, 1e-6, name)
        for c, m in enumerate(MODS):
            assert_close(metrics[f"weight_{m}"], weights[c], 1e-6, f"weight_{m}")
        assert_trees_close(sgd_gradient(state.params, new.params, LR), grad, 1e-6, "grad")
