"""CCA, DCCA and DCCAE: canonical-correlation representations, then a classifier on them.

MLA's Table 2 missing-modality baselines (papers/002, "Baselines and Hyperparameter Settings":
CCA (Hotelling), DCCA (Andrew, Arora, Bilmes, Livescu, ICML 2013), DCCAE (Wang, Arora, Livescu,
Bilmes, ICML 2015)); MLA gives no setup beyond "the same backbone models". Neither paper's text
is in papers/, so the citations name their sections. Registry names ``cca``, ``dcca``, ``dccae``
(one ``DccaConfig`` with the switches below). One ``mmjax train`` runs two phases, each its own
compiled program with its own optimiser (``opt_state = (tx1's, tx2's)``)::

    every view m: z_m = W_m f_m(x_m) + b_m in R^o     (DCCA's network output of dimension o:
                  the view's backbone encoder f_m, then a linear layer; CCA (``encoder=linear``):
                  z_m = W_m x_m + b_m on the flattened input, Hotelling's linear projections)
    phase 1 [0, cca_steps): the representation
      Andrew et al. sec. 2 (total correlation of two views on the m samples H_1, H_2 [m, o]):
          H^_i = H_i - mean(H_i),  S_12 = H^_1' H^_2 / (m - 1),  S_ii = H^_i' H^_i / (m - 1) + r I
          T = S_11^{-1/2} S_12 S_22^{-1/2},   corr(H_1, H_2) = ||T||_tr   (all o singular values)
      Wang et al. sec. 3 (DCCAE): + lambda sum_m mean ||x_m - p_m(z_m)||^2, p_m a decoder MLP
      L_1 = - sum_{m < n} corr(Z_m, Z_n on the samples with both views) + lambda L_rec
    phase 2 [cca_steps, train.steps): the classifier, the representation frozen:
      L_2 = CE(head([sg(z_1) p_1; ...; sg(z_M) p_M]), y)   (a missing view's z is zero)
    predict  the same head on the test sample's present views.

T is computed as L_1^{-1} S_12 L_2^{-T} (S_ii = L_i L_i' by Cholesky): L_i^{-1} = Q_i S_ii^{-1/2}
with Q_i orthogonal, so the singular values, and the trace norm, are the same. The trace norm is
tr(U' T) with U = T's polar factor (Newton-Schulz, no gradient through it: Danskin). All of it
is plain ``jnp`` on [o, o] matrices, no LAPACK call: the pinned jaxlib (0.10.2) splits a batched
LAPACK call (``jnp.linalg.cholesky`` / ``svd`` vmapped over seed replicas) over XLA's thread
pool, and a 35-replica DCCA program hung there for good (every thread waiting; seen
2026-12-07; jax's source of August 2026 keeps that splitting to Google's internal builds).

Our choices where the papers are silent or have two views: with M > 2 views, L_1 sums the
correlation of every view pair (the SUMCOR generalisation); each pair's statistics use only the
batch's samples with both views (weighted means), and a pair with fewer than two such samples
adds nothing (at MLA's 70 % rate, where every sample keeps one view, the correlation term learns
nothing); the reconstruction is the mean over a view's present samples of the squared error
summed over the input (Wang et al.'s form) and decodes the view's own z_m; the classifier is the
project's ``MLPHead`` on the concatenated canonical outputs (in place of the papers' linear SVM),
trained on the training samples with at least one view. The backbones run with dropout in phase
1 and deterministically in phase 2.
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax import losses
from mmjax.config import NON_NEGATIVE, POSITIVE, ExperimentConfig, MethodConfig, frozen
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, Phase, TrainState, cast_inputs,
                                compute_dtype, make_optimizer)
from mmjax.methods.supervised import initializer, phase_step
from mmjax.models.encoders import build_encoders, encode, encoder_names, masked_features
from mmjax.models.fusion import MLPHead


@frozen
class DccaConfig(MethodConfig):
    """DCCA (and, with the switches, CCA and DCCAE).

    Attributes:
      cca_steps: phase-1 steps (the correlation objective); the rest train the classifier.
      cca_dim: o, the dimension of every view's canonical output (all o correlations count).
      ridge: r, added to each view's covariance (Andrew et al.'s r_1 = r_2).
      encoder: ``network``: the view's backbone encoder then a linear layer (DCCA, DCCAE);
        ``linear``: a linear map of the flattened input (CCA).
      recon_weight: lambda, the weight of DCCAE's reconstruction term (0: no decoders, DCCA).
    """

    name: str = "dcca"
    cca_steps: Annotated[int, NON_NEGATIVE] = 500
    cca_dim: Annotated[int, POSITIVE] = 10
    ridge: Annotated[float, POSITIVE] = 1e-3
    encoder: Literal["network", "linear"] = "network"
    recon_weight: Annotated[float, NON_NEGATIVE] = 0.0


@frozen
class CcaConfig(DccaConfig):
    """CCA: linear projections of the inputs (same switches as DCCA)."""

    name: str = "cca"
    encoder: Literal["network", "linear"] = "linear"


@frozen
class DccaeConfig(DccaConfig):
    """DCCAE: DCCA plus each view's reconstruction from its canonical output (same switches)."""

    name: str = "dccae"
    recon_weight: Annotated[float, NON_NEGATIVE] = 0.01


