"""Sequence encoders (mmjax/models/sequence.py): shapes, exact invariance to padding, hand-checked
TextCNN / LSTM max-pool / masked-mean values, one trace across length vectors, zero gradients at
padded steps, lengths reaching RedCore's and RAML's encoders, and the two configs on fixtures.

Padding invariance is the key property: a sample's output must not change when steps are appended
past its length or when the padded steps hold anything at all, and it must equal the output of the
unpadded sequence run alone. Tolerances are fixed: 1e-6 (float32 reassociation over different T).
"""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_data_papers2 import prepare, write_mmin, write_mmsa

from mmjax.config import ModelConfig
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods.base import NNXModel
from mmjax.models import encoders, sequence

T, D = 7, 5
LENGTHS = np.array([7, 3, 1, 0], np.int32)
TOL = dict(rtol=1e-6, atol=1e-6)
NAMES = ("transformer", "lstm_maxpool", "textcnn")  # the encoders of mmjax/models/sequence.py


def _inputs(key, lengths=LENGTHS, steps=T, dim=D):
    """``[B, steps, dim]`` normal values on the valid steps, zeros after (the batch contract)."""
    x = jax.random.normal(key, (len(lengths), steps, dim))
    return jnp.where(sequence.valid_mask(lengths, steps)[:, :, None], x, 0.0)


def _garbage(x, lengths, extra, key):
    """``x`` with ``extra`` steps appended and every padded step (old and new) set to noise."""
    b, steps, dim = x.shape
    long = jnp.concatenate([x, jnp.zeros((b, extra, dim))], 1)
    noise = 100.0 * jax.random.normal(key, long.shape)
    return jnp.where(sequence.valid_mask(lengths, steps + extra)[:, :, None], long, noise)


def _encoder(name, dim=D, dropout=0.0):
    return encoders.make_encoder(name, (T, dim), hidden=16, out_dim=6, dropout=dropout,
                                 rngs=nnx.Rngs(0))


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_bad_shapes(name):
    assert name in encoders.SEQUENCE_ENCODERS and name in encoders.ENCODERS
    enc = _encoder(name)
    x = _inputs(jax.random.key(1))
    out = enc(x, lengths=jnp.asarray(LENGTHS), deterministic=True)
    assert out.shape == (4, 6) and enc.out_dim == 6 and np.isfinite(out).all()
    with pytest.raises(UserError, match=f"encoder {name} needs a padded sequence"):
        encoders.make_encoder(name, (T * D,), hidden=16, out_dim=6, dropout=0.0,
                              rngs=nnx.Rngs(0))


def test_transformer_heads_must_divide_the_width():
    with pytest.raises(UserError, match="multiple of 8"):
        encoders.make_encoder("transformer", (T, D), hidden=20, out_dim=6, dropout=0.0,
                              rngs=nnx.Rngs(0))


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_padding_invariance(name):
    """Appended steps, garbage in the padding, and running each sample unpadded: same output."""
    enc = _encoder(name)
    x = _inputs(jax.random.key(1))
    lengths = jnp.asarray(LENGTHS)
    out = enc(x, lengths=lengths, deterministic=True)
    for extra in (0, 1, 9):
        noisy = _garbage(x, lengths, extra, jax.random.key(extra))
        np.testing.assert_allclose(enc(noisy, lengths=lengths, deterministic=True), out, **TOL)
    for b, n in enumerate(LENGTHS):
        if n:  # the valid steps alone, no padding at all
            alone = enc(x[b:b + 1, :n], lengths=jnp.array([n]), deterministic=True)
            np.testing.assert_allclose(alone[0], out[b], **TOL)
    # Length 0: a constant, whatever the padding holds.
    empty = enc(100.0 * jax.random.normal(jax.random.key(5), (2, T, D)),
                lengths=jnp.zeros(2, jnp.int32), deterministic=True)
    np.testing.assert_allclose(empty, jnp.broadcast_to(out[3], empty.shape), **TOL)


