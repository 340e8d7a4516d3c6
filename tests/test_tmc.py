"""TMC and ETMC: Dempster's combination of Dirichlet opinions, the evidential loss, missing
views."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.methods import tmc
from mmjax.methods.base import NNXModel
from mmjax.methods.tmc import EtmcConfig, TmcConfig

from toy import TOY_SPEC, random_batch

SPEC = TOY_SPEC


def _config(method, steps=10, dropout=0.0):
    return ExperimentConfig(method=method,
                            model=ModelConfig(hidden=8, feature_dim=4, dropout=dropout),
                            optim=OptimConfig(lr=1e-2), train=TrainConfig(steps=steps))


def _batch(key, n=6):
    return random_batch(key, n=n)


def test_dempster_combination_of_two_opinions_by_hand():
    """alpha1 = (3, 1): b = (1/2, 0), u = 1/2;  alpha2 = (1, 2): b = (0, 1/3), u = 2/3.
    C = 1/2 * 1/3 = 1/6;  b = ((1/2)(2/3), (1/3)(1/2)) / (5/6) = (2/5, 1/5);  u = (1/3)/(5/6) = 2/5;
    S = K / u = 5, e = b S = (2, 1), alpha = (3, 2)."""
    fused = tmc.combine_two(jnp.array([[3.0, 1.0]]), jnp.array([[1.0, 2.0]]))
    np.testing.assert_allclose(fused, [[3.0, 2.0]], rtol=1e-6)
    b, u = tmc.opinion(fused)
    np.testing.assert_allclose(b, [[0.4, 0.2]], rtol=1e-6)
    np.testing.assert_allclose(u, [[0.4]], rtol=1e-6)


def test_combination_is_commutative_and_associative_and_the_vacuous_opinion_is_its_identity(key):
    alphas = 1.0 + jax.random.exponential(key, (4, 3, 5)) * 3.0  # [B, V, K]
    a, b, c = alphas[:, 0], alphas[:, 1], alphas[:, 2]
    np.testing.assert_allclose(tmc.combine_two(a, b), tmc.combine_two(b, a), rtol=1e-5)
    np.testing.assert_allclose(tmc.combine_two(tmc.combine_two(a, b), c),
                               tmc.combine_two(a, tmc.combine_two(b, c)), rtol=1e-5)
    np.testing.assert_allclose(tmc.combine_two(a, jnp.ones_like(a)), a, rtol=1e-6)


def test_a_missing_view_is_excluded_from_the_combination(key):
    alphas = 1.0 + jax.random.exponential(key, (4, 3, 5)) * 3.0
    present = jnp.array([[True, False, True], [False, True, True], [True, True, True],
                         [False, False, False]])
    fused = tmc.combine(alphas, present)
    np.testing.assert_allclose(fused[0], tmc.combine_two(alphas[:1, 0], alphas[:1, 2])[0],
                               rtol=1e-6)
    np.testing.assert_allclose(fused[1], tmc.combine_two(alphas[1:2, 1], alphas[1:2, 2])[0],
                               rtol=1e-6)
    np.testing.assert_allclose(fused[3], np.ones(5))  # nothing present: the vacuous opinion


def test_kl_to_the_uniform_dirichlet_matches_scipy():
    """KL(Dir(a) || Dir(1)) = -H(Dir(a)) - log Gamma(K) (the uniform density is (K-1)!)."""
    alpha = np.array([[2.0, 1.5, 4.0], [1.0, 1.0, 1.0]])
    expected = [-scipy.stats.dirichlet(a).entropy() - scipy.special.gammaln(3) for a in alpha]
    np.testing.assert_allclose(tmc.kl_to_uniform(jnp.asarray(alpha)), expected, rtol=1e-5,
                               atol=1e-5)  # float32 cancellation at KL = 0


def test_evidential_loss_by_hand():
    """L = psi(S) - psi(alpha_y) + lambda KL(Dir(alpha~) || Dir(1)), alpha~ = alpha, alpha_y = 1."""
    alpha = jnp.array([[2.0, 5.0, 3.0]])
    ace = scipy.special.digamma(10.0) - scipy.special.digamma(5.0)
    kl = -scipy.stats.dirichlet([2.0, 1.0, 3.0]).entropy() - scipy.special.gammaln(3)
    np.testing.assert_allclose(tmc.edl_loss(alpha, jnp.array([1]), jnp.asarray(0.0)), [ace],
                               rtol=1e-5)
    np.testing.assert_allclose(tmc.edl_loss(alpha, jnp.array([1]), jnp.asarray(0.5)),
                               [ace + 0.5 * kl], rtol=1e-5)


@pytest.mark.parametrize("config", [TmcConfig(), EtmcConfig()], ids=["tmc", "etmc"])
def test_prediction_fuses_only_the_present_views(key, config):
    method = methods.make(_config(config), SPEC)
    batch = _batch(key)
    batch["present"] = batch["present"].at[:3, 1].set(False).at[4, :2].set(False)
    state = method.init(jax.random.key(1), batch)
    # Every view's Dirichlet, then the fusion by hand over the present views (+ the pseudo-view).
    (_, aux), _ = NNXModel(lambda rngs: tmc.EvidenceNet(
        SPEC, _config(config).model, pseudo_view=config.pseudo_view, rngs=rngs)).apply(
        state.params, state.model_state, batch["inputs"], batch["present"], train=False)
    alphas = np.asarray(aux["alphas"])
    assert alphas.shape[1] == 3 + config.pseudo_view
    out = np.asarray(method.predict(state, batch))
    for i in range(6):
        views = [v for v in range(3) if batch["present"][i, v]] + ([3] if config.pseudo_view
                                                                  else [])
        fused = jnp.asarray(alphas[i:i + 1, views[0]])
        for v in views[1:]:
            fused = tmc.combine_two(fused, jnp.asarray(alphas[i:i + 1, v]))
        np.testing.assert_allclose(out[i], np.log(fused / fused.sum())[0], rtol=1e-5, atol=1e-6)
    # A missing modality's input changes nothing (its opinion and its pseudo-view share are gone).
    other = {**batch, "inputs": {**batch["inputs"], "b": batch["inputs"]["b"] + 7.0}}
    np.testing.assert_array_equal(method.predict(state, other)[:3], out[:3])


@pytest.mark.slow
def test_training_lowers_the_loss_and_anneals_the_kl_weight(key):
    method = methods.make(_config(EtmcConfig(annealing_steps=4)), SPEC)
    batch = _batch(key)
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    weights, losses = [], []
    for _ in range(10):
        state, metrics = step(state, batch)
        weights.append(float(metrics["kl_weight"]))
        losses.append(float(metrics["loss"]))
    np.testing.assert_allclose(weights, [0.0, 0.25, 0.5, 0.75] + [1.0] * 6)
    assert losses[-1] < losses[4]  # compared at the same KL weight


def _kl_weights(config, key, steps_at):
    """The KL weight the train step uses at each step number of ``steps_at`` (one compile)."""
    method = methods.make(config, SPEC)
    batch = _batch(key)
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    return [float(step(state.replace(step=jnp.asarray(t, state.step.dtype)), batch)[1]["kl_weight"])
            for t in steps_at]


def test_default_annealing_is_a_tenth_of_the_run_and_at_least_one_step(key):
    """lambda_t = min(1, t / max(steps // 10, 1)): 40 steps anneal over 4; a 5-step run over 1
    step (not over 0 steps: lambda_0 would be 0 / 0)."""
    np.testing.assert_allclose(_kl_weights(_config(TmcConfig(), steps=40), key, [0, 1, 3, 4, 9]),
                               [0.0, 0.25, 0.75, 1.0, 1.0])
    np.testing.assert_allclose(_kl_weights(_config(TmcConfig(), steps=5), key, [0, 1, 4]),
                               [0.0, 1.0, 1.0])


@pytest.mark.parametrize("config, steps, epoch_steps, at, expected, short_steps", [
    # TMC: a tenth of 100 steps = 10 steps, epochs of 5 counted from 1: (t // 5 + 1) * 5 / 10.
    (TmcConfig(), 100, 5, [0, 4, 5, 99], [0.5, 0.5, 1.0, 1.0], 4),
    # ETMC: a fiftieth of 200 steps = 4 steps, epochs of 2 counted from 0: (t // 2) * 2 / 4.
    (EtmcConfig(), 200, 2, [0, 1, 2, 3, 4, 199], [0.0, 0.0, 0.5, 0.5, 1.0, 1.0], 20)],
    ids=["tmc", "etmc"])
def test_released_preset_anneals_in_epochs_over_the_released_share_of_the_run(
        key, config, steps, epoch_steps, at, expected, short_steps):
    """``released(config, epoch_steps)``: the released code's KL weight, a staircase of epochs,
    lambda = min(1, epoch-start step / annealing steps) (TMC over a tenth of the run counting
    epochs from 1, ETMC over a fiftieth from 0), and Adam's weight decay 1e-5."""
    released = tmc.released(_config(config, steps=steps), epoch_steps=epoch_steps)
    assert released.optim.weight_decay == 1e-5
    np.testing.assert_allclose(_kl_weights(released, key, at), expected, rtol=1e-6)
    # A run shorter than 10 (TMC) or 50 (ETMC) steps anneals over one step (not over 0 steps,
    # which ``make`` would read as "unset": a tenth of the run, 2 of ETMC's 20 steps).
    short = tmc.released(_config(config, steps=short_steps), epoch_steps=1)
    np.testing.assert_allclose(_kl_weights(short, key, [0, 1]), [float(config.name == "tmc"), 1.0])


def test_step_logs_the_fused_uncertainty_and_runs_the_training_forward_pass(key):
    """The logged uncertainty is the batch mean of u = K / S of the fused Dirichlet (dropout 0:
    the training and evaluation forward passes agree); with dropout 0.5 the step's loss depends
    on its dropout key (train=True)."""
    config = _config(TmcConfig())
    method = methods.make(config, SPEC)
    batch = _batch(key)
    batch["present"] = batch["present"].at[:2, 0].set(False)
    state = method.init(jax.random.key(1), batch)
    _, metrics = jax.jit(method.train_step)(state, batch)
    (_, aux), _ = NNXModel(lambda rngs: tmc.EvidenceNet(SPEC, config.model, pseudo_view=False,
                                                           rngs=rngs)).apply(
        state.params, state.model_state, batch["inputs"], batch["present"], train=False)
    fused = np.asarray(aux["fused_alpha"], np.float64)
    np.testing.assert_allclose(float(metrics["uncertainty_fused"]),
                               np.mean(SPEC.num_classes / fused.sum(-1)), rtol=1e-6)
    method = methods.make(_config(TmcConfig(), dropout=0.5), SPEC)
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    assert float(step(state, batch)[1]["loss"]) != float(
        step(state.replace(key=jax.random.key(9)), batch)[1]["loss"])
