"""SMIL's feature encoders for MM-IMDb and CMU-MOSI (papers/004, "Implementation details").

- :class:`FCEncoder` (``fc``): one fully-connected layer + ReLU, ``in -> out_dim``. MM-IMDb: "We
  feed the feature from each modality to a FC layer to align their output dimension" (VGG 4096-d
  and word2vec 300-d both go to ``out_dim``).
- :class:`MeanMLP3` (``mean_mlp3``): CMU-MOSI's image (Facet) encoder, "three fully-connected (FC)
  layers with dimension 16": the mean of the valid frames, then ``Linear(D -> hidden)``,
  ``Linear(hidden -> hidden)``, ``Linear(hidden -> hidden)``, each followed by ReLU (dropout
  between them). All three layers have width ``hidden`` (so ``out_dim = hidden``; the
  ``feature_dim`` of the model config is not used), which lets a config give the text LSTM its
  own width. The paper takes its MOSI features "following Liu et al. (2018)" (LMF), whose
  pre-fusion subnetwork (``SubNet``) is three FC layers on the visual features averaged over
  time; FC layers need a vector, so we average the valid frames as LMF did. LMF's ``SubNet`` also
  starts with a BatchNorm of its input; the paper names only the three FC layers, and so do we.
- :class:`LSTMLast` (``lstm_last``): CMU-MOSI's text encoder, "one layer LSTM": an LSTM of width
  ``out_dim`` whose embedding is the hidden state after the last valid step, ``h_{L-1}``. This is
  LMF's ``TextSubNet`` (the LSTM's final state; LMF then adds dropout and a linear layer, which
  the paper does not mention), rather than the max over steps of ``lstm_maxpool`` (RAML/MMIN's
  encoder). An empty sequence (L = 0) gives the zero initial state.

The two sequence encoders follow :mod:`mmjax.models.sequence`'s contract: padded ``[B, T, D]`` with
the valid steps first, ``lengths`` int ``[B]`` (derived from the padding when None), exactly
invariant to whatever lies past a sample's length (the padded steps are replaced by zeros first;
the mean divides by the length; the LSTM is causal and the state is read at step L - 1).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax.models.sequence import AbstractSequenceEncoder, LSTMMaxPool, masked_mean

__all__ = ["FCEncoder", "LSTMLast", "MeanMLP3"]


class FCEncoder(nnx.Module):
    """One FC layer on a flattened feature vector: ``relu(W x + b)``,
    ``[B, *shape] -> [B, out_dim]``; dropout on the output."""

    def __init__(self, in_shape, out_dim: int, dropout: float, *, dtype=None, rngs: nnx.Rngs):
        self.fc = nnx.Linear(math.prod(in_shape), out_dim, dtype=dtype, rngs=rngs)
        self.drop = nnx.Dropout(dropout)
        self.out_dim = out_dim

    def __call__(self, x, *, deterministic: bool, rngs: nnx.Rngs | None = None):
        x = jax.nn.relu(self.fc(x.reshape(x.shape[0], -1)))
        return self.drop(x, deterministic=deterministic, rngs=rngs)


class MeanMLP3(AbstractSequenceEncoder):
    """Mean over the valid steps, then three FC layers of width ``hidden`` with ReLU:
    ``[B, T, D] -> [B, hidden]``; dropout after the first two. Zeros in for an empty sequence."""

    def __init__(self, in_dim: int, hidden: int, dropout: float, *, dtype=None, rngs: nnx.Rngs):
        widths = (in_dim, hidden, hidden, hidden)
        self.layers = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs)
                                for a, b in zip(widths, widths[1:])])
        self.drop = nnx.Dropout(dropout)
        self.out_dim = hidden

    def __call__(self, x, *, lengths: jax.Array | None = None, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        x, mask = self._mask_padding(x, lengths)
        h = masked_mean(x, mask)  # the mean of the valid steps; 0 for an empty sequence
        for i, layer in enumerate(self.layers):
            h = jax.nn.relu(layer(h))
            if i < len(self.layers) - 1:
                h = self.drop(h, deterministic=deterministic, rngs=rngs)
        return h


class LSTMLast(LSTMMaxPool):
    """``LSTMMaxPool``'s one-layer LSTM of width ``out_dim``, read out at ``h_{L_b - 1}``, the
    hidden state after sample b's last valid step (zeros for ``L_b = 0``):
    ``[B, T, D] -> [B, out_dim]``. No dropout."""

    def __call__(self, x, *, lengths: jax.Array | None = None, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        del deterministic, rngs  # no dropout
        h, mask = self.outputs(x, lengths)  # [B, T, H]
        length = mask.sum(1)  # [B]
        last = jnp.take_along_axis(h, jnp.maximum(length - 1, 0)[:, None, None], axis=1)[:, 0]
        return jnp.where((length > 0)[:, None], last, jnp.zeros((), last.dtype))
