"""MMVAE's parts: the Laplace densities and scales, the mixture over the present experts, the
stratified bound, what a missing modality may change (nothing), one program per phase for every
mask, and its settings. The whole objective and its DReG gradient: tests/test_objective_mmvae.py."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data import missing
from mmjax.errors import UserError
from mmjax.methods import mmvae
from mmjax.methods.mmvae import MmvaeConfig
from toy import TOY_SPEC, assert_one_program_per_phase, random_batch


def _config(vae_steps=2, steps=4, **kwargs):
    mc = MmvaeConfig(vae_steps=vae_steps, latent_dim=3, decoder_hidden=6, num_particles=2,
                     **kwargs)
    return ExperimentConfig(method=mc, model=ModelConfig(hidden=8, feature_dim=4, dropout=0.0),
                            optim=OptimConfig(lr=1e-2), train=TrainConfig(steps=steps))


def test_laplace_log_prob_equals_scipy(key):
    z, loc = jax.random.normal(key, (2, 4, 3)), jax.random.normal(jax.random.key(1), (2, 4, 3))
    scale = jnp.exp(jax.random.normal(jax.random.key(2), (2, 4, 3)))
    want = stats.laplace.logpdf(np.asarray(z), np.asarray(loc), np.asarray(scale)).sum(-1)
    np.testing.assert_allclose(mmvae.laplace_log_prob(z, loc, scale), want, rtol=1e-5)


def test_the_scales_sum_to_the_latent_size(key):
    raw = jax.random.normal(key, (5, 7))
    scale = mmvae.sum_to_size_scale(raw)
    np.testing.assert_allclose(scale.sum(-1), 7.0, rtol=1e-6)
    np.testing.assert_allclose(scale[0] / scale[0, 0], jnp.exp(raw[0] - raw[0, 0]), rtol=1e-5)


def _log_weight_inputs(key, present):
    """Random samples, reconstructions, inputs and experts for ``log_weights``: M = 2, K = 3,
    B = len(present), L = 2; modality shapes (3,) and (2,)."""
    ks = jax.random.split(key, 8)
    b = len(present)
    z = jax.random.normal(ks[0], (2, 3, b, 2))
    recon = {"a": jax.random.normal(ks[1], (2, 3, b, 3)),
             "b": jax.random.normal(ks[2], (2, 3, b, 2))}
    inputs = {"a": jax.random.normal(ks[3], (b, 3)), "b": jax.random.normal(ks[4], (b, 2))}
    loc = jax.random.normal(ks[5], (b, 2, 2))
    scale = jnp.exp(jax.random.normal(ks[6], (b, 2, 2)))
    prior = jnp.exp(jax.random.normal(ks[7], (2,)))
    return z, recon, inputs, loc, scale, prior


def test_log_weights_by_hand(key):
    """Both present: log q = log((q_a + q_b) / 2); one present: its expert alone; the likelihood
    counts the present modalities only."""
    present = np.array([[1, 1], [1, 0], [0, 1]], np.float32)
    z, recon, inputs, loc, scale, prior = _log_weight_inputs(key, present)
    got = mmvae.log_weights(z, recon, inputs, jnp.asarray(present), loc, scale, prior)
    lap = lambda v, m, s: stats.laplace.logpdf(v, m, s).sum()  # noqa: E731
    for m in range(2):
        for k in range(3):
            for b in range(3):
                zz = np.asarray(z[m, k, b])
                S = [d for d in range(2) if present[b, d]]
                q = np.mean([np.exp(lap(zz, loc[b, d], scale[b, d])) for d in S])
                lik = sum(-0.5 * ((np.asarray(recon[n][m, k, b]) - inputs[n][b]) ** 2).sum()
                          for d, n in enumerate("ab") if d in S)
                want = lap(zz, 0.0, prior) + lik - np.log(q)
                np.testing.assert_allclose(got[m, k, b], want, rtol=1e-5)


def test_the_stratified_bound_by_hand():
    """(1 / |S|) sum_{m in S} log (1 / K) sum_k w; a missing stratum does not count. Stratum 0's
    K = 3 weights are (1, 2, 6), stratum 1's (3, 4, 5), in both samples; sample 1 lacks
    modality 0."""
    w = jnp.array([[1.0, 2.0, 6.0], [3.0, 4.0, 5.0]])  # [M, K]
    log_w = jnp.log(jnp.broadcast_to(w[..., None], (2, 3, 2)))  # [M, K, B]
    present = jnp.array([[1.0, 1.0], [0.0, 1.0]])
    got = mmvae.stratified_bound(log_w, present)
    both = 0.5 * (math.log((1 + 2 + 6) / 3) + math.log((3 + 4 + 5) / 3))
    np.testing.assert_allclose(got, [both, math.log((3 + 4 + 5) / 3)], rtol=1e-6)


def _vae_loss_and_grads(method, state, batch):
    """Phase 1's loss and gradients (SGD at lr 1: the parameter change)."""
    new, metrics = jax.jit(method.phases[0].step)(state, batch)
    grads = jax.tree.map(lambda a, b: a - b, state.params, new.params)
    return float(metrics["loss"]), grads


