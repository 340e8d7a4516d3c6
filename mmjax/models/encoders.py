"""Per-modality encoders: MLP for feature vectors, LeNet-5 for 28x28 digits, SMIL's sound CNN,
MultiBench's spectrogram LeNet, and the sequence encoders of :mod:`mmjax.models.sequence`
(``transformer``, ``lstm_maxpool``, ``textcnn``) for padded ``[T, D]`` modalities, and SMIL's
MM-IMDb / CMU-MOSI encoders of :mod:`mmjax.models.smil_encoders` (``fc``, ``mean_mlp3``,
``lstm_last``).

Every encoder maps one modality's batch ``[B, *shape]`` to features ``[B, out_dim]`` and exposes
``out_dim``. They are Flax NNX modules built eagerly; ``deterministic`` switches dropout off and
``rngs`` carries the dropout key (created inside the traced step, never stored on the module).
The two CNNs follow SMIL's released networks (official-code-notes §5.2) so that SMIL and its
baselines share encoders: PyTorch's default ``VALID`` padding, and the layer order as released.

Sequence encoders also take the valid lengths (``inputs[m + "_len"]``); call any encoder through
:func:`encode`, which passes them to sequence encoders only. Without them a sequence encoder
derives each length from the zero padding (see :mod:`mmjax.models.sequence`).

A network takes its encoders' names from ``model.encoders`` through :func:`encoder_names` (which
checks there is one per modality; an empty ``model.encoders`` means the dataset's registry entry's
defaults, never a choice by input shape) and usually builds them with :func:`build_encoders`.
"""

from __future__ import annotations

import contextvars
import math

import jax
from flax import nnx

from mmjax.config import ModelConfig
from mmjax.data import registry
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.models.sequence import AbstractSequenceEncoder, LSTMMaxPool, TextCNN, TransformerEncoder
from mmjax.models.smil_encoders import FCEncoder, LSTMLast, MeanMLP3

ENCODERS = ("mlp", "lenet5", "sound_cnn", "spec_lenet", "transformer", "lstm_maxpool", "textcnn",
            "fc", "mean_mlp3", "lstm_last")
SEQUENCE_ENCODERS = ("transformer", "lstm_maxpool", "textcnn", "mean_mlp3", "lstm_last")
# A user's encoder factories by name, ``factory(shape, *, rngs) -> module``, set by
# ``mmjax.methods.make(..., encoders=...)`` while its method builds its networks.
USER_ENCODERS: contextvars.ContextVar[dict] = contextvars.ContextVar("user_encoders", default={})