# ----------------------------------------------------------------------------------------------
# The defining computations.
# ----------------------------------------------------------------------------------------------

# Newton-Schulz steps of the polar factor: a singular value s of T / ||T||_F grows by ~1.5 per
# step until near 1, then converges quadratically, so 40 steps converge every s above
# ~1e-6 ||T||_F; a smaller one adds at most itself to the value's error.
POLAR_ITERATIONS = 40


def cholesky(a: jax.Array) -> jax.Array:
    """The lower Cholesky factor of the SPD matrix ``a [o, o]``, column by column (Banachiewicz):
    o vector steps of plain ``jnp`` (see the module docstring for why not ``jnp.linalg``)."""
    o = a.shape[-1]
    factor = jnp.zeros_like(a)
    for j in range(o):
        d = jnp.sqrt(a[j, j] - jnp.sum(factor[j, :j] ** 2))
        column = (a[j + 1:, j] - factor[j + 1:, :j] @ factor[j, :j]) / d
        factor = factor.at[j, j].set(d).at[j + 1:, j].set(column)
    return factor


def forward_solve(factor: jax.Array, b: jax.Array) -> jax.Array:
    """``factor^{-1} b`` for a lower-triangular ``factor [o, o]``, row by row."""
    rows = []
    for i in range(factor.shape[0]):
        done = jnp.stack(rows) if rows else jnp.zeros((0, b.shape[1]), b.dtype)
        rows.append((b[i] - factor[i, :i] @ done) / factor[i, i])
    return jnp.stack(rows)


def polar_factor(t: jax.Array, iterations: int = POLAR_ITERATIONS) -> jax.Array:
    """The orthogonal polar factor U of ``t`` (t = U P, P = (t' t)^{1/2}) by Newton-Schulz,
    X <- X (3 I - X' X) / 2 from X = t / ||t||_F (every singular value in (0, 1]); a zero
    ``t`` gives zero."""
    x = t / jnp.maximum(jnp.linalg.norm(t), jnp.finfo(t.dtype).tiny)
    eye = jnp.eye(t.shape[1], dtype=t.dtype)
    return jax.lax.fori_loop(0, iterations, lambda _, x: 0.5 * x @ (3.0 * eye - x.T @ x), x)


def total_correlation(h1: jax.Array, h2: jax.Array, weight: jax.Array, ridge: float
                      ) -> jax.Array:
    """Andrew et al. sec. 2's corr(H_1, H_2) = ||T||_tr over the samples with ``weight`` 1.

    ||T||_tr = max over orthogonal U of tr(U' T), attained at T's polar factor, so the value is
    tr(sg(U)' T) and its gradient in T is U (Danskin), the gradient Andrew et al. derive from
    T's SVD (U V').

    Args:
      h1, h2: ``[B, o]`` outputs of the two views.
      weight: ``[B]`` 0/1, the samples that have both views.
      ridge: r, added to each covariance's diagonal.

    Returns:
      The sum of the o canonical correlations; 0 where fewer than two samples have weight 1.
    """
    w = weight.astype(h1.dtype)[:, None]
    n = w.sum()
    centred = [(h - (w * h).sum(0, keepdims=True) / jnp.maximum(n, 1.0)) * w
               for h in (h1, h2)]
    scale = 1.0 / jnp.maximum(n - 1.0, 1.0)
    eye = jnp.eye(h1.shape[1], dtype=h1.dtype)
    chol = [cholesky(scale * c.T @ c + ridge * eye) for c in centred]
    cross = scale * centred[0].T @ centred[1]
    t = forward_solve(chol[1], forward_solve(chol[0], cross).T).T  # L_1^{-1} S_12 L_2^{-T}
    # With fewer than two weighted rows every centred row is exactly 0, so t = u = 0: the value
    # and its gradient are 0 without a branch.
    u = jax.lax.stop_gradient(polar_factor(t))
    return jnp.sum(u * t)


def correlation_objective(z: dict, present: jax.Array, modalities, ridge: float) -> jax.Array:
    """The sum over view pairs of ``total_correlation`` on the samples that have both views."""
    columns = range(len(modalities))
    return sum(total_correlation(z[modalities[i]], z[modalities[j]],
                                 present[:, i] & present[:, j], ridge)
               for i, j in itertools.combinations(columns, 2))


def reconstruction(x: jax.Array, recon: jax.Array, present: jax.Array) -> jax.Array:
    """Wang et al.'s ||x - p(z)||^2 (summed over the input), averaged over the present samples."""
    per = ((recon - x.reshape(recon.shape)) ** 2).sum(-1)
    return losses.weighted_mean(per.astype(jnp.float32), present)


# ----------------------------------------------------------------------------------------------
# The network.
# ----------------------------------------------------------------------------------------------


