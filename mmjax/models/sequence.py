"""Encoders for padded sequence modalities: RedCore's Transformer, RAML's LSTM max-pool, TextCNN.

A sequence modality arrives as ``x: [B, T, D]`` with each sample's valid steps first and zeros
after, its valid lengths in the batch as ``inputs[m + "_len"]`` (int32 ``[B]``; see
:mod:`mmjax.data`). Every encoder here maps ``(x, lengths) -> [B, out_dim]`` and is exactly
invariant to what lies past a sample's length: the first thing each one does is to replace the
padded steps by zeros (``jnp.where``, so garbage, NaN and gradients there never enter), and every
later reduction over time (attention keys, mean, max) is restricted to the valid steps. Appending
more padding, or changing the padding's values, leaves the output unchanged and the gradient with
respect to padded steps is exactly zero. A sample of length 0 (an empty sequence) gets a constant
encoding that does not depend on ``x``. (One exception: ``TransformerEncoder(form="released")``
reproduces the released code's attention and mean over the padding, so its output depends on the
padded length T, though not on the padding's values.)

``lengths`` is an optional keyword: every method passes the batch's lengths through
:func:`mmjax.models.encoders.encode`, and :func:`mmjax.data.missing.apply` zeroes the length of a
missing modality with its input, so a missing sequence is an empty one. Called without lengths, an
encoder takes each sample's length to be 1 + the index of its last non-zero step
(:func:`lengths_from_padding`), which is the true length under the batch contract except when a
sample's last valid steps are exactly zero vectors (those steps are then dropped).

- :class:`TransformerEncoder` (``transformer``): RedCore's self-modal encoder (papers/000,
  Implementation Details: 3 self-attention layers, 8 heads, 128-d embeddings). Linear ``D -> width``
  + sinusoidal positions, pre-LayerNorm blocks ``x + MHA(LN(x))``, ``x + MLP(LN(x))`` with the key
  padding mask, a final LayerNorm, the mean over valid steps, then ``Linear(width -> out_dim)`` +
  ReLU. Sinusoidal (not learned) positions: they add no parameters and exist for every T, whereas a
  learned table would tie the parameter shapes to the dataset's padded length (mmjax pads each
  dataset to its longest utterance, which differs between datasets and folds). The released code
  (official-code-notes §1.2) uses no positions at all, an extra LayerNorm on each branch output, a
  mean over padded steps too, and a sigmoid on the pooled features; ``positions="none"`` gives the
  order-free variant, ``form="released"`` all of these at once (blocks ``x + LN(MHA(LN(x)))``,
  ``x + LN(MLP(LN(x)))`` without a key mask, the mean over all T steps, then sigmoid; no final
  LayerNorm and no output layer, so ``out_dim`` is the width; checked against the released code in
  tests/test_golden_redcore.py). Only the zeroing of steps past ``lengths`` stays: the released
  batches are zero-padded too.
- :class:`LSTMMaxPool` (``lstm_maxpool``): RAML's frame encoder (papers/001 section IV-A, after
  MMIN's ``LSTMEncoder(embd_method="maxpool")``): a one-layer LSTM of width ``out_dim`` and the
  element-wise max of its outputs ``h_t`` over the valid steps (MMIN's max also ran over the
  batch's padding). An empty sequence gives zeros.
- :class:`TextCNN` (``textcnn``): RAML's token encoder (Kim 2014, as MMIN's ``TextCNN``): 1-D
  convolutions of widths 3, 4, 5 with ``channels`` filters each over the token features, ReLU, the
  max over the valid window positions (windows wholly inside the sequence; a sequence shorter than
  the width is zero-padded to it, as a padded batch would be), concatenated, dropout, then
  ``Linear(3 channels -> out_dim)`` + ReLU. ReLU outputs are >= 0, so masking a window with 0 before
  the max is exact, and a width with no window (length 0) gives 0.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["AbstractSequenceEncoder", "LSTMMaxPool", "TextCNN", "TransformerEncoder",
           "lengths_from_padding", "sinusoidal_positions", "valid_mask"]


def lengths_from_padding(x: jax.Array) -> jax.Array:
    """1 + the index of each sample's last non-zero step: ``[B, T, D] -> int32 [B]`` (0 if none)."""
    nonzero = jnp.any(x != 0, axis=-1)  # [B, T]
    steps = jnp.arange(1, x.shape[1] + 1, dtype=jnp.int32)[None, :]
    return jnp.max(jnp.where(nonzero, steps, 0), axis=1)


