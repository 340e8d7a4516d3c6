"""MVAE: the product of Gaussian experts with the prior expert, the sub-sampled ELBO's subsets,
the two phases (ELBO, then a linear probe on the frozen model) and missing experts at test time."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.errors import UserError
from mmjax.methods import mvae
from mmjax.methods.base import Span, schedule, span_at
from mmjax.methods.mvae import MvaeConfig

from toy import TOY_SPEC, random_batch

SPEC = TOY_SPEC


def _config(vae_steps=3, steps=6, **kwargs):
    return ExperimentConfig(method=MvaeConfig(vae_steps=vae_steps, latent_dim=2,
                                              decoder_hidden=8, **kwargs),
                            model=ModelConfig(hidden=8, feature_dim=4),
                            optim=OptimConfig(lr=1e-2), train=TrainConfig(steps=steps))


def _batch(key, n=6):
    return random_batch(key, n=n)


def test_product_of_gaussian_experts_by_hand():
    """Experts N(1, 1) and N(3, 1/2) with the prior N(0, 1): precisions 1 + 1 + 2 = 4,
    mean (0 + 1 + 3 * 2) / 4 = 7/4, variance 1/4. Without the second: mean 1/2, variance 1/2.
    Without both: the prior."""
    mu = jnp.array([[[1.0], [3.0]]] * 3)  # [B=3, M=2, L=1]
    logvar = jnp.log(jnp.array([[[1.0], [0.5]]] * 3))
    mask = jnp.array([[True, True], [True, False], [False, False]])
    out_mu, out_lv = mvae.product_of_experts(mu, logvar, mask)
    np.testing.assert_allclose(out_mu[:, 0], [1.75, 0.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(jnp.exp(out_lv[:, 0]), [0.25, 0.5, 1.0], rtol=1e-6)


def test_product_of_experts_equals_the_normalised_product_of_densities(key):
    """On a grid: prod of the prior and the present experts' densities, normalised, has the
    closed form's mean and variance (one latent dimension, three experts, one missing)."""
    mu = jax.random.normal(key, (1, 3, 1))
    logvar = jax.random.normal(jax.random.key(5), (1, 3, 1)) * 0.5
    mask = jnp.array([[True, False, True]])
    out_mu, out_lv = mvae.product_of_experts(mu, logvar, mask)
    z = np.linspace(-8, 8, 200001)
    log_density = -0.5 * z**2
    for m in (0, 2):
        log_density += -0.5 * (z - float(mu[0, m, 0])) ** 2 / np.exp(float(logvar[0, m, 0]))
    p = np.exp(log_density - log_density.max())
    p /= p.sum()
    mean = (p * z).sum()
    np.testing.assert_allclose(float(out_mu[0, 0]), mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(jnp.exp(out_lv[0, 0])), (p * (z - mean) ** 2).sum(),
                               rtol=1e-4)


def test_gaussian_kl_by_hand():
    """KL(N(1, e) || N(0, 1)) = (e + 1 - 1 - 1) / 2 per dimension; KL(N(0, 1) || N(0, 1)) = 0."""
    np.testing.assert_allclose(mvae.gaussian_kl(jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 0.0]])),
                               [(np.e + 1.0 - 1.0 - 1.0) / 2], rtol=1e-6)


def test_elbo_subsets_are_the_present_set_each_single_modality_and_random_subsets(key):
    present = jnp.array([[True, True, False], [False, True, True], [True, True, True]])
    masks = mvae.elbo_masks(key, present, 4)
    assert masks.shape == (1 + 3 + 4, 3, 3)
    np.testing.assert_array_equal(masks[0], present)
    for m in range(3):
        expected = np.zeros((3, 3), bool)
        expected[:, m] = present[:, m]
        np.testing.assert_array_equal(masks[1 + m], expected)
    assert not (masks & ~present[None]).any()  # never a modality the sample lacks


def test_phase_one_trains_only_the_vae_and_phase_two_only_the_probe(key):
    method = methods.make(_config(vae_steps=2, steps=4), SPEC)
    assert [(p.name, p.steps, p.enter) for p in method.phases] == [("vae", 2, None),
                                                                  ("probe", None, None)]
    assert schedule(method.phases, 4) == (Span(0, 0, 2), Span(1, 2, 4))
    batch = _batch(key)
    steps = [jax.jit(p.step) for p in method.phases]
    states = [method.init(jax.random.key(1), batch)]
    for t in range(4):
        state, metrics = steps[span_at(schedule(method.phases, 4), t).index](states[-1], batch)
        states.append(state)
        assert int(state.step) == t + 1
    keys = set(metrics)
    _, vae_metrics = steps[0](states[0], batch)
    assert set(vae_metrics) == keys  # both phases report the same metrics

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))

    for t in (0, 1):  # phase 1: the VAE moves, the probe does not
        assert not same(states[t].params["vae"], states[t + 1].params["vae"])
        assert same(states[t].params["probe"], states[t + 1].params["probe"])
    for t in (2, 3):  # phase 2: the VAE and its BatchNorm statistics are frozen, the probe moves
        assert same(states[t].params["vae"], states[t + 1].params["vae"])
        assert same(states[t].model_state, states[t + 1].model_state)
        assert not same(states[t].params["probe"], states[t + 1].params["probe"])
        assert same(states[t].opt_state["vae"], states[t + 1].opt_state["vae"])


def test_prediction_is_the_probe_on_the_poe_mean_of_the_present_experts(key):
    method = methods.make(_config(), SPEC)
    batch = _batch(key)
    batch["present"] = batch["present"].at[:3, 0].set(False).at[5].set(False)
    state = method.init(jax.random.key(1), batch)
    out = method.predict(state, batch)
    # The probe is linear: out = mu @ w + b with mu from the present experts only.
    model = mvae.NNXModel(lambda rngs: mvae.MvaeNet(SPEC, _config().model, latent_dim=2,
                                                    decoder_hidden=8, rngs=rngs))
    (mu, _, _), _ = model.apply(state.params["vae"], state.model_state, batch["inputs"],
                                batch["present"][None], train=False)
    probe = state.params["probe"]
    np.testing.assert_allclose(out, mu[0] @ probe["w"] + probe["b"][None], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[5], probe["b"], atol=1e-6)  # nothing present: the prior mean 0
    other = {**batch, "inputs": {**batch["inputs"], "a": batch["inputs"]["a"] * -4.0}}
    np.testing.assert_allclose(method.predict(state, other)[:3], out[:3], rtol=1e-6)


def test_elbo_training_lowers_the_loss(key):
    method = methods.make(_config(vae_steps=30, steps=30, kl_annealing_steps=1), SPEC)
    batch = _batch(key)
    state = method.init(jax.random.key(1), batch)
    assert [p.name for p in method.phases] == ["vae", "probe"]
    step = jax.jit(method.phases[0].step)  # vae_steps = steps: the probe phase never runs
    assert schedule(method.phases, 30) == (Span(0, 0, 30),)
    losses = []
    for _ in range(30):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss_elbo"]))
    assert losses[-1] < 0.8 * losses[1]


def test_bad_phase_lengths_fail_with_one_line():
    with pytest.raises(UserError, match="vae_steps"):
        methods.make(_config(vae_steps=10, steps=5), SPEC)