@pytest.mark.parametrize("name", NAMES)
def test_lengths_derived_from_zero_padding(name):
    """Without lengths, trailing zero steps are padding: same output as with the true lengths."""
    enc = _encoder(name)
    x = _inputs(jax.random.key(2))
    np.testing.assert_array_equal(sequence.lengths_from_padding(x), LENGTHS)
    want = enc(x, lengths=jnp.asarray(LENGTHS), deterministic=True)
    np.testing.assert_allclose(enc(x, deterministic=True), want, **TOL)
    longer = jnp.concatenate([x, jnp.zeros((4, 3, D))], 1)
    np.testing.assert_allclose(enc(longer, deterministic=True), want, **TOL)


def test_derived_lengths_drop_trailing_zero_steps():
    """The documented limitation: a valid step that is exactly zero at the end counts as padding."""
    x = jnp.zeros((2, 4, 3)).at[0, 0, 1].set(1.0).at[0, 2, 0].set(-2.0).at[1, 1, 2].set(0.5)
    np.testing.assert_array_equal(sequence.lengths_from_padding(x), [3, 2])


def test_textcnn_max_over_time_by_hand():
    """Ones kernels, zero biases, identity output layer: features = max valid window sums."""
    enc = sequence.TextCNN(1, 1, 3, widths=(3, 4, 5), rngs=nnx.Rngs(0))
    for conv in enc.convs:
        conv.kernel[...] = jnp.ones_like(conv.kernel[...])
        conv.bias[...] = jnp.zeros_like(conv.bias[...])
    enc.out.kernel[...] = jnp.eye(3)
    enc.out.bias[...] = jnp.zeros(3)
    seqs = [[1.0, -2.0, 3.0, 4.0, -1.0, 2.0], [3.0, 1.0], [-1.0, -2.0, -3.0, -4.0], []]
    x = np.full((4, 8, 1), 50.0, np.float32)  # garbage past every length
    for b, s in enumerate(seqs):
        x[b, :len(s), 0] = s
    out = enc(jnp.asarray(x), lengths=jnp.array([len(s) for s in seqs]), deterministic=True)

    def expected(s, k):  # windows inside the sequence; a short one zero-padded to k; ReLU; max
        if not s:
            return 0.0
        padded = s + [0.0] * max(0, k - len(s))
        return max(max(sum(padded[i:i + k]), 0.0) for i in range(len(padded) - k + 1))

    want = [[expected(s, k) for k in (3, 4, 5)] for s in seqs]
    # First row by hand: width 3 sums 2, 5, 6, 5 -> 6; width 4: 6, 4, 8 -> 8; width 5: 5, 6 -> 6.
    assert want[0] == [6.0, 8.0, 6.0] and want[1] == [4.0, 4.0, 4.0]
    np.testing.assert_allclose(out, want, **TOL)


def test_lstm_maxpool_equals_a_python_loop_over_the_cell():
    """out[b] = max_{t < L_b} h_t with h_t from nnx's OptimizedLSTMCell stepped by hand."""
    enc = sequence.LSTMMaxPool(D, 6, rngs=nnx.Rngs(3))
    x = _inputs(jax.random.key(4))
    out = enc(_garbage(x, jnp.asarray(LENGTHS), 2, jax.random.key(9)),
              lengths=jnp.asarray(LENGTHS), deterministic=True)
    for b, n in enumerate(LENGTHS):
        carry, hs = (jnp.zeros(6), jnp.zeros(6)), []
        for t in range(n):
            carry, h = enc.cell(carry, x[b, t])
            hs.append(h)
        want = np.max(np.stack(hs), 0) if hs else np.zeros(6)
        np.testing.assert_allclose(out[b], want, **TOL)


