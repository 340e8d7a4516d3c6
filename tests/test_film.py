"""FiLM fusion: the gamma/beta modulation closed form and how a missing modality enters it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.errors import UserError
from mmjax.methods import film
from mmjax.methods.film import FilmConfig

from toy import TOY_SPEC, random_batch

SPEC = TOY_SPEC


def _config(condition="c"):
    return ExperimentConfig(method=FilmConfig(condition=condition),
                            model=ModelConfig(hidden=8, feature_dim=4),
                            optim=OptimConfig(lr=1e-2), train=TrainConfig(steps=5))


def _batch(key, n=6):
    return random_batch(key, n=n)


def _module(state, condition="c"):
    graphdef = film.FilmNet(SPEC, _config().model, condition=condition, rngs=nnx.Rngs(0))
    graphdef = nnx.split(graphdef, nnx.Param, ...)[0]
    return nnx.merge(graphdef, state.params, state.model_state)


def _dense(layer, x):
    return np.asarray(x) @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])


def _expected(module, batch):
    """gamma * h_m + beta (Perez et al. Eq. 3) for m in (a, b), by hand from the parameters."""
    present = np.asarray(batch["present"], np.float32)
    f = {m: np.asarray(module.encoders[m](batch["inputs"][m], deterministic=True)) * present[:, [c]]
         for c, m in enumerate(SPEC.modalities)}
    d = f["c"].shape[1]
    gb = _dense(module.film, f["c"])
    gamma, beta = gb[:, :d], gb[:, d:]
    z = [gamma * (_dense(module.project[m], f[m]) * present[:, [c]]) + beta
         for c, m in enumerate(("a", "b"))]
    fused = np.concatenate(z, -1)
    return np.asarray(module.head(jnp.asarray(fused), deterministic=True)), gamma, beta


def test_film_rule_is_gamma_times_features_plus_beta():
    h, g, b = jnp.array([[1.0, -2.0]]), jnp.array([[3.0, 0.5]]), jnp.array([[0.1, 0.2]])
    np.testing.assert_allclose(film.film(h, g, b), [[3.1, -0.8]], rtol=1e-6)


@pytest.mark.parametrize("missing", [None, "a", "c"])
def test_output_is_the_film_closed_form_with_missing_features_zeroed(key, missing):
    method = methods.make(_config(), SPEC)
    batch = _batch(key)
    if missing is not None:
        batch["present"] = batch["present"].at[::2, SPEC.modalities.index(missing)].set(False)
    state = method.init(jax.random.key(1), batch)
    module = _module(state)
    expected, gamma, beta = _expected(module, batch)
    np.testing.assert_allclose(method.predict(state, batch), expected, rtol=1e-5, atol=1e-5)
    if missing == "c":
        # No condition: gamma and beta are the condition encoder's biases on those samples.
        d = gamma.shape[1]
        bias = np.asarray(module.film.bias[...])
        np.testing.assert_allclose(gamma[::2], np.broadcast_to(bias[:d], gamma[::2].shape),
                                   rtol=1e-6)
        np.testing.assert_allclose(beta[::2], np.broadcast_to(bias[d:], beta[::2].shape),
                                   rtol=1e-6)


def test_a_missing_input_never_changes_the_output(key):
    method = methods.make(_config(), SPEC)
    batch = _batch(key)
    batch["present"] = batch["present"].at[:, 0].set(False).at[:, 2].set(False)
    state = method.init(jax.random.key(1), batch)
    other = {**batch, "inputs": {**batch["inputs"], "a": batch["inputs"]["a"] + 5.0,
                                 "c": -batch["inputs"]["c"]}}
    np.testing.assert_array_equal(method.predict(state, batch), method.predict(state, other))


def test_condition_defaults_to_the_last_modality_and_is_checked():
    assert film.pick_modality("", SPEC, "method.condition") == "c"
    with pytest.raises(UserError, match="method.condition 'x'"):
        methods.make(_config(condition="x"), SPEC)


def test_training_lowers_the_loss(key):
    method = methods.make(_config(), SPEC)
    batch = _batch(key)
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    first = None
    for _ in range(5):
        state, metrics = step(state, batch)
        first = metrics["loss"] if first is None else first
    assert metrics["loss"] < first