class DccaNet(nnx.Module):
    """Every view's canonical output ``z_m``, DCCAE's decoders and the classifier head."""

    def __init__(self, spec: DatasetSpec, config: ExperimentConfig, *, dtype=None,
                 rngs: nnx.Rngs):
        mc, model = config.method, config.model
        self.names = tuple(spec.modalities)
        sizes = {m: math.prod(s) for m, s in zip(spec.modalities, spec.shapes)}
        if mc.encoder == "network":
            self.encoders = build_encoders(spec, model, dtype=dtype, rngs=rngs)
            widths = {m: self.encoders[m].out_dim for m in self.names}
        else:
            self.encoders = None
            widths = sizes
        self.project = nnx.Dict({m: nnx.Linear(widths[m], mc.cca_dim, dtype=dtype, rngs=rngs)
                                 for m in self.names})
        # DCCAE's decoders z -> hidden -> ReLU -> flattened input (an MLPHead without dropout).
        self.decoders = nnx.Dict(
            {m: MLPHead(mc.cca_dim, model.hidden, sizes[m], 0.0, dtype=dtype, rngs=rngs)
             for m in self.names}) if mc.recon_weight > 0 else None
        self.head = MLPHead(len(self.names) * mc.cca_dim, model.hidden, spec.num_classes,
                            model.dropout, dtype=dtype, rngs=rngs)

    def canonical(self, inputs: dict, *, deterministic: bool, rngs: nnx.Rngs | None = None
                  ) -> dict:
        """``{m: z_m [B, o]}``."""
        out = {}
        for m in self.names:
            x = inputs[m]
            if self.encoders is not None:
                x = encode(self.encoders[m], x, inputs.get(length_key(m)),
                           deterministic=deterministic, rngs=rngs)
            out[m] = self.project[m](x.reshape(x.shape[0], -1))
        return out

    def classify(self, z: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None) -> jax.Array:
        """``head([z_1 p_1; ...; z_M p_M])``: logits ``[B, C]``."""
        fused = jnp.concatenate([masked_features(z[m], present[:, c])
                                 for c, m in enumerate(self.names)], -1)
        return self.head(fused, deterministic=deterministic, rngs=rngs)


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """CCA / DCCA / DCCAE on the Method contract; see the module docstring."""
    mc = config.method
    if spec.num_modalities < 2:
        raise UserError(f"{mc.name} correlates views: it needs at least two, {spec.name} has "
                        f"{spec.num_modalities}")
    if mc.cca_steps > config.train.steps:
        raise UserError(f"method.cca_steps={mc.cca_steps} must not exceed train.steps="
                        f"{config.train.steps}")
    encoder_names(spec, config.model)  # CCA builds no encoder, but a wrong list is an error
    modalities = spec.modalities
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: DccaNet(spec, config, dtype=dtype, rngs=rngs))
    tx1 = make_optimizer(config.optim, max(mc.cca_steps, 1))
    tx2 = make_optimizer(config.optim, max(config.train.steps - mc.cca_steps, 1))

    def cca_loss(params, state: TrainState, batch: Batch, keys: dict):
        module = model.bind(params, state.model_state)
        present = batch["present"]
        z = module.canonical(batch["inputs"], deterministic=False,
                             rngs=nnx.Rngs(dropout=keys["dropout"]))
        # The covariances' Cholesky solves need at least float32 (bfloat16 compute loses them).
        z = {m: v.astype(jnp.promote_types(v.dtype, jnp.float32)) for m, v in z.items()}
        corr = correlation_objective(z, present, modalities, mc.ridge)
        rec = jnp.zeros(())
        if module.decoders is not None:
            rec = sum(reconstruction(batch["inputs"][m],
                                     module.decoders[m](z[m], deterministic=True), present[:, c])
                      for c, m in enumerate(modalities))
        loss = -corr + mc.recon_weight * rec
        return loss, ({"model_state": nnx.state(module, nnx.Not(nnx.Param))},
                      {"correlation": corr, "loss_recon": rec, "loss_ce": jnp.zeros(())})

    def head_loss(params, state: TrainState, batch: Batch, keys: dict):
        module = model.bind(params, state.model_state)
        z = jax.lax.stop_gradient(module.canonical(batch["inputs"], deterministic=True))
        logits = module.classify(z, batch["present"], deterministic=False,
                                 rngs=nnx.Rngs(dropout=keys["dropout"]))
        per = losses.per_example(spec.task, logits, batch["label"])
        loss = losses.weighted_mean(per, batch["present"].any(-1))
        return loss, ({}, {"correlation": jnp.zeros(()), "loss_recon": jnp.zeros(()),
                           "loss_ce": loss})

    def predict(state: TrainState, batch: Batch) -> jax.Array:
        batch = cast_inputs(batch, dtype)
        module = model.bind(state.params, state.model_state)
        z = module.canonical(batch["inputs"], deterministic=True)
        return module.classify(z, batch["present"], deterministic=True).astype(jnp.float32)

    phases = (Phase("correlation", mc.cca_steps, phase_step(0, tx1, cca_loss, dtype)),
              Phase("classifier", None, phase_step(1, tx2, head_loss, dtype)))
    return Method(init=initializer(model, lambda p: (tx1.init(p), tx2.init(p))), phases=phases,
                  predict=predict)