def test_a_missing_modality_changes_nothing(key):
    """The inputs of a modality where it is missing, and every input of a sample without any,
    leave the loss and its gradient exactly as they were; the prediction too."""
    config = _config(steps=4)
    config = dataclasses.replace(config, optim=OptimConfig(name="sgd", lr=1.0, momentum=0.0))
    method = methods.make(config, TOY_SPEC)
    batch = random_batch(key, n=6)
    present = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0], [0, 0, 1]], bool)
    batch = {**batch, "present": jnp.asarray(present)}
    state = method.init(jax.random.key(3), batch)
    loss, grads = _vae_loss_and_grads(method, state, batch)
    assert np.isfinite(loss)
    noisy = {m: jnp.where(jnp.asarray(present[:, c])[:, None], x, 1e3)
             for c, (m, x) in enumerate(batch["inputs"].items())}
    changed = {**batch, "inputs": noisy}
    loss2, grads2 = _vae_loss_and_grads(method, state, changed)
    assert loss2 == loss
    jax.tree.map(np.testing.assert_array_equal, grads2, grads)
    np.testing.assert_array_equal(method.predict(state, changed), method.predict(state, batch))


def test_phase_one_trains_with_dropout_and_predict_runs_without(key):
    """With dropout the phase-1 loss changes (the encoders train in training mode); the
    prediction equals the one without dropout (inference mode). Dropout has no parameters, so
    both configs share one state."""
    batch = random_batch(key, n=6)
    made = {}
    for rate in (0.0, 0.5):
        config = _config()
        config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                        dropout=rate))
        made[rate] = methods.make(config, TOY_SPEC)
    state = made[0.0].init(jax.random.key(1), batch)
    losses = {r: float(jax.jit(m.phases[0].step)(state, batch)[1]["loss"])
              for r, m in made.items()}
    assert abs(losses[0.5] - losses[0.0]) > 1e-3 * abs(losses[0.0]), losses
    np.testing.assert_array_equal(made[0.5].predict(state, batch),
                                  made[0.0].predict(state, batch))


def test_one_program_per_phase_for_every_mask():
    config = _config(steps=4)
    assert_one_program_per_phase(methods.make(config, TOY_SPEC), config.train.steps,
                                 random_batch(jax.random.key(0)),
                                 missing.all_subsets(TOY_SPEC.modalities)[1][:4],
                                 ["vae", "probe"])


def test_training_raises_the_bound(key):
    """Thirty Adam steps on one batch raise the bound (lower the loss) by a clear margin."""
    config = dataclasses.replace(_config(vae_steps=30, steps=31), optim=OptimConfig(lr=3e-3))
    method = methods.make(config, TOY_SPEC)
    batch = random_batch(key, n=16)
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.phases[0].step)
    losses = []
    for _ in range(30):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 1.0, losses


def test_bad_settings_fail_with_one_line():
    with pytest.raises(UserError, match="vae_steps"):
        methods.make(_config(vae_steps=5, steps=4), TOY_SPEC)
    with pytest.raises(UserError, match="estimator"):
        methods.make(_config(estimator="elbo"), TOY_SPEC)
