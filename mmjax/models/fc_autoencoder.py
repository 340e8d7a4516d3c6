"""The fully connected autoencoder of MMIN's AE variant (the "AE" baseline of the MMIN line).

The MMIN authors' released ``SimpleFcAE`` (``AIM3-RUC/MMIN``, branch ``master``,
``models/networks/autoencoder.py``), which ``models/mmin_AE_model.py`` uses in place of MMIN's
cascaded residual autoencoder: one plain autoencoder (Bengio et al. 2006, the "AE" that MLA's
Table 2 cites), no residual sum, no transition::

    latent = a(W_K ... a(W_1 x))            a = LeakyReLU(0.01) after every encoder layer
    recon  = relu(V_1 a(... a(V_K latent)))  the mirrored decoder; LeakyReLU between its layers,
                                             ReLU on the output (the released ``get_decoder``)

Encoder widths ``in -> layers[0] -> ... -> layers[-1]``, decoder ``layers[-1] -> ... ->
layers[0] -> in``. The released module's dropout and BatchNorm are off in ``mmin_AE_model.py``
(``dropout=0, use_bn=False``) and are not built here.
"""

from __future__ import annotations

import jax
from flax import nnx


def mirrored_linears(in_dim: int, layers: tuple[int, ...], *, dtype=None,
                     rngs: nnx.Rngs) -> tuple[nnx.List, nnx.List]:
    """``(enc, dec)``: Linear layers ``in -> layers[0] -> ... -> layers[-1]`` and their mirror
    ``layers[-1] -> ... -> layers[0] -> in``, initialised in that order (this AE's and each
    block of ``models.residual_ae``'s cascade)."""
    widths = (in_dim, *layers)
    enc = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(widths, widths[1:])])
    back = widths[::-1]
    dec = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs) for a, b in zip(back, back[1:])])
    return enc, dec


class FcAutoencoder(nnx.Module):
    """One fully connected autoencoder; ``__call__`` returns ``(recon, latent)``.

    Attributes:
      latent_dim: the width of the latent ``__call__`` returns, ``layers[-1]``.

    Args:
      in_dim: width of the input and of the reconstruction.
      layers: the encoder's widths; the decoder mirrors them back to ``in_dim``.
      dtype: compute dtype.
      rngs: parameter initialisation keys.
    """

    def __init__(self, in_dim: int, layers: tuple[int, ...], *, dtype=None, rngs: nnx.Rngs):
        self.enc, self.dec = mirrored_linears(in_dim, layers, dtype=dtype, rngs=rngs)
        self.latent_dim = layers[-1]

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(recon, latent)``: the activated bottleneck ``[B, layers[-1]]`` and its decoding."""
        h = x
        for layer in self.enc:
            h = jax.nn.leaky_relu(layer(h), 0.01)
        latent = h
        dec = list(self.dec)
        for layer in dec[:-1]:
            h = jax.nn.leaky_relu(layer(h), 0.01)
        return jax.nn.relu(dec[-1](h)), latent