class MLPEncoder(nnx.Module):
    """Two-layer MLP on a flattened feature vector: ``in -> hidden -> out_dim``, ReLU after each."""

    def __init__(self, in_shape, hidden: int, out_dim: int, dropout: float, *, dtype=None,
                 rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(math.prod(in_shape), hidden, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, out_dim, dtype=dtype, rngs=rngs)
        self.drop = nnx.Dropout(dropout)
        self.out_dim = out_dim

    def __call__(self, x, *, deterministic: bool, rngs: nnx.Rngs | None = None):
        x = x.reshape(x.shape[0], -1)
        x = self.drop(jax.nn.relu(self.fc1(x)), deterministic=deterministic, rngs=rngs)
        return jax.nn.relu(self.fc2(x))


class LeNet5(nnx.Module):
    """SMIL's image LeNet-5 feature extractor on ``[B, 28, 28, 1]`` -> 160-d.

    conv 1->5 (5x5) -> maxpool 2 -> ReLU -> conv 5->10 (5x5) -> dropout -> maxpool 2 -> ReLU ->
    flatten (4*4*10 = 160). The released model's fc 160->32->10 classifier is the head's job here.
    """

    out_dim = 160

    def __init__(self, dropout: float, *, dtype=None, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, 5, (5, 5), padding="VALID", dtype=dtype, rngs=rngs)
        self.conv2 = nnx.Conv(5, 10, (5, 5), padding="VALID", dtype=dtype, rngs=rngs)
        self.drop = nnx.Dropout(dropout)

    def __call__(self, x, *, deterministic: bool, rngs: nnx.Rngs | None = None):
        x = jax.nn.relu(nnx.max_pool(self.conv1(x), (2, 2), (2, 2)))  # [B, 12, 12, 5]
        x = self.drop(self.conv2(x), deterministic=deterministic, rngs=rngs)
        x = jax.nn.relu(nnx.max_pool(x, (2, 2), (2, 2)))  # [B, 4, 4, 10]
        return x.reshape(x.shape[0], -1)


class SoundCNN(nnx.Module):
    """SMIL's sound encoder (``SNetPluse``) on a 20x20 MFCC ``[B, 20, 20, 1]`` -> 320-d.

    Three 2x2 convs (32, 48, 20 channels), each followed by BatchNorm and ReLU, then maxpool
    (window 2, stride 4), dropout, flatten (4*4*20 = 320).
    """

    out_dim = 320

    def __init__(self, dropout: float, *, dtype=None, rngs: nnx.Rngs):
        chans = (1, 32, 48, 20)
        self.convs = nnx.List([
            nnx.Conv(a, b, (2, 2), padding="VALID", dtype=dtype, rngs=rngs)
            for a, b in zip(chans, chans[1:])
        ])
        # PyTorch BatchNorm momentum 0.1 == Flax momentum 0.9 (weight of the old average).
        self.norms = nnx.List(
            [nnx.BatchNorm(c, momentum=0.9, dtype=dtype, rngs=rngs) for c in chans[1:]]
        )
        self.drop = nnx.Dropout(dropout)

    def __call__(self, x, *, deterministic: bool, rngs: nnx.Rngs | None = None):
        for conv, norm in zip(self.convs, self.norms):
            x = jax.nn.relu(norm(conv(x), use_running_average=deterministic))
        x = nnx.max_pool(x, (2, 2), (4, 4))  # [B, 4, 4, 20]
        x = self.drop(x, deterministic=deterministic, rngs=rngs)
        return x.reshape(x.shape[0], -1)


class SpectrogramLeNet(nnx.Module):
    """MultiBench's AV-MNIST audio encoder ``LeNet(1, 6, 5)`` on ``[B, H, W, 1]`` spectrograms.

    conv 1->6 (5x5, padding 2, no bias), then five convs (3x3, padding 1, no bias) doubling the
    channels to 192; each followed by BatchNorm, ReLU and maxpool 2 (floor). On 112x112 the map
    ends at 1x1, so the features are 192-d (MultiBench squeezes them); larger inputs flatten.
    Dropout (absent in MultiBench) acts on the output.
    """

    def __init__(self, shape, dropout: float, *, dtype=None, rngs: nnx.Rngs):
        chans = (1, 6, 12, 24, 48, 96, 192)
        self.convs = nnx.List([
            nnx.Conv(a, b, (5, 5) if i == 0 else (3, 3), padding="SAME", use_bias=False,
                     dtype=dtype, rngs=rngs)
            for i, (a, b) in enumerate(zip(chans, chans[1:]))
        ])
        # PyTorch BatchNorm momentum 0.1 == Flax momentum 0.9 (weight of the old average).
        self.norms = nnx.List(
            [nnx.BatchNorm(c, momentum=0.9, dtype=dtype, rngs=rngs) for c in chans[1:]]
        )
        self.drop = nnx.Dropout(dropout)
        h, w = shape[0] // 64, shape[1] // 64  # six floor-halvings
        self.out_dim = chans[-1] * h * w

    def __call__(self, x, *, deterministic: bool, rngs: nnx.Rngs | None = None):
        for conv, norm in zip(self.convs, self.norms):
            x = nnx.max_pool(jax.nn.relu(norm(conv(x), use_running_average=deterministic)),
                             (2, 2), (2, 2))
        x = self.drop(x, deterministic=deterministic, rngs=rngs)
        return x.reshape(x.shape[0], -1)


def encoder_names(spec: DatasetSpec, config: ModelConfig) -> tuple[str, ...]:
    """The encoder of each modality: ``config.encoders``; if empty, the defaults the dataset's
    registry entry declares for its modalities (``mmjax.data.registry.Entry.encoders``); for a
    dataset the registry does not know (e.g. ``mmjax.data.from_arrays``), ``mlp`` on every
    modality (it flattens any input; name ``model.encoders`` for another).

    Raises:
      UserError: ``config.encoders`` does not name one encoder per modality.
    """
    names = (config.encoders or registry.default_encoders(spec)
             or ("mlp",) * spec.num_modalities)
    if len(names) != spec.num_modalities:
        raise UserError(
            f"model.encoders names {len(names)} encoders for {spec.num_modalities} modalities"
        )
    return tuple(names)


def build_encoders(spec: DatasetSpec, config: ModelConfig, *, dtype=None, rngs: nnx.Rngs,
                   modalities: tuple[str, ...] | None = None) -> nnx.Dict:
    """``{m: encoder}`` of ``config`` for ``modalities`` (default: all, in the dataset's order,
    which is the order their parameters are drawn from ``rngs``).

    Iterate over the modality tuple, never over the returned ``nnx.Dict``: its keys come back
    sorted.
    """
    names = encoder_names(spec, config)
    used = modalities or spec.modalities
    return nnx.Dict({
        m: make_encoder(names[c], spec.shapes[c], hidden=config.hidden,
                        out_dim=config.feature_dim, dropout=config.dropout, dtype=dtype,
                        rngs=rngs)
        for m, c in zip(used, (spec.modalities.index(m) for m in used))
    })


def make_encoder(name: str, shape, *, hidden: int, out_dim: int, dropout: float, dtype=None,
                 rngs: nnx.Rngs):
    """Builds encoder ``name`` for per-sample input ``shape``.

    Raises:
      UserError: unknown encoder, or an encoder that cannot take this input shape.
    """
    shape = tuple(shape)
    if name in USER_ENCODERS.get():
        return USER_ENCODERS.get()[name](shape, rngs=rngs)
    if name == "mlp":
        return MLPEncoder(shape, hidden, out_dim, dropout, dtype=dtype, rngs=rngs)
    if name == "fc":
        return FCEncoder(shape, out_dim, dropout, dtype=dtype, rngs=rngs)
    if name == "lenet5":
        if shape != (28, 28, 1):
            raise UserError(f"encoder lenet5 needs 28x28x1 inputs, got {shape}")
        return LeNet5(dropout, dtype=dtype, rngs=rngs)
    if name == "sound_cnn":
        if shape != (20, 20, 1):
            raise UserError(f"encoder sound_cnn needs 20x20x1 MFCC inputs, got {shape}")
        return SoundCNN(dropout, dtype=dtype, rngs=rngs)
    if name == "spec_lenet":
        if len(shape) != 3 or shape[2] != 1 or min(shape[:2]) < 64:
            raise UserError(f"encoder spec_lenet needs [H, W, 1] inputs with H, W >= 64, "
                            f"got {shape}")
        return SpectrogramLeNet(shape, dropout, dtype=dtype, rngs=rngs)
    if name in SEQUENCE_ENCODERS:
        return _sequence_encoder(name, shape, hidden=hidden, out_dim=out_dim, dropout=dropout,
                                 dtype=dtype, rngs=rngs)
    raise UserError(f"unknown encoder {name!r}; choose from {', '.join(ENCODERS)}")


def _sequence_encoder(name: str, shape: tuple[int, ...], *, hidden: int, out_dim: int,
                      dropout: float, dtype, rngs: nnx.Rngs):
    """``transformer``: RedCore's (3 layers, 8 heads, width ``hidden``); ``lstm_maxpool``,
    ``lstm_last``: LSTM of width ``out_dim``; ``textcnn``: widths 3/4/5 with ``hidden`` filters
    each; ``mean_mlp3``: three FC layers of width ``hidden``."""
    if len(shape) != 2:
        raise UserError(f"encoder {name} needs a padded sequence [T, D] per sample, got {shape}")
    if name == "transformer":
        if hidden % 8:
            raise UserError(f"encoder transformer has 8 heads: model.hidden must be a multiple "
                            f"of 8, got {hidden}")
        return TransformerEncoder(shape[1], out_dim, width=hidden, layers=3, heads=8,
                                  dropout=dropout, dtype=dtype, rngs=rngs)
    if name == "lstm_maxpool":
        return LSTMMaxPool(shape[1], out_dim, dtype=dtype, rngs=rngs)
    if name == "lstm_last":
        return LSTMLast(shape[1], out_dim, dtype=dtype, rngs=rngs)
    if name == "mean_mlp3":
        return MeanMLP3(shape[1], hidden, dropout, dtype=dtype, rngs=rngs)
    return TextCNN(shape[1], hidden, out_dim, dropout=dropout, dtype=dtype, rngs=rngs)


def encode(encoder: nnx.Module, x: jax.Array, lengths: jax.Array | None = None, *,
           deterministic: bool, rngs: nnx.Rngs | None = None) -> jax.Array:
    """Applies ``encoder`` to ``x``; a sequence encoder also gets the valid ``lengths`` (int [B]).

    Call sites pass ``inputs.get(length_key(m))``: None for a modality without lengths, and other
    encoders ignore it, so one line serves every encoder.
    """
    if lengths is not None and isinstance(encoder, AbstractSequenceEncoder):
        return encoder(x, lengths=lengths, deterministic=deterministic, rngs=rngs)
    return encoder(x, deterministic=deterministic, rngs=rngs)


def masked_features(features: jax.Array, present: jax.Array) -> jax.Array:
    """Zeroes the features of samples whose modality is missing: ``[B, D] * [B] -> [B, D]``.

    Zero-filled inputs still produce non-zero features (biases); fusion layers call this so a
    missing modality contributes exactly nothing.
    """
    return features * present[:, None].astype(features.dtype)

