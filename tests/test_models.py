"""Encoders and fusion rules: output widths, the fusion closed forms, and masking invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config import ModelConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods.base import NNXModel
from mmjax.models import encoders
from mmjax.models.fusion import MultimodalNet

SPEC = DatasetSpec("toy", ("a", "b", "c"), ((5,), (3,), (4,)), "classification", 4)


def _batch(key, n=6):
    ka, kb, kc = jax.random.split(key, 3)
    return {"a": jax.random.normal(ka, (n, 5)), "b": jax.random.normal(kb, (n, 3)),
            "c": jax.random.normal(kc, (n, 4))}


def _net(fusion, **kwargs):
    model = NNXModel(lambda rngs: MultimodalNet(SPEC, ModelConfig(hidden=8, feature_dim=6),
                                                fusion=fusion, rngs=rngs, **kwargs))
    params, state = model.init(jax.random.key(1))
    return model, params, state


def _apply(model, params, state, inputs, present):
    (out, aux), _ = model.apply(params, state, inputs, present, train=False)
    return out, aux


def test_smil_encoders_have_the_released_widths(key):
    """LeNet-5 gives 160-d and the sound CNN 320-d features, as SMIL's released networks."""
    lenet = NNXModel(lambda rngs: encoders.LeNet5(0.0, rngs=rngs))
    sound = NNXModel(lambda rngs: encoders.SoundCNN(0.0, rngs=rngs))
    for model, shape, width in ((lenet, (2, 28, 28, 1), 160), (sound, (2, 20, 20, 1), 320)):
        params, state = model.init(key)
        out, _ = model.apply(params, state, jnp.ones(shape), train=False)
        assert out.shape == (2, width)


def test_late_fusion_is_the_mean_of_present_unimodal_logits(key):
    """late: out = sum_m p_m g_m(f_m) / sum_m p_m, computed by hand from the unimodal logits."""
    model, params, state = _net("late")
    inputs = _batch(key)
    present = jnp.array([[1, 1, 1], [1, 0, 0], [0, 1, 1], [1, 0, 1], [0, 0, 1], [1, 1, 0]], bool)
    out, aux = _apply(model, params, state, inputs, present)
    logits = np.stack([aux[f"{m}/logits"] for m in SPEC.modalities], 1)  # [B, M, C]
    p = np.asarray(present, np.float32)
    expected = (logits * p[:, :, None]).sum(1) / p.sum(1, keepdims=True)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    # Row 1 has only modality a: the output is exactly a's logits.
    np.testing.assert_allclose(out[1], aux["a/logits"][1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fusion", ["concat", "sum", "late"])
def test_a_missing_modality_does_not_affect_the_output(fusion, key):
    """Whatever the input of a missing modality holds, the fused output is the same."""
    model, params, state = _net(fusion)
    inputs = _batch(key)
    present = jnp.array([[1, 0, 1]] * 6, bool)
    other = {**inputs, "b": inputs["b"] * 100.0 + 7.0}
    out1, _ = _apply(model, params, state, inputs, present)
    out2, _ = _apply(model, params, state, other, present)
    np.testing.assert_array_equal(out1, out2)
    # ... and the gradient of the output with respect to that input is exactly zero.
    grad = jax.grad(lambda b: _apply(model, params, state, {**inputs, "b": b}, present)[0].sum())(
        inputs["b"])
    assert not np.any(np.asarray(grad))


@pytest.mark.parametrize("fusion", ["concat", "sum", "late"])
def test_an_unaware_model_sees_the_zero_filled_input_not_the_mask(fusion, key):
    """``missing_aware=False``: the output never depends on ``present``; a missing modality
    enters as its zero-filled input does (here: the same output as every modality present with
    b's input zero), and late fusion averages every head (UME-MMA's ``ensemble``)."""
    aware = NNXModel(lambda rngs: MultimodalNet(SPEC, ModelConfig(hidden=8, feature_dim=6),
                                                fusion=fusion, rngs=rngs))
    unaware = NNXModel(lambda rngs: MultimodalNet(
        SPEC, ModelConfig(hidden=8, feature_dim=6, missing_aware=False), fusion=fusion,
        rngs=rngs))
    params, state = aware.init(jax.random.key(1))
    # Biases start at zero, where a zero input has zero features; a trained model's do not.
    params = jax.tree.map(lambda x: x + 0.1, params)
    inputs = {**_batch(key), "b": jnp.zeros((6, 3))}  # b missing: zero-filled (batch contract)
    missing_b = jnp.array([[1, 0, 1]] * 6, bool)
    out, aux = _apply(unaware, params, state, inputs, missing_b)
    every, _ = _apply(aware, params, state, inputs, jnp.ones((6, 3), bool))
    np.testing.assert_array_equal(out, every)
    masked, _ = _apply(aware, params, state, inputs, missing_b)
    assert not np.allclose(out, masked)  # the aware model zeroes b's (non-zero) features
    if fusion == "late":
        logits = np.stack([aux[f"{m}/logits"] for m in SPEC.modalities], 1)
        np.testing.assert_allclose(out, logits.mean(1), rtol=1e-6, atol=1e-6)


def test_concat_fusion_feeds_the_head_the_masked_concatenation(key):
    """concat: out = head([f_a p_a, f_b p_b, f_c p_c]), rebuilt here from the module's parts."""
    model, params, state = _net("concat")
    inputs = _batch(key)
    present = jnp.array([[1, 0, 1], [0, 1, 1], [1, 1, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]], bool)
    out, aux = _apply(model, params, state, inputs, present)
    from flax import nnx

    net = nnx.merge(model.graphdef, params, state)
    fused = jnp.concatenate(
        [aux[f"{m}/features"] * present[:, i, None] for i, m in enumerate(SPEC.modalities)], -1)
    np.testing.assert_allclose(out, net.head(fused, deterministic=True), rtol=1e-6, atol=1e-6)


def test_sum_fusion_adds_masked_projections(key):
    """sum: out = head(sum_m p_m W_m f_m)."""
    model, params, state = _net("sum")
    inputs = _batch(key)
    present = jnp.array([[1, 0, 1], [0, 1, 1], [1, 1, 1], [1, 0, 0], [0, 0, 1], [0, 1, 0]], bool)
    out, aux = _apply(model, params, state, inputs, present)
    from flax import nnx

    net = nnx.merge(model.graphdef, params, state)
    fused = sum(net.project[m](aux[f"{m}/features"]) * present[:, i, None]
                for i, m in enumerate(SPEC.modalities))
    np.testing.assert_allclose(out, net.head(fused, deterministic=True), rtol=1e-5, atol=1e-6)


def test_modalities_pair_with_their_own_present_column(key):
    """Modality names out of alphabetical order still read their own `present` column.

    (Pytree dicts sort their keys; pairing by dict order would silently swap columns.)
    """
    spec = DatasetSpec("toy", ("zeta", "alpha"), ((3,), (3,)), "classification", 2)
    model = NNXModel(lambda rngs: MultimodalNet(spec, ModelConfig(hidden=4, feature_dim=4),
                                                fusion="late", rngs=rngs))
    params, state = model.init(key)
    inputs = {"zeta": jnp.ones((1, 3)), "alpha": -jnp.ones((1, 3))}
    out, aux = _apply(model, params, state, inputs, jnp.array([[True, False]]))
    np.testing.assert_allclose(out, aux["zeta/logits"], rtol=1e-6)
