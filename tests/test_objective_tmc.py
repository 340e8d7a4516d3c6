"""Whole-objective tests of TMC and ETMC (issue 21): one training step's loss and its gradient
with respect to every parameter group equal an independent float64 reference, at two points of
the KL annealing.

Han et al., "Trusted Multi-View Classification", ICLR 2021: section 3.1 evidence e = softplus(g(x)),
Dirichlet alpha = e + 1, opinion b_k = e_k / S, u = K / S; Definition 3.1 the reduced
Dempster-Shafer combination (conflict C = sum_{i != j} b1_i b2_j, b = (b1 b2 + b1 u2 + b2 u1) /
(1 - C), u = u1 u2 / (1 - C)); section 3.3 the adjusted cross-entropy
L_ace = sum_k y_k (psi(S) - psi(alpha_k)) plus lambda_t KL(Dir(alpha~) || Dir(1)),
alpha~ = y + (1 - y) alpha, lambda_t = min(1, t / annealing steps); the total sums every view's
loss and the fused opinion's. ETMC (Han et al. TPAMI 2022) adds a pseudo-view whose evidence comes
from the concatenated features. A missing modality's view is left out of the combination (the
reference folds only the present views, sample by sample) and of its own loss.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.methods.tmc import EtmcConfig, TmcConfig
from objective_check import (ALL_PATTERNS_3, assert_close, assert_tree_close, make_batch,
                             masked_mean, mlp_encoder, mlp_head, pure, run_step, sgd, to_f64,
                             value_and_grad)
from toy import TOY_SPEC

SPEC = TOY_SPEC  # a (5), b (3), c (4); K = 3 classes
MODS = SPEC.modalities
K = SPEC.num_classes
MODEL = ModelConfig(hidden=5, feature_dim=4, dropout=0.0)
STEPS = 40  # annealing_steps 0: a tenth of the run, 4 steps
PRESENT = np.concatenate([ALL_PATTERNS_3, np.ones((1, 3), bool)])
digamma, gammaln = jax.scipy.special.digamma, jax.scipy.special.gammaln
# The step casts the evidence logits to float32 (``EvidenceNet``: ``softplus(...astype(float32))``),
# so Dempster's rule and the digamma / log-gamma loss run in float32: measured agreement ~1e-6
# (1.05e-6 on one gradient leaf), hence 1e-5 here instead of objective_check.RTOL.
RTOL = 1e-5


def dempster(alpha1, alpha2):
    """Definition 3.1 on two batches of Dirichlets ``[B, K]``, back to a Dirichlet:
    S = K / u, alpha = b S + 1."""
    s1, s2 = alpha1.sum(1, keepdims=True), alpha2.sum(1, keepdims=True)
    b1, u1, b2, u2 = (alpha1 - 1.0) / s1, K / s1, (alpha2 - 1.0) / s2, K / s2
    outer = b1[:, :, None] * b2[:, None, :]
    conflict = (outer.sum((1, 2)) - jnp.trace(outer, axis1=1, axis2=2))[:, None]  # i != j
    b = (b1 * b2 + b1 * u2 + b2 * u1) / (1.0 - conflict)
    u = u1 * u2 / (1.0 - conflict)
    return b * (K / u) + 1.0


def evidential_loss(alpha, label, lam):
    """Section 3.3 per sample: L_ace + lambda KL(Dir(alpha~) || Dir(1)) with
    KL = log Gamma(S~) - log Gamma(K) - sum_k log Gamma(alpha~_k)
         + sum_k (alpha~_k - 1)(psi(alpha~_k) - psi(S~))."""
    y = jax.nn.one_hot(label, K, dtype=alpha.dtype)
    ace = digamma(alpha.sum(1)) - (y * digamma(alpha)).sum(1)
    a = y + (1.0 - y) * alpha
    s = a.sum(1)
    kl = (gammaln(s) - gammaln(float(K)) - gammaln(a).sum(1)
          + ((a - 1.0) * (digamma(a) - digamma(s)[:, None])).sum(1))
    return ace + lam * kl


def objective(P, batch, pseudo_view, lam):
    x, present, y = batch["inputs"], np.asarray(batch["present"]), batch["label"]
    feats = {m: mlp_encoder(P["encoders"][m], x[m]) for m in MODS}
    logits = [mlp_head(P["heads"][m], feats[m]) for m in MODS]
    views = present
    if pseudo_view:
        masked = jnp.concatenate([feats[m] * present[:, c, None] for c, m in enumerate(MODS)], -1)
        logits.append(mlp_head(P["pseudo"], masked))
        views = np.concatenate([present, present.any(1, keepdims=True)], 1)
    alphas = [jax.nn.softplus(z) + 1.0 for z in logits]
    total = sum(masked_mean(evidential_loss(a, y, lam), views[:, v])
                for v, a in enumerate(alphas))
    # Fold the present views only: a sample's first present view starts its opinion, each later
    # one is combined into it, absent views are skipped (no vacuous-opinion trick).
    fused, started = jnp.ones_like(alphas[0]), np.zeros(present.shape[0], bool)
    for v, alpha in enumerate(alphas):
        here = views[:, v]
        fused = jnp.where((here & started)[:, None], dempster(fused, alpha),
                          jnp.where((here & ~started)[:, None], alpha, fused))
        started = started | here
    return total + masked_mean(evidential_loss(fused, y, lam), present.any(1))


@pytest.mark.slow
@pytest.mark.parametrize("method_config", [TmcConfig(), EtmcConfig()], ids=["tmc", "etmc"])
def test_one_step_loss_and_gradient_equal_the_reference(method_config):
    with jax.enable_x64(True):
        config = ExperimentConfig(method=method_config, model=MODEL, optim=sgd(),
                                  train=TrainConfig(steps=STEPS))
        method = methods.make(config, SPEC)
        batch = make_batch(jax.random.key(0), SPEC, PRESENT)
        state = method.init(jax.random.key(1), batch)
        state = state.replace(params=to_f64(state.params))
        for t, lam in ((2, 0.5), (6, 1.0)):  # lambda_t = min(1, t / 4)
            at = state.replace(step=jnp.asarray(t, jnp.int32))
            _, metrics, grads = run_step(method.train_step, at, batch)
            loss, want = value_and_grad(objective, pure(at.params), batch,
                                        method_config.pseudo_view, lam)
            np.testing.assert_allclose(float(metrics["kl_weight"]), lam, rtol=1e-7)
            assert_close(metrics["loss"], loss, RTOL)
            assert_tree_close(grads, want, RTOL)
