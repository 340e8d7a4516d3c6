"""SMIL on the paper's feature datasets: the positive-label weight of MM-IMDb's loss, SMIL's
MM-IMDb / CMU-MOSI encoders (mmjax/models/smil_encoders.py), and the configs
configs/mmimdb/{smil, lower_bound, upper_bound, ae_imputation}.py and
configs/multibench_mosi/smil.py trained a few steps on fixtures in the published layouts (writers
shared with tests/test_data_papers2.py).

Tolerances are fixed: 1e-6 relative for float32 values computed two ways, 1e-5 for losses.
"""

import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_data_papers2 import prepare, write_mmimdb, write_multibench_mosi

from mmjax import config as config_lib
from mmjax import losses, methods, train
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.data import missing, pipeline
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.methods import smil
from mmjax.methods.smil import SmilConfig
from mmjax.models import encoders, sequence
from toy import phase_stepper

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"
TOL = dict(rtol=1e-6, atol=1e-6)


# --- the positive-label weight ------------------------------------------------------------------

def test_pos_weight_closed_form_on_two_labels():
    """logits (0, ln 3), labels (1, 0): sigma = (1/2, 3/4), so the BCE with weight w is
    (w ln 2 + ln 4) / 2: ln 2 * 1.5 at w = 1 and 2 ln 2 at w = 2."""
    logits, label = jnp.asarray([[0.0, math.log(3.0)]]), jnp.asarray([[1.0, 0.0]])
    np.testing.assert_allclose(losses.per_example("multilabel", logits, label), [1.5 * math.log(2)],
                               **TOL)
    np.testing.assert_allclose(losses.per_example("multilabel", logits, label, 2.0),
                               [2 * math.log(2)], **TOL)


MULTI = DatasetSpec("toy", ("a", "b"), ((6,), (5,)), "multilabel", 3)


