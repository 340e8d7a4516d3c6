"""The cascaded residual autoencoder (CRA) of Tran et al. (CVPR 2017), as MMIN and RedCore use it.

Tran, Liu, Zhou, Jin, "Missing Modalities Imputation via Cascaded Residual Autoencoder", CVPR
2017, eq. (1)-(2): B autoencoders in cascade, each predicting a residual of the running estimate::

    dZ_1 = AE_1(x),   dZ_k = AE_k(x + dZ_1 + ... + dZ_{k-1})   (k = 2..B)
    x_hat = x + dZ_1 + ... + dZ_B

MMIN's released ``ResidualAE`` (``AIM3-RUC/MMIN``, ``models/networks/autoencoder.py``) is this
cascade followed by a transition ``Linear(in, in) -> ReLU -> Linear(in, out)`` applied to x_hat,
and it also returns the concatenation of the B bottleneck latents AE_k's encoder produced (MMIN's
classifier reads them, Zhao et al. ACL 2021, Figure 2). Each block's encoder is
``in -> layers[0] -> ... -> layers[-1]`` (LeakyReLU, slope ``slope``; on the last layer only with
``latent_act``), its decoder the mirror ``layers[-1] -> ... -> layers[0] -> in`` (ReLU, linear
output). RedCore's cross-modal encoder (``methods/redcore.py``) is the same module with slope 0.2,
an activated latent and ``out_dim = latent_dim``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax.models.fc_autoencoder import mirrored_linears


class CascadedResidualAE(nnx.Module):
    """B residual autoencoder blocks in cascade (Tran et al. eq. 1), optionally a transition.

    Args:
      in_dim: width of the input (and of every block's output).
      layers: one block's encoder widths; the decoder mirrors them back to ``in_dim``.
      blocks: B, the number of blocks.
      out_dim: width of the transition's output; ``None``: no transition (Tran et al.'s CRA:
        the output is x_hat itself).
      slope: LeakyReLU negative slope of the encoder layers (PyTorch default 0.01).
      latent_act: apply the LeakyReLU to the last encoder layer (the latent) too.
      dtype: compute dtype.
      rngs: parameter initialisation keys.

    Attributes:
      latent_dim: the width of the concatenated latents ``__call__`` returns,
        ``blocks * layers[-1]``.
    """

    def __init__(self, in_dim: int, layers: tuple[int, ...], blocks: int,
                 out_dim: int | None = None, *, slope: float = 0.01, latent_act: bool = False,
                 dtype=None, rngs: nnx.Rngs):
        def block():
            enc, dec = mirrored_linears(in_dim, layers, dtype=dtype, rngs=rngs)
            return nnx.Dict({"enc": enc, "dec": dec})

        self.blocks = nnx.List([block() for _ in range(blocks)])
        self.latent_dim = blocks * layers[-1]
        if out_dim is not None:
            self.trans1 = nnx.Linear(in_dim, in_dim, dtype=dtype, rngs=rngs)
            self.trans2 = nnx.Linear(in_dim, out_dim, dtype=dtype, rngs=rngs)
        self.has_transition = out_dim is not None
        self.slope = slope
        self.latent_act = latent_act

    def cascade(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(x_hat, latents)``: x_hat = x + sum_k dZ_k (eq. 1), latents ``[B, B * layers[-1]]``.

        The released loop: x_in = x, x_out = 0; per block x_in <- x_in + x_out,
        x_out <- dec_k(enc_k(x_in)); x_hat = x_in + x_out.
        """
        x_in, x_out = x, jnp.zeros_like(x)
        latents = []
        for blk in self.blocks:
            x_in = x_in + x_out
            h = x_in
            enc = list(blk["enc"])
            for i, layer in enumerate(enc):
                h = layer(h)
                if i < len(enc) - 1 or self.latent_act:
                    h = jax.nn.leaky_relu(h, self.slope)
            latents.append(h)
            dec = list(blk["dec"])
            for layer in dec[:-1]:
                h = jax.nn.relu(layer(h))
            x_out = dec[-1](h)
        return x_in + x_out, jnp.concatenate(latents, -1)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``(output, latents)``: the transition of x_hat (or x_hat itself), and the latents."""
        x_hat, latents = self.cascade(x)
        if self.has_transition:
            x_hat = self.trans2(jax.nn.relu(self.trans1(x_hat)))
        return x_hat, latents
