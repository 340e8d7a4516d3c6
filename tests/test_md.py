"""MD (Multimodal Dynamics): the true-class probability and its confidence loss, the
confidence-weighted fusion, missing modalities, per-step gates of sequences, the released preset,
and one compiled step for every missing pattern. The whole objective and its gradient:
tests/test_objective_md.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods import md
from mmjax.methods.base import NNXModel
from mmjax.methods.md import MdConfig

from toy import TOY_SPEC, assert_one_program_for_every_mask, random_batch

SPEC = TOY_SPEC


def _config(method=None, steps=10, dropout=0.0, encoders=()):
    return ExperimentConfig(method=method or MdConfig(),
                            model=ModelConfig(hidden=8, feature_dim=4, dropout=dropout,
                                              encoders=encoders),
                            optim=OptimConfig(lr=1e-2), train=TrainConfig(steps=steps))


def test_true_class_probability_and_the_confidence_loss_by_hand():
    """logits (0, log 3) -> softmax (1/4, 3/4): TCP = 3/4 for y = 1, 1/4 for y = 0; the MSE of
    c = 0.5 is 1/16 either way; detached, TCP gets no gradient, released it gets 2 (TCP - c)."""
    logits = jnp.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    tcp = md.true_class_probability(logits, jnp.array([1, 0]))
    np.testing.assert_allclose(tcp, [0.75, 0.25], rtol=1e-6)
    conf = jnp.array([0.5, 0.5])
    for detach, want in ((True, [0.0, 0.0]), (False, [0.5, -0.5])):
        np.testing.assert_allclose(md.confidence_loss(conf, tcp, detach), [1 / 16] * 2,
                                   rtol=1e-6)
        grad = jax.grad(lambda t, d=detach: md.confidence_loss(conf, t, d).sum())(tcp)
        np.testing.assert_allclose(grad, want, rtol=1e-6, atol=1e-7)
    grad_c = jax.grad(lambda c: md.confidence_loss(c, tcp, True).sum())(conf)
    np.testing.assert_allclose(grad_c, [-0.5, 0.5], rtol=1e-6)


def test_fusion_scales_each_modalitys_features_by_its_confidence_and_drops_missing_ones():
    h1 = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    h2 = jnp.array([[5.0], [6.0]])
    conf = jnp.array([[0.5, 2.0], [-1.0, 3.0]])
    present = jnp.array([[True, True], [True, False]])
    np.testing.assert_allclose(md.fuse_features([h1, h2], conf, present),
                               [[0.5, 1.0, 10.0], [-3.0, -4.0, 0.0]])


def test_prediction_ignores_a_missing_modalitys_input_and_reads_its_confidence(key):
    """A missing modality's input changes nothing (its confidence is 0 in the fusion); the same
    change to a present modality's input does change the prediction; and the prediction is the
    fusion head on the confidence-weighted features of the network's own forward pass."""
    method = methods.make(_config(), SPEC)
    batch = random_batch(key, n=6)
    batch["present"] = batch["present"].at[:3, 1].set(False).at[4, :2].set(False)
    state = method.init(jax.random.key(1), batch)
    out = np.asarray(method.predict(state, batch))
    moved = {**batch, "inputs": {**batch["inputs"], "b": batch["inputs"]["b"] + 7.0}}
    changed = np.asarray(method.predict(state, moved))
    np.testing.assert_array_equal(changed[:3], out[:3])
    np.testing.assert_array_equal(changed[4], out[4])
    assert not np.allclose(changed[3], out[3])
    model = NNXModel(lambda rngs: md.MdNet(SPEC, _config().model, rngs=rngs))
    (fused, aux), _ = model.apply(state.params, state.model_state, batch["inputs"],
                                  batch["present"], train=False)
    np.testing.assert_allclose(out, fused, rtol=1e-6)
    assert aux["logits"].shape == (6, 3, 3) and aux["confidence"].shape == (6, 3)
    assert aux["gate_mean"].shape == (6, 3)
    assert np.all((aux["gate_mean"] > 0) & (aux["gate_mean"] < 1))
    # The step logs each modality's mean confidence over the samples that have it (dropout 0:
    # the training forward pass is this one).
    _, metrics = jax.jit(method.train_step)(state, batch)
    for c, m in enumerate(SPEC.modalities):
        here = np.asarray(batch["present"][:, c])
        np.testing.assert_allclose(float(metrics[f"confidence_{m}"]),
                                   np.asarray(aux["confidence"])[here, c].mean(), rtol=1e-5)


def test_step_masks_each_modalitys_terms_and_runs_the_training_forward_pass(key):
    """The logged unimodal CE, confidence MSE and sparsity of modality b average over the
    samples that have it: a sample without b changes none of them when its b input moves.
    With dropout 0.5 the step's loss depends on its dropout key (train=True)."""
    method = methods.make(_config(), SPEC)
    batch = random_batch(key, n=6)
    batch["present"] = batch["present"].at[:2, 1].set(False)
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    _, metrics = step(state, batch)
    moved = {**batch, "inputs": {**batch["inputs"], "b": batch["inputs"]["b"].at[:2].add(5.0)}}
    _, again = step(state, moved)
    for name in ("loss_b", "confidence_loss_b", "sparsity_b", "loss_fused", "loss"):
        np.testing.assert_allclose(float(again[name]), float(metrics[name]), rtol=1e-6)
    method = methods.make(_config(dropout=0.5), SPEC)
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    assert float(step(state, batch)[1]["loss"]) != float(
        step(state.replace(key=jax.random.key(9)), batch)[1]["loss"])


def test_a_padded_sequence_is_gated_per_step():
    """A [T, D] modality with a time axis gets a D x D gate applied at every step; a vector or an
    image gets one over its flattened input."""
    spec = DatasetSpec("toy_seq", ("v", "s"), ((5,), (6, 4)), "classification", 3,
                       time_axes=(None, 1))
    method = methods.make(_config(encoders=("mlp", "mlp")), spec)
    batch = random_batch(jax.random.key(0), spec, n=4)
    state = method.init(jax.random.key(1), batch)
    assert state.params["gates"]["s"]["kernel"].shape == (4, 4)
    assert state.params["gates"]["v"]["kernel"].shape == (5, 5)
    _, metrics = jax.jit(method.train_step)(state, batch)
    assert np.isfinite(float(metrics["loss"]))


def test_training_lowers_the_loss(key):
    method = methods.make(_config(), SPEC)
    batch = random_batch(key)
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    losses = []
    for _ in range(30):
        state, metrics = step(state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.8 * losses[0]


def test_released_preset_and_refusals():
    """``released``: the TCP target not detached, Adam weight decay 1e-4, the rate times 0.2
    every fifth of the run (at least one step); a task without classes is refused."""
    rel = md.released(_config(steps=100))
    assert rel.method.detach_tcp is False and rel.method.sparsity_weight == 1.0
    assert (rel.optim.weight_decay, rel.optim.schedule, rel.optim.decay_steps,
            rel.optim.decay_rate) == (1e-4, "step", 20, 0.2)
    assert md.released(_config(steps=3)).optim.decay_steps == 1
    regression = DatasetSpec("toy_reg", ("a",), ((5,),), "regression", 1)
    with pytest.raises(UserError, match="md needs a classification dataset"):
        methods.make(_config(), regression)


def test_no_recompilation_across_missing_patterns(key):
    """One compiled train_step and predict serve every present mask."""
    assert_one_program_for_every_mask(methods.make(_config(), SPEC), random_batch(key),
                                      SPEC.modalities)