def test_transformer_without_layers_is_a_masked_mean():
    """layers=0, no positions: out = ReLU(W_out mean_{t<L} LN(W_in x_t + b_in) + b_out)."""
    enc = sequence.TransformerEncoder(D, 6, width=8, layers=0, heads=2, positions="none",
                                      rngs=nnx.Rngs(5))
    x = _inputs(jax.random.key(6))
    out = enc(_garbage(x, jnp.asarray(LENGTHS), 3, jax.random.key(7)),
              lengths=jnp.asarray(LENGTHS), deterministic=True)
    w, b0 = np.asarray(enc.proj.kernel[...]), np.asarray(enc.proj.bias[...])
    wo, bo = np.asarray(enc.out.kernel[...]), np.asarray(enc.out.bias[...])
    for b, n in enumerate(LENGTHS):
        h = np.asarray(x[b, :n]) @ w + b0
        h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
        pooled = h.mean(0) if n else np.zeros(8)
        np.testing.assert_allclose(out[b], np.maximum(pooled @ wo + bo, 0.0), rtol=1e-5,
                                   atol=1e-5)


def test_sinusoidal_positions_closed_form():
    pe = sequence.sinusoidal_positions(5, 6)
    t, i = 3, 2  # PE[t, 2i] = sin(t / 10000^(2i/d)), PE[t, 2i+1] = cos(...)
    np.testing.assert_allclose(pe[t, 2 * i], np.sin(t / 10000 ** (2 * i / 6)), rtol=1e-6)
    np.testing.assert_allclose(pe[t, 2 * i + 1], np.cos(t / 10000 ** (2 * i / 6)), rtol=1e-6)
    np.testing.assert_allclose(pe[0], [0, 1, 0, 1, 0, 1])


@pytest.mark.parametrize("name", NAMES)
def test_one_trace_across_length_vectors(name):
    model = NNXModel(lambda rngs: _encoder(name, dropout=0.1))
    params, state = model.init(jax.random.key(0))
    traces = []

    @jax.jit
    def apply(params, x, lengths, key):
        traces.append(1)
        return model.apply(params, state, x, lengths=lengths, train=True, key=key)[0]

    x = _inputs(jax.random.key(1), lengths=np.full(4, T))
    for lengths in ([7, 3, 1, 0], [2, 2, 2, 2], [0, 7, 5, 4]):
        out = apply(params, x, jnp.array(lengths, jnp.int32), jax.random.key(2))
        assert out.shape == (4, 6)
    assert len(traces) == 1


@pytest.mark.parametrize("name", NAMES)
def test_gradients_vanish_at_padded_steps(name):
    model = NNXModel(lambda rngs: _encoder(name))
    params, state = model.init(jax.random.key(0))
    x = _garbage(_inputs(jax.random.key(1)), jnp.asarray(LENGTHS), 0, jax.random.key(3))

    def total(x):
        out = model.apply(params, state, x, lengths=jnp.asarray(LENGTHS), train=False)[0]
        return jnp.sum(out * jnp.arange(1.0, 7.0)[None, :])

    g = np.asarray(jax.grad(total)(x))
    valid = np.asarray(sequence.valid_mask(LENGTHS, T))
    assert np.all(g[~valid] == 0.0)
    assert np.abs(g[valid]).sum() > 0


def test_encode_passes_lengths_to_sequence_encoders_only():
    mlp = encoders.make_encoder("mlp", (T, D), hidden=8, out_dim=4, dropout=0.0, rngs=nnx.Rngs(0))
    x = _inputs(jax.random.key(1))
    np.testing.assert_allclose(encoders.encode(mlp, x, jnp.asarray(LENGTHS), deterministic=True),
                               mlp(x, deterministic=True))
    lstm = _encoder("lstm_maxpool")
    noisy = _garbage(x, jnp.asarray(LENGTHS), 2, jax.random.key(4))
    np.testing.assert_allclose(
        encoders.encode(lstm, noisy, jnp.asarray(LENGTHS), deterministic=True),
        lstm(x, deterministic=True), **TOL)


# ------------------------------------------------------------------------------------------------
# The lengths reach the encoders of RedCore and RAML
# ------------------------------------------------------------------------------------------------

SEQ_SPEC = DatasetSpec("toy_seq", ("audio", "text"), ((T, D), (T, 3)), "classification", 3,
                       time_axes=(1, 1))


