"""Bilinear gated fusion: the sigmoid gate rule and how a missing modality enters it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.methods import gated
from mmjax.methods.gated import GatedConfig

from toy import TOY_SPEC, random_batch

SPEC = TOY_SPEC


def _config(gate=""):
    return ExperimentConfig(method=GatedConfig(gate=gate),
                            model=ModelConfig(hidden=8, feature_dim=4),
                            optim=OptimConfig(lr=1e-2), train=TrainConfig(steps=5))


def _batch(key, n=6):
    return random_batch(key, n=n)


def _module(state, gate):
    net = gated.GatedNet(SPEC, _config().model, gate=gate, rngs=nnx.Rngs(0))
    return nnx.merge(nnx.split(net, nnx.Param, ...)[0], state.params, state.model_state)


def _dense(layer, x):
    return np.asarray(x) @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...])


def test_gate_rule_by_hand():
    h, g = jnp.array([[2.0, -4.0]]), jnp.array([[0.0, np.log(3.0)]])  # sigmoid: 1/2 and 3/4
    np.testing.assert_allclose(gated.gated(h, g), [[1.0, -3.0]], rtol=1e-6)


@pytest.mark.parametrize("gate", ["a", "c"])
@pytest.mark.parametrize("missing", [None, "a", "b"])
def test_output_is_sigmoid_gate_times_hidden_states(key, gate, missing):
    """out = head([sigmoid(h_g) * h_m for m != g]), h_m = p_m (W_m E_m(x_m) + b_m)."""
    method = methods.make(_config(gate), SPEC)
    batch = _batch(key)
    if missing is not None:
        batch["present"] = batch["present"].at[1::2, SPEC.modalities.index(missing)].set(False)
    state = method.init(jax.random.key(2), batch)
    module = _module(state, gate)
    present = np.asarray(batch["present"], np.float32)
    h = {m: _dense(module.project[m], module.encoders[m](batch["inputs"][m], deterministic=True))
         * present[:, [c]] for c, m in enumerate(SPEC.modalities)}
    weight = 1.0 / (1.0 + np.exp(-h[gate]))
    if missing == gate:
        np.testing.assert_allclose(weight[1::2], 0.5)  # a missing gate modality: gate = 1/2
    fused = np.concatenate([weight * h[m] for m in SPEC.modalities if m != gate], -1)
    expected = module.head(jnp.asarray(fused), deterministic=True)
    np.testing.assert_allclose(method.predict(state, batch), expected, rtol=1e-5, atol=1e-5)


def test_a_missing_input_never_changes_the_output(key):
    method = methods.make(_config(), SPEC)
    batch = _batch(key)
    batch["present"] = batch["present"].at[:, 1].set(False).at[:, 2].set(False)
    state = method.init(jax.random.key(1), batch)
    other = {**batch, "inputs": {**batch["inputs"], "b": batch["inputs"]["b"] * 3.0,
                                 "c": batch["inputs"]["c"] + 1.0}}
    np.testing.assert_array_equal(method.predict(state, batch), method.predict(state, other))


def test_training_lowers_the_loss(key):
    method = methods.make(_config(), SPEC)
    batch = _batch(key)
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    state, first = step(state, batch)
    for _ in range(4):
        state, metrics = step(state, batch)
    assert metrics["loss"] < first["loss"]