def _multilabel_batch(key, n=8):
    k1, k2, k3 = jax.random.split(key, 3)
    present = jnp.ones((n, 2), bool).at[n // 2:, 1].set(False)
    inputs = missing.apply({"a": jax.random.normal(k1, (n, 6)), "b": jax.random.normal(k2, (n, 5))},
                           present, MULTI.modalities)
    return {"inputs": inputs, "present": present,
            "label": (jax.random.uniform(k3, (n, 3)) < 0.4).astype(jnp.float32)}


def _multilabel_config(pos_weight):
    return ExperimentConfig(method=SmilConfig(phase1_steps=2, phase2_steps=2, memory_size=16,
                                              num_priors=3, pos_weight=pos_weight),
                            model=ModelConfig(hidden=8, feature_dim=4),
                            train=TrainConfig(steps=10, batch_size=8))


def test_smil_losses_use_pos_weight():
    """SMIL's phase-1 image loss at pos_weight w = 2 equals mean_b mean_c -(w y log s + (1 - y)
    log(1 - s)) of head1(f1(x1)) computed here by hand; at w = 1 it would be smaller by
    mean_b mean_c (-y log s), checked to be far above the tolerance."""
    batch = _multilabel_batch(jax.random.key(0))
    config = _multilabel_config(2.0)
    method = methods.make(config, MULTI)
    state = method.init(jax.random.key(0), batch)
    _, metrics = jax.jit(method.phases[0].step)(state, batch)  # step 0: phase 1
    model = smil.NNXModel(lambda rngs: smil.SmilNet(MULTI, config.model, 3, rngs=rngs))
    net = nnx.merge(model.graphdef, state.params, state.model_state)
    z = np.asarray(net.head1(net.enc1(batch["inputs"]["a"], deterministic=True)), np.float64)
    y = np.asarray(batch["label"], np.float64)
    log_s, log_not_s = -np.logaddexp(0, -z), -np.logaddexp(0, z)
    want = np.mean(-(2.0 * y * log_s + (1 - y) * log_not_s).mean(-1))
    np.testing.assert_allclose(float(metrics["loss_pre_image"]), want, rtol=1e-5)
    assert np.mean((-y * log_s).mean(-1)) > 1e-2  # the w = 1 loss is this much smaller


def test_pos_weight_bad_values_fail_with_user_errors():
    with pytest.raises(UserError, match="pos_weight must be positive"):
        methods.make(_multilabel_config(0.0), MULTI)
    spec = DatasetSpec("toy", ("a", "b"), ((6,), (5,)), "classification", 3)
    with pytest.raises(UserError, match="multi-label"):
        methods.make(_multilabel_config(2.0), spec)


# --- SMIL's encoders ----------------------------------------------------------------------------

LENGTHS = np.array([5, 2, 1, 0], np.int32)


def _sequences(key, steps=5, dim=3):
    x = jax.random.normal(key, (len(LENGTHS), steps, dim))
    return jnp.where(sequence.valid_mask(LENGTHS, steps)[:, :, None], x, 0.0)


def _garbage(x, key):
    """``x`` with two more steps and every padded step set to noise (beyond each length)."""
    long = jnp.concatenate([x, jnp.zeros((x.shape[0], 2, x.shape[2]))], 1)
    noise = 5.0 * jax.random.normal(key, long.shape)
    return jnp.where(sequence.valid_mask(LENGTHS, long.shape[1])[:, :, None], long, noise)


def _make(name, **kw):
    args = dict(hidden=6, out_dim=4, dropout=0.0, rngs=nnx.Rngs(0)) | kw
    return encoders.make_encoder(name, (5, 3) if name != "fc" else (7,), **args)


def test_fc_encoder_is_one_relu_layer():
    enc = _make("fc")
    x = jax.random.normal(jax.random.key(0), (3, 7))
    w, b = np.asarray(enc.fc.kernel[...]), np.asarray(enc.fc.bias[...])
    np.testing.assert_allclose(enc(x, deterministic=True), np.maximum(np.asarray(x) @ w + b, 0),
                               **TOL)
    assert enc.out_dim == 4


def test_mean_mlp3_is_three_relu_layers_on_the_valid_mean():
    """out = relu(W3 relu(W2 relu(W1 mean_{t < L} x_t))), width ``hidden`` (out_dim unused); the
    empty sequence's mean is 0; padded steps do not matter."""
    enc = _make("mean_mlp3")
    assert enc.out_dim == 6
    x = _sequences(jax.random.key(1))
    out = encoders.encode(enc, x, jnp.asarray(LENGTHS), deterministic=True)
    xn = np.asarray(x, np.float64)
    h = np.stack([xn[i, :n].mean(0) if n else np.zeros(3) for i, n in enumerate(LENGTHS)])
    for layer in enc.layers:
        h = np.maximum(h @ np.asarray(layer.kernel[...]) + np.asarray(layer.bias[...]), 0)
    np.testing.assert_allclose(out, h, rtol=1e-5, atol=1e-6)
    padded = encoders.encode(enc, _garbage(x, jax.random.key(2)), jnp.asarray(LENGTHS),
                             deterministic=True)
    np.testing.assert_allclose(padded, out, **TOL)


def test_lstm_last_is_the_state_after_the_last_valid_step():
    """Each sample's output equals the LSTM run alone on its unpadded prefix, read at its last
    step; zeros for the empty sequence; appended garbage past the lengths changes nothing."""
    enc = _make("lstm_last")
    x = _sequences(jax.random.key(3))
    out = encoders.encode(enc, x, jnp.asarray(LENGTHS), deterministic=True)
    for i, n in enumerate(LENGTHS):
        if n == 0:
            np.testing.assert_array_equal(out[i], np.zeros(4))
            continue
        zeros = jnp.zeros((1, 4))
        alone = enc.rnn(x[i:i + 1, :n], initial_carry=(zeros, zeros))[0, -1]
        np.testing.assert_allclose(out[i], alone, **TOL)
    padded = encoders.encode(enc, _garbage(x, jax.random.key(4)), jnp.asarray(LENGTHS),
                             deterministic=True)
    np.testing.assert_allclose(padded, out, **TOL)


# --- the configs on fixtures in the published layouts ------------------------------------------

SMALL = ["method.phase1_steps=2", "method.phase2_steps=2", "train.steps=10", "train.batch_size=4",
         "method.memory_size=16"]


def _batch(s, present, indices, split="train"):
    data = pipeline.to_arrays(s.dataset.splits[split])
    batch = pipeline.gather(data, present, np.asarray(indices), s.dataset.spec.modalities)
    return jax.tree.map(jnp.asarray, batch)  # device arrays, as the training loop's


def _train_six_steps(s):
    """Six jitted steps with masks drawn at three values of eta, run as the runtime does (the
    phase of the step, its enter at its first step): one trace per phase, phases 1 1 2 2 3 3."""
    traces = []
    step = phase_stepper(s.method, s.config.train.steps, traces)

    n = len(s.dataset.splits["train"])
    state = s.method.init(jax.random.key(0), _batch(s, s.train_present[0], np.arange(4)))
    phases = []
    for i, eta in enumerate((0.5, 1.0, 0.25, 0.5, 1.0, 0.25)):
        present = np.asarray(missing.paired_fraction(jax.random.key(i), n, 2, eta))
        idx = (np.arange(4) + i) % n
        state, metrics = step(state, _batch(s, present, idx))
        assert all(np.isfinite(float(v)) for v in metrics.values()), metrics
        phases.append(float(metrics["phase"]))
    assert traces == ["pretrain_unimodal", "pretrain_fusion", "meta"]
    assert phases == [1, 1, 2, 2, 3, 3]
    assert int(state.extra["count"]) > 0
    return state


def _predict_both_and_image_only(s, state):
    """Predictions on the test split with text present and with it missing (image only): the
    image-only ones do not depend on the (zero-filled) text input, the complete ones do."""
    test = s.dataset.splits["test"]
    idx = np.arange(len(test))
    both = np.ones((len(test), 2), bool)
    image_only = both.copy()
    image_only[:, 1] = False
    predict = jax.jit(s.method.predict)  # one compile: the masks are data
    out_both = predict(state, _batch(s, both, idx, "test"))
    out_image = predict(state, _batch(s, image_only, idx, "test"))
    assert out_both.shape == out_image.shape == (len(test), s.dataset.spec.num_classes)
    assert np.isfinite(out_both).all() and np.isfinite(out_image).all()
    assert np.abs(np.asarray(out_both - out_image)).max() > 1e-6
    batch = _batch(s, image_only, idx, "test")
    text = s.dataset.spec.modalities[1]
    noisy = {**batch, "inputs": {**batch["inputs"], text: batch["inputs"][text] + 3.0}}
    np.testing.assert_allclose(predict(state, noisy), out_image, **TOL)
    return out_both


@pytest.mark.slow
def test_mmimdb_smil_config_trains_and_predicts(capsys, data_dir, tmp_path):  # noqa: F811
    """configs/mmimdb/smil.py:quick (narrowed: 16-d features) on a multimodal_imdb.hdf5 fixture."""
    write_mmimdb(tmp_path / "imdb")
    prepare(capsys, "mmimdb", tmp_path / "imdb")
    config = config_lib.load(str(CONFIGS / "mmimdb" / "smil.py") + ":quick")
    assert config.method.pos_weight == 2.0 and config.method.regularization == "multiplicative"
    assert config.method.inner_lr == 1e-4 and config.optim.lr == 1e-3
    assert config.model.encoders == ("fc", "fc") and config.train.batch_size == 128
    full = config_lib.load(str(CONFIGS / "mmimdb" / "smil.py"))
    assert full.train.steps - full.method.phase1_steps - full.method.phase2_steps == 10000
    s = train.setup(config_lib.override(config, SMALL + ["model.feature_dim=16",
                                                         "model.hidden=16"]))
    assert s.dataset.spec.modalities == ("image", "text") and s.dataset.spec.task == "multilabel"
    state = _train_six_steps(s)
    assert _predict_both_and_image_only(s, state).shape[1] == 23


@pytest.mark.parametrize("name", ["lower_bound", "upper_bound", "ae_imputation"])
def test_mmimdb_baseline_configs_train_a_step(capsys, data_dir, tmp_path, name):  # noqa: F811
    """The Table 2 baselines share the SMIL config's data, encoders and optimiser."""
    write_mmimdb(tmp_path / "imdb")
    prepare(capsys, "mmimdb", tmp_path / "imdb")
    config = config_lib.load(str(CONFIGS / "mmimdb" / f"{name}.py") + ":quick")
    assert config.model.encoders == ("fc", "fc") and config.train.batch_size == 128
    assert config.missing.protocol == ("paired" if name == "ae_imputation" else "none")
    s = train.setup(config_lib.override(config, ["train.batch_size=4", "model.feature_dim=16",
                                                 "model.hidden=16"]))
    batch = _batch(s, s.train_present[0], np.arange(4))
    state = s.method.init(jax.random.key(0), batch)
    state, metrics = phase_stepper(s.method, s.config.train.steps)(state, batch)  # step 0
    assert np.isfinite(float(metrics["loss"]))
    assert s.method.predict(state, batch).shape == (4, 23)


@pytest.mark.slow
def test_mosi_smil_config_trains_and_predicts(capsys, data_dir, tmp_path):  # noqa: F811
    """configs/multibench_mosi/smil.py:quick on MultiBench's mosi_raw.pkl layout (Facet 35,
    COVAREP 74, GloVe 300): vision + text kept (image first), binary labels, the text lengths stored in the
    paired memory with their samples."""
    write_multibench_mosi(tmp_path / "mosi_raw.pkl")
    prepare(capsys, "multibench_mosi", tmp_path / "mosi_raw.pkl")
    config = config_lib.load(str(CONFIGS / "multibench_mosi" / "smil.py") + ":quick")
    assert config.model.encoders == ("mean_mlp3", "lstm_last") and config.model.hidden == 16
    assert config.optim.lr == config.method.inner_lr == 1e-4 and config.train.batch_size == 32
    full = config_lib.load(str(CONFIGS / "multibench_mosi" / "smil.py"))
    assert full.train.steps - full.method.phase1_steps - full.method.phase2_steps == 5000
    with pytest.raises(UserError, match="unknown config variant"):
        config_lib.load(str(CONFIGS / "multibench_mosi" / "smil.py") + ":mosei")
    s = train.setup(config_lib.override(config, SMALL))
    spec = s.dataset.spec
    assert spec.modalities == ("vision", "text") and spec.num_classes == 2
    assert spec.shapes == ((6, 35), (6, 300))
    state = _train_six_steps(s)
    extra, count = state.extra, int(state.extra["count"])
    lengths = s.dataset.splits["train"].inputs[length_key("text")]
    for j in range(count):  # each stored sample's text length is that of its training sample
        stored = np.asarray(extra["x2"][j])
        match = [i for i in range(len(lengths))
                 if np.array_equal(s.dataset.splits["train"].inputs["text"][i], stored)]
        assert match and int(extra["len2"][j]) == int(lengths[match[0]])
        np.testing.assert_array_equal(extra["len1"][j], extra["len2"][j])  # aligned modalities
    _predict_both_and_image_only(s, state)