def _seq_batch(key):
    ka, kt = jax.random.split(key)
    lengths = {"audio": np.array([7, 2, 4, 1], np.int32), "text": np.array([3, 7, 5, 6], np.int32)}
    inputs = {"audio": _inputs(ka, lengths["audio"]), "text": _inputs(kt, lengths["text"], dim=3)}
    inputs.update({f"{m}_len": jnp.asarray(v) for m, v in lengths.items()})
    noisy = dict(inputs)
    for i, m in enumerate(("audio", "text")):
        noisy[m] = _garbage(inputs[m], inputs[f"{m}_len"], 0, jax.random.key(10 + i))
    return inputs, noisy


@pytest.mark.slow
def test_redcore_and_raml_encoders_receive_the_lengths():
    """Garbage past the lengths changes nothing: the networks hand the lengths to the encoders."""
    from mmjax.methods.raml import RamlConfig, RamlNet
    from mmjax.methods.redcore import RedCoreConfig, RedCoreNet

    model = ModelConfig(encoders=("lstm_maxpool", "textcnn"), hidden=8, feature_dim=6)
    inputs, noisy = _seq_batch(jax.random.key(0))
    present = jnp.array([[1, 1], [1, 0], [0, 1], [1, 1]], bool)
    redcore = RedCoreNet(SEQ_SPEC, model, RedCoreConfig(latent_dim=4, xenc_layers=(4,),
                                                        xenc_blocks=1), rngs=nnx.Rngs(0))
    a = redcore(inputs, present, deterministic=True)
    b = redcore(noisy, present, deterministic=True)
    np.testing.assert_allclose(a["joint"], b["joint"], **TOL)
    raml = RamlNet(SEQ_SPEC, model, RamlConfig(latent_dim=4), rngs=nnx.Rngs(0))
    for x, y in zip(raml(inputs, zero_row=True, deterministic=True),
                    raml(noisy, zero_row=True, deterministic=True)):
        np.testing.assert_allclose(x, y, **TOL)
    # RAML's zero row (a dropped modality) is the empty-sequence encoding.
    mu, _, mu0, _ = raml(inputs, zero_row=True, deterministic=True)
    empty = {**inputs, "audio_len": jnp.zeros(4, jnp.int32), "text_len": jnp.zeros(4, jnp.int32)}
    mu_empty, _ = raml(empty, deterministic=True)
    np.testing.assert_allclose(mu_empty, jnp.broadcast_to(mu0[None], mu_empty.shape), **TOL)
    assert not np.allclose(mu, mu_empty)


# ------------------------------------------------------------------------------------------------
# The configs on fixtures in the published layouts (tests/test_data_papers2.py writes them)
# ------------------------------------------------------------------------------------------------

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"


def _first_batch(s, size):
    from mmjax.data import pipeline

    data = pipeline.to_arrays(s.dataset.splits["train"])
    return pipeline.gather(data, s.train_present[0], np.arange(size), s.dataset.spec.modalities)


@pytest.mark.slow
def test_redcore_iemocap_config_trains_with_transformers(capsys, data_dir, tmp_path):
    """configs/iemocap/redcore.py on an IEMOCAP fixture in MMIN's layout: three training steps."""
    from mmjax import config as config_lib
    from mmjax import train

    write_mmin(tmp_path / "IEMOCAP_features_2021", 10, one_hot=True)
    prepare(capsys, "iemocap", tmp_path / "IEMOCAP_features_2021")
    config = config_lib.load(str(CONFIGS / "iemocap" / "redcore.py") + ":quick")
    assert config.model.encoders == ("transformer",) * 3 and config.optim.lr == 2e-4
    assert config.train.batch_size == 128 and config.missing.rates == (0.2, 0.5, 0.8)
    # Paper-sized transformers (3 layers, 8 heads, 128-d); smaller latents and one residual block
    # keep the compile short.
    s = train.setup(config_lib.override(config, [
        "train.batch_size=4", "method.latent_dim=16", "method.xenc_layers=8",
        "method.xenc_blocks=1"]))
    assert all(isinstance(e, sequence.TransformerEncoder)
               for e in nnx.eval_shape(lambda: _redcore_net(s)).encoders.values())
    batch = _first_batch(s, 4)
    assert batch["inputs"]["text"].shape == (4, 7, 1024) and "text_len" in batch["inputs"]
    state = s.method.init(jax.random.key(0), batch)
    step = jax.jit(s.method.train_step)
    for _ in range(3):
        state, metrics = step(state, batch)
        assert np.isfinite(float(metrics["loss"]))
    assert int(state.step) == 3
    assert s.method.predict(state, batch).shape == (4, 4)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["msp_improv", "mmsa_mosei"])