def valid_mask(lengths: jax.Array, steps: int) -> jax.Array:
    """``mask[b, t] = t < lengths[b]``: ``int [B] -> bool [B, steps]``."""
    return jnp.arange(steps)[None, :] < jnp.asarray(lengths)[:, None]


def sinusoidal_positions(steps: int, width: int) -> np.ndarray:
    """The Transformer's fixed position code (Vaswani et al. 2017, section 3.5): ``[steps, width]``.

    ``PE[t, 2i] = sin(t / 10000^(2i / width))``, ``PE[t, 2i + 1] = cos(t / 10000^(2i / width))``.
    """
    t = np.arange(steps, dtype=np.float64)[:, None]
    freq = 10000.0 ** (-np.arange(0, width, 2, dtype=np.float64) / width)[None, :]
    pe = np.zeros((steps, width))
    pe[:, 0::2] = np.sin(t * freq)
    pe[:, 1::2] = np.cos(t * freq)[:, : width // 2]
    return pe.astype(np.float32)


class AbstractSequenceEncoder(nnx.Module):
    """Base of the encoders that take ``lengths``; ``encoders.encode`` passes them only to these."""

    out_dim: int

    @staticmethod
    def _mask_padding(x: jax.Array, lengths: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        """Zeroes the steps past ``lengths`` (derived from the padding if None): ``(x, mask)``."""
        if lengths is None:
            lengths = lengths_from_padding(x)
        mask = valid_mask(lengths, x.shape[1])  # [B, T]
        return jnp.where(mask[:, :, None], x, jnp.zeros((), x.dtype)), mask


class _Block(nnx.Module):
    """One pre-LayerNorm Transformer block: ``x + MHA(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, width: int, heads: int, dropout: float, *, dtype=None, rngs: nnx.Rngs):
        self.ln1 = nnx.LayerNorm(width, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(heads, width, dropout_rate=dropout, decode=False,
                                           keep_rngs=False, dtype=dtype, rngs=rngs)
        self.ln2 = nnx.LayerNorm(width, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.fc1 = nnx.Linear(width, 4 * width, dtype=dtype, rngs=rngs)  # released: 128->512->128
        self.fc2 = nnx.Linear(4 * width, width, dtype=dtype, rngs=rngs)
        self.drop = nnx.Dropout(dropout)

    def __call__(self, x, key_mask, *, deterministic: bool, rngs: nnx.Rngs | None):
        # key_mask [B, 1, 1, T]: every query attends to the valid keys only.
        a = self.attn(self.ln1(x), mask=key_mask, deterministic=deterministic, rngs=rngs)
        x = x + self.drop(a, deterministic=deterministic, rngs=rngs)
        h = self.drop(jax.nn.relu(self.fc1(self.ln2(x))), deterministic=deterministic, rngs=rngs)
        return x + self.drop(self.fc2(h), deterministic=deterministic, rngs=rngs)


class _ReleasedBlock(nnx.Module):
    """The released block (RedCore ``ResidualAttentionBlock``): ``x + LN(MHA(LN(x)))``, then
    ``x + LN(MLP(LN(x)))``; dropout on the attention weights and after the MLP's ReLU only."""

    def __init__(self, width: int, heads: int, dropout: float, *, dtype=None, rngs: nnx.Rngs):
        ln = lambda: nnx.LayerNorm(width, epsilon=1e-5, dtype=dtype, rngs=rngs)  # noqa: E731
        self.ln1, self.ln12, self.ln2, self.ln22 = ln(), ln(), ln(), ln()
        self.attn = nnx.MultiHeadAttention(heads, width, dropout_rate=dropout, decode=False,
                                           keep_rngs=False, dtype=dtype, rngs=rngs)
        self.fc1 = nnx.Linear(width, 4 * width, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(4 * width, width, dtype=dtype, rngs=rngs)
        self.drop = nnx.Dropout(dropout)

    def __call__(self, x, *, deterministic: bool, rngs: nnx.Rngs | None):
        # No key mask: the released code attends over the batch's padding too.
        x = x + self.ln12(self.attn(self.ln1(x), deterministic=deterministic, rngs=rngs))
        h = self.drop(jax.nn.relu(self.fc1(self.ln2(x))), deterministic=deterministic, rngs=rngs)
        return x + self.ln22(self.fc2(h))


class TransformerEncoder(AbstractSequenceEncoder):
    """RedCore's Transformer self-modal encoder on ``[B, T, in_dim]`` -> ``[B, out_dim]``.

    See the module docstring. Args: ``in_dim`` per-step features D; ``out_dim`` output width;
    ``width`` the embedding width (paper 128); ``layers`` (paper 3); ``heads`` (paper 8);
    ``dropout`` on attention weights, residual branches and the MLP; ``positions``
    ``"sinusoidal"`` or ``"none"`` (released code).
    """

    def __init__(self, in_dim: int, out_dim: int, *, width: int = 128, layers: int = 3,
                 heads: int = 8, dropout: float = 0.0, positions: str = "sinusoidal",
                 form: str = "paper", dtype=None, rngs: nnx.Rngs):
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        if positions not in ("sinusoidal", "none"):
            raise ValueError(f"positions must be 'sinusoidal' or 'none', got {positions!r}")
        if form not in ("paper", "released"):
            raise ValueError(f"form must be 'paper' or 'released', got {form!r}")
        self.proj = nnx.Linear(in_dim, width, dtype=dtype, rngs=rngs)
        self.form = form
        if form == "released":  # no positions, final LayerNorm or output layer; out_dim = width
            self.blocks = nnx.List([_ReleasedBlock(width, heads, dropout, dtype=dtype, rngs=rngs)
                                    for _ in range(layers)])
            self.positions, self.out_dim = "none", width
            return
        self.blocks = nnx.List([_Block(width, heads, dropout, dtype=dtype, rngs=rngs)
                                for _ in range(layers)])
        self.ln = nnx.LayerNorm(width, epsilon=1e-5, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(width, out_dim, dtype=dtype, rngs=rngs)
        self.positions = positions
        self.out_dim = out_dim

    def __call__(self, x, *, lengths: jax.Array | None = None, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        x, mask = self._mask_padding(x, lengths)
        h = self.proj(x)  # [B, T, W]
        if self.form == "released":
            # The released Transformer: unmasked blocks, mean over all T steps (the padding
            # too), sigmoid; the caller's Gaussian head is its ``muvar`` layer.
            for block in self.blocks:
                h = block(h, deterministic=deterministic, rngs=rngs)
            return jax.nn.sigmoid(h.astype(jnp.float32).mean(1)).astype(h.dtype)
        if self.positions == "sinusoidal":
            h = h + jnp.asarray(sinusoidal_positions(h.shape[1], h.shape[2]), h.dtype)[None]
        key_mask = mask[:, None, None, :]  # [B, 1, 1, T]
        for block in self.blocks:
            h = block(h, key_mask, deterministic=deterministic, rngs=rngs)
        h = self.ln(h)
        return jax.nn.relu(self.out(masked_mean(h, mask)))


def masked_mean(h: jax.Array, mask: jax.Array) -> jax.Array:
    """The mean of ``h [B, T, D]`` over the steps where ``mask [B, T]`` is True (zeros for an empty
    sequence), summed and counted in float32 (bfloat16 counts exactly only up to 256 steps) and
    returned in ``h``'s dtype."""
    total = jnp.where(mask[:, :, None], h.astype(jnp.float32), 0.0).sum(1)
    return (total / jnp.maximum(mask.sum(1, keepdims=True), 1)).astype(h.dtype)


class LSTMMaxPool(AbstractSequenceEncoder):
    """A one-layer LSTM (width ``H = out_dim``) max-pooled over valid steps: ``[B, T, D] -> [B, H]``

    ``out[b] = max_{t < L_b} h_t`` element-wise, where ``h_t`` are the outputs of
    ``nnx.OptimizedLSTMCell`` run from a zero state (causal, so steps past ``L_b`` never reach
    them); zeros for ``L_b = 0``. MMIN's ``LSTMEncoder`` has no dropout, and neither has this.
    """

    def __init__(self, in_dim: int, out_dim: int, *, dtype=None, rngs: nnx.Rngs):
        self.cell = nnx.OptimizedLSTMCell(in_dim, out_dim, dtype=dtype, rngs=rngs)
        # rngs=False: no RNG stream stored on the module (the carry starts at zero, given below).
        self.rnn = nnx.RNN(self.cell, rngs=False)
        self.out_dim = out_dim

    def outputs(self, x, lengths: jax.Array | None) -> tuple[jax.Array, jax.Array]:
        """The LSTM outputs ``[B, T, H]`` over the padding-zeroed input, and the valid mask."""
        x, mask = self._mask_padding(x, lengths)
        zeros = jnp.zeros((x.shape[0], self.out_dim), x.dtype)  # the compute dtype's carry
        return self.rnn(x, initial_carry=(zeros, zeros)), mask

    def __call__(self, x, *, lengths: jax.Array | None = None, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        del deterministic, rngs  # no dropout
        h, mask = self.outputs(x, lengths)
        pooled = jnp.max(jnp.where(mask[:, :, None], h, -jnp.inf), axis=1)
        return jnp.where(mask.any(1, keepdims=True), pooled, jnp.zeros((), pooled.dtype))


class TextCNN(AbstractSequenceEncoder):
    """Kim's TextCNN on ``[B, T, in_dim]`` -> ``[B, out_dim]`` (see the module docstring).

    Args: ``in_dim`` token feature width; ``channels`` filters per width (MMIN 128); ``out_dim``
    output width; ``widths`` the kernel widths (3, 4, 5); ``dropout`` before the output layer.
    """

    def __init__(self, in_dim: int, channels: int, out_dim: int, *, widths=(3, 4, 5),
                 dropout: float = 0.0, dtype=None, rngs: nnx.Rngs):
        self.widths = tuple(widths)
        self.convs = nnx.List([nnx.Conv(in_dim, channels, (k,), padding="VALID", dtype=dtype,
                                        rngs=rngs) for k in self.widths])
        self.drop = nnx.Dropout(dropout)
        self.out = nnx.Linear(len(self.widths) * channels, out_dim, dtype=dtype, rngs=rngs)
        self.out_dim = out_dim

    def __call__(self, x, *, lengths: jax.Array | None = None, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        if lengths is None:
            lengths = lengths_from_padding(x)
        x, _ = self._mask_padding(x, lengths)
        extra = max(self.widths) - x.shape[1]
        if extra > 0:  # T shorter than a kernel: zero-pad so every width has a window
            x = jnp.pad(x, ((0, 0), (0, extra), (0, 0)))
        feats = []
        for k, conv in zip(self.widths, self.convs):
            y = jax.nn.relu(conv(x))  # [B, T - k + 1, C]
            # Window i is valid if it lies inside the sequence (i + k <= L), or if it is the first
            # window of a non-empty sequence shorter than k (zero-padded to k).
            n_valid = jnp.maximum(lengths - k + 1, jnp.minimum(lengths, 1))  # [B]
            keep = valid_mask(n_valid, y.shape[1])[:, :, None]
            feats.append(jnp.where(keep, y, jnp.zeros((), y.dtype)).max(1))  # y >= 0: exact
        h = self.drop(jnp.concatenate(feats, -1), deterministic=deterministic, rngs=rngs)
        return jax.nn.relu(self.out(h))