def test_redcore_msp_and_mosei_configs_train_on_fixtures(capsys, data_dir, tmp_path, name):
    """configs/{msp_improv,mmsa_mosei}/redcore.py: the IEMOCAP setup on the paper's other two
    datasets (MMIN's layout with 12 folds; MMSA's aligned pickle, 3 classes); one training step."""
    from mmjax import config as config_lib
    from mmjax import train

    if name == "msp_improv":
        write_mmin(tmp_path / "feats", 12, one_hot=True)
        prepare(capsys, name, tmp_path / "feats")
    else:
        write_mmsa(tmp_path / "aligned_50.pkl", aligned=True)
        prepare(capsys, name, tmp_path / "aligned_50.pkl")
    config = config_lib.load(str(CONFIGS / name / "redcore.py") + ":quick")
    assert config.model.encoders == ("transformer",) * 3 and config.optim.lr == 2e-4
    assert config.train.batch_size == 128 and config.missing.rates == (0.2, 0.5, 0.8)
    s = train.setup(config_lib.override(config, [
        "train.batch_size=2", "method.latent_dim=16", "method.xenc_layers=8",
        "method.xenc_blocks=1"]))
    assert s.dataset.spec.num_classes == (4 if name == "msp_improv" else 3)
    assert s.dataset.spec.modalities == ("audio", "vision", "text")
    batch = _first_batch(s, 2)
    state = s.method.init(jax.random.key(0), batch)
    state, metrics = jax.jit(s.method.train_step)(state, batch)
    assert np.isfinite(float(metrics["loss"]))


def _redcore_net(s):
    from mmjax.methods.redcore import RedCoreNet

    c = s.config
    return RedCoreNet(s.dataset.spec, c.model, c.method, rngs=nnx.Rngs(0))


@pytest.mark.slow
def test_raml_mosi_config_passes_validation(capsys, data_dir, tmp_path):
    """configs/mmsa_mosi/raml.py on an MMSA aligned fixture: set up, one step, the mosei variant."""
    from mmjax import config as config_lib
    from mmjax import train

    write_mmsa(tmp_path / "aligned_50.pkl", aligned=True, dims=(768, 5, 20))
    prepare(capsys, "mmsa_mosi", tmp_path / "aligned_50.pkl")
    config = config_lib.load(str(CONFIGS / "mmsa_mosi" / "raml.py") + ":quick")
    assert config.model.encoders == ("lstm_maxpool",) * 3 and config.optim.weight_decay == 5e-4
    s = train.setup(config_lib.override(config, ["train.batch_size=2"]))
    assert s.dataset.spec.num_classes == 3
    batch = _first_batch(s, 2)
    state = s.method.init(jax.random.key(0), batch)
    state, metrics = jax.jit(s.method.train_step)(state, batch)
    assert np.isfinite(float(metrics["loss"]))
    mosei = config_lib.load(str(CONFIGS / "mmsa_mosi" / "raml.py") + ":mosei+quick")
    assert mosei.data.name == "mmsa_mosei" and mosei.train.steps == 100
    with pytest.raises(UserError, match="unknown config variant"):
        config_lib.load(str(CONFIGS / "mmsa_mosi" / "raml.py") + ":mosi")
