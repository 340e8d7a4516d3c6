"""RAML: redundancy-adaptive fusion of Gaussian unimodal representations.

Chen et al., "Redundancy-Adaptive Multimodal Learning for Imperfect Data" (papers/001), section
III-B and Algorithm 1. No code was released; the paper's equations are the specification.

Algorithm (one jitted ``train_step``; every choice that depends on data is arithmetic)::

    encoders   mu_m = g^mu_m(f_m(x_m)),  sigma_m^2 = exp(g^s_m(f_m(x_m)))            eq. (1)
               h_m = mu_m + rho * sigma_m,  rho ~ N(0, I)       (reparameterised sample)
    patterns   each training sample is seen under every missing pattern S of the 2^M - 1
               non-empty subsets (section III-A): delta = present & S, missing inputs zero-filled
    fusion     w_m = delta_m (sigma / sigma_m)^2,  1/sigma^2 = sum_m delta_m / sigma_m^2  eq. (4)
               h = sum_m w_m * mu_m          (element-wise; w > 0, sum_m w_m = 1 per element)
    losses     L^M = CE(y, f(h))                                                         eq. (5)
               L^U = sum_m CE(y, f(h_m))                 (f shared with L^M)             eq. (2)
               L^D = sum_m || (sigma'/sigma_m)^2 * mu_m ||_1,
                     1/sigma'^2 = sum_m 1/sigma_m^2      (over ALL modalities, no delta) eq. (3)
               L = L^M + lambda_1 L^U + lambda_2 L^D                                     eq. (6)
               averaged over (sample, pattern) pairs with a non-empty delta
    predict    f(h) with delta = present (missing inputs zero-filled, as in training).

Symbols -> code: f_m: ``encoders`` (mmjax/models/encoders.py: the two-layer MLP for vector
features, LeNet-5 / SMIL's sound CNN on AV-MNIST; section IV-A's LSTM + max-pool and TextCNN on
frame / token sequences, mmjax/models/sequence.py, given the batch's lengths); g^mu_m, g^s_m:
``mu_heads`` / ``logvar_heads`` (linear, D = ``latent_dim`` = 128, "the dimension of the
Gaussian distribution is 128");
f: ``predictors["shared"]``; delta: ``present`` (times the pattern); lambda_1, lambda_2:
``lambda_unimodal``, ``lambda_sparsity``. Optimiser (configs): Adam, lr 1e-3, weight decay 5e-4
(added to the gradient, PyTorch Adam's convention), batch 128 (section IV-A).

Switches (ablations of the paper): ``weighting`` (Table V: ``identical`` = plain mean over the
present modalities, ``fixed`` = learned element-wise weights shared by all samples, softmax over
the present modalities; ``adaptive`` = eq. 4, RAML); ``lambda_unimodal=0`` / ``lambda_sparsity=0``
(Table VI); ``shared_predictor=False`` (Figure 4 left: one predictor per modality for L^U and one
for the fused h); ``augment="none"`` (Table IV: train on the batch's own patterns only).

Where the paper is silent (our choices, documented):
- sigma is parameterised by its log-variance ``s = log sigma^2`` (a linear head). Then
  ``(sigma/sigma_m)^2 = softmax_m(-s_m)`` over the modalities in the normaliser, which is positive,
  sums to one and is computed without overflow. The ``fixed``/``identical`` weightings use their
  own weights in L^D in place of ``(sigma'/sigma_m)^2``.
- Augmenting with every pattern is computed without replicating the batch: the encoders run once
  on the batch plus one all-zero row per modality (the encoding of a zero-filled input), and each
  pattern takes, per modality, the sample's encoding where the modality is kept and the zero
  row's encoding where it is dropped. This equals feeding the 2^M - 1 zero-filled copies through
  the network, except that BatchNorm batch statistics (sound CNN) are those of the B real rows
  plus the zero row, and dropout masks and rho are shared by the copies of a sample. A dropped
  sequence modality is an empty sequence (the zero row has length 0): its encoding is one constant.
- L^U (eq. 2 and Algorithm 1) sums over all M modalities, a dropped one contributing the CE of its
  zero-filled input's sample (``unimodal_loss="all"``, the default, literal); ``"present"`` sums
  over the kept modalities only. L^D's normaliser runs over all modalities (Algorithm 1's
  ``1/sigma^2 = sum_m 1/sigma_m^2``, no delta), dropped ones with their zero-input encodings.
- ``augment="sampled"`` (used for mfeat's six views, 63 patterns) draws a few patterns per sample
  and step instead of all of them; its expected loss is the all-pattern loss.
- A training sample that already lacks a modality joins the patterns restricted to what it has
  (S & present); copies left with no modality are skipped.
- The predictor f is linear (the theorem's theta) unless ``predictor_hidden > 0``.
"""

from __future__ import annotations

import typing
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mmjax import losses
from mmjax.config import NON_NEGATIVE, POSITIVE, ExperimentConfig, MethodConfig, ModelConfig, frozen
from mmjax.data import missing
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, TrainState, cast_inputs, compute_dtype,
                                make_optimizer, one_phase, step_keys)
from mmjax.methods.supervised import gradient_step, initializer
from mmjax.models.encoders import build_encoders, encode
from mmjax.models.fusion import MLPHead

Weighting = Literal["adaptive", "fixed", "identical"]
Augment = Literal["all_patterns", "sampled", "none"]
WEIGHTINGS, AUGMENTS = typing.get_args(Weighting), typing.get_args(Augment)


@frozen
class RamlConfig(MethodConfig):
    """RAML's hyper-parameters and ablation switches; the defaults are the paper's method.

    Attributes:
      latent_dim: D, the dimension of each unimodal Gaussian (paper: 128).
      lambda_unimodal: lambda_1, weight of L^U (eq. 6); 0 = Table VI without L^U.
      lambda_sparsity: lambda_2, weight of L^D (eq. 6); 0 = Table VI without L^D.
      weighting: ``adaptive`` (eq. 4, RAML), ``fixed`` or ``identical`` (Table V).
      shared_predictor: one predictor f for L^U and L^M (paper); False = Figure 4's separate
        predictors (one per modality plus one for the fused vector).
      augment: ``all_patterns`` (section III-A: every sample under every non-empty missing
        pattern), ``sampled`` (each sample under ``num_patterns`` patterns drawn uniformly from
        the 2^M - 1 each step: an unbiased estimate of the same loss, for M > 3 where 2^M - 1
        copies cost too much) or ``none`` (the batch's own ``present`` only).
      num_patterns: ``sampled``: patterns per sample per step.
      unimodal_loss: ``all`` (eq. 2 literally: every modality, a dropped one as its zero-filled
        input) or ``present`` (only the modalities a copy keeps).
      predictor_hidden: 0 = linear predictor f; > 0 = an MLP with that hidden width.
    """

    name: str = "raml"
    latent_dim: Annotated[int, POSITIVE] = 128
    lambda_unimodal: Annotated[float, NON_NEGATIVE] = 1.0
    lambda_sparsity: Annotated[float, NON_NEGATIVE] = 0.01
    weighting: Weighting = "adaptive"
    shared_predictor: bool = True
    augment: Augment = "all_patterns"
    num_patterns: int = 3
    unimodal_loss: Literal["all", "present"] = "all"
    predictor_hidden: Annotated[int, NON_NEGATIVE] = 0


# ----------------------------------------------------------------------------------------------
# Fusion weights and losses as plain functions (tested directly).
# ----------------------------------------------------------------------------------------------


def precision_weights(logvar: jax.Array, mask: jax.Array) -> jax.Array:
    """``(sigma / sigma_m)^2`` over the modalities in ``mask`` (eq. 4's omega; eq. 3 with all on).

    Args:
      logvar: ``[..., M, D]`` log-variances ``log sigma_m^2``.
      mask: ``bool[..., M]``; modalities outside it get weight 0.

    Returns:
      ``[..., M, D]``, ``(1/sigma_m^2) / sum_{k in mask} 1/sigma_k^2``: a softmax of ``-logvar``
      over the masked modalities, positive on them and summing to one per element; all zero
      where the mask is empty.
    """
    return masked_softmax(-logvar, mask)


def masked_softmax(logits: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over axis -2 (modalities) of ``logits [..., M, D]``, restricted to ``mask``."""
    keep = mask[..., None]
    top = jnp.max(jnp.where(keep, logits, -jnp.inf), axis=-2, keepdims=True)
    top = jnp.where(jnp.isfinite(top), top, 0.0)
    e = jnp.where(keep, jnp.exp(logits - top), 0.0)
    total = e.sum(-2, keepdims=True)
    return e / jnp.where(total > 0, total, 1.0)


def identical_weights(mask: jax.Array, dim: int, dtype=jnp.float32) -> jax.Array:
    """Table V "identical": ``delta_m / sum_k delta_k`` broadcast to ``[..., M, D]``."""
    m = mask.astype(dtype)
    w = m / jnp.maximum(m.sum(-1, keepdims=True), 1.0)
    return jnp.broadcast_to(w[..., None], (*mask.shape, dim))


def fuse(weights: jax.Array, mu: jax.Array) -> jax.Array:
    """Eq. (4): ``h = sum_m w_m * mu_m``; ``[..., M, D] x [..., M, D] -> [..., D]``."""
    return (weights * mu).sum(-2)


def sparsity_loss(weights_all: jax.Array, mu: jax.Array) -> jax.Array:
    """Eq. (3): ``sum_m || w_m * mu_m ||_1`` per sample, with ``w`` normalised over ALL modalities.

    Args:
      weights_all: ``[..., M, D]`` ``(sigma'/sigma_m)^2`` with ``1/sigma'^2 = sum_m 1/sigma_m^2``.
      mu: ``[..., M, D]`` means.

    Returns:
      ``[...]``: the L1 norms summed over modalities and elements.
    """
    return jnp.abs(weights_all * mu).sum((-2, -1))


def sample_patterns(key: jax.Array, num: int, present: jax.Array) -> jax.Array:
    """``num`` missing patterns per sample, each uniform over the 2^M - 1 non-empty subsets.

    Returns ``bool[num, B, M]``, the patterns intersected with ``present``.
    """
    b, m = present.shape
    code = jax.random.randint(key, (num, b), 1, 2 ** m)  # a non-empty subset as M bits
    bits = (code[..., None] >> jnp.arange(m)[None, None, :]) & 1
    return (bits == 1) & present[None]


# ----------------------------------------------------------------------------------------------
# The network.
# ----------------------------------------------------------------------------------------------


class RamlNet(nnx.Module):
    """Encoders with Gaussian heads, optional fixed fusion logits, and the predictor(s).

    ``__call__`` returns ``(mu, logvar)`` as ``[B, M, D]`` (modalities in dataset order); with
    ``zero_row`` it also returns the encodings of an all-zero input, ``[M, D]`` each.
    """

    def __init__(self, spec: DatasetSpec, model: ModelConfig, mc: RamlConfig, *, dtype=None,
                 rngs: nnx.Rngs):
        self.names = tuple(spec.modalities)
        d = mc.latent_dim
        self.encoders = build_encoders(spec, model, dtype=dtype, rngs=rngs)
        self.mu_heads = nnx.Dict({m: nnx.Linear(self.encoders[m].out_dim, d, dtype=dtype,
                                                rngs=rngs) for m in self.names})
        self.logvar_heads = nnx.Dict({m: nnx.Linear(self.encoders[m].out_dim, d, dtype=dtype,
                                                    rngs=rngs) for m in self.names})
        if mc.weighting == "fixed":
            # Table V "fixed": one learned logit per (modality, element), equal weights at init.
            self.fixed_logits = nnx.Param(jnp.zeros((spec.num_modalities, d)))
        keys = ("shared",) if mc.shared_predictor else ("fused", *self.names)
        out = spec.num_classes

        def predictor():
            if mc.predictor_hidden:
                return MLPHead(d, mc.predictor_hidden, out, model.dropout, dtype=dtype, rngs=rngs)
            return nnx.Linear(d, out, dtype=dtype, rngs=rngs)

        self.predictors = nnx.Dict({k: predictor() for k in keys})
        self.shared = mc.shared_predictor

    def predictor(self, which: str):
        """The predictor for ``which`` (``"fused"`` or a modality); the shared one if shared."""
        return self.predictors["shared" if self.shared else which]

    def predict(self, which: str, h, *, deterministic: bool, rngs: nnx.Rngs | None = None):
        """Applies the predictor of ``which`` to ``h [..., D]`` (any leading axes)."""
        f = self.predictor(which)
        lead = h.shape[:-1]
        flat = h.reshape(-1, h.shape[-1])
        if isinstance(f, MLPHead):
            y = f(flat, deterministic=deterministic, rngs=rngs)
        else:
            y = f(flat)
        return y.reshape(*lead, y.shape[-1])

    def __call__(self, inputs: dict, *, zero_row: bool = False, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        mus, logvars, mus0, logvars0 = [], [], [], []
        for m in self.names:
            x, lengths = inputs[m], inputs.get(length_key(m))  # lengths: sequence modalities
            if zero_row:
                x = jnp.concatenate([x, jnp.zeros((1, *x.shape[1:]), x.dtype)], 0)
                if lengths is not None:  # the zero-filled input is an empty sequence
                    lengths = jnp.concatenate([lengths, jnp.zeros((1,), lengths.dtype)])
            feat = encode(self.encoders[m], x, lengths, deterministic=deterministic, rngs=rngs)
            mu, logvar = self.mu_heads[m](feat), self.logvar_heads[m](feat)
            if zero_row:
                mus0.append(mu[-1])
                logvars0.append(logvar[-1])
                mu, logvar = mu[:-1], logvar[:-1]
            mus.append(mu)
            logvars.append(logvar)
        out = (jnp.stack(mus, 1), jnp.stack(logvars, 1))
        if zero_row:
            return out + (jnp.stack(mus0, 0), jnp.stack(logvars0, 0))
        return out


def check_config(config: ExperimentConfig) -> None:
    """``UserError`` for switches that cannot run."""
    mc = config.method
    if mc.augment == "sampled" and mc.num_patterns < 1:
        raise UserError(f"method.num_patterns must be >= 1, got {mc.num_patterns}")


def raml_net(config: ExperimentConfig, spec: DatasetSpec) -> NNXModel:
    """RAML's network as pure init/apply functions."""
    dtype = compute_dtype(config.train.dtype)
    return NNXModel(lambda rngs: RamlNet(spec, config.model, config.method, dtype=dtype,
                                         rngs=rngs))


def _weights(mc: RamlConfig, params, logvar: jax.Array, mask: jax.Array) -> jax.Array:
    """The fusion weights of ``mc.weighting`` for ``logvar [..., M, D]`` and ``mask [..., M]``."""
    if mc.weighting == "adaptive":
        return precision_weights(logvar, mask)
    if mc.weighting == "identical":
        return identical_weights(mask, logvar.shape[-1], logvar.dtype)
    logits = jnp.asarray(params["fixed_logits"][...])  # an nnx Variable or a plain array
    return masked_softmax(jnp.broadcast_to(logits.astype(logvar.dtype), logvar.shape), mask)


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """RAML on the Method contract; see the module docstring."""
    check_config(config)
    mc = config.method
    modalities = spec.modalities
    tx = make_optimizer(config.optim, config.train.steps)
    dtype = compute_dtype(config.train.dtype)
    model = raml_net(config, spec)
    num_mod = len(modalities)
    # [P, M]: every non-empty pattern (section III-A), or the batch's own pattern only.
    patterns = (missing.all_subsets(modalities)[1] if mc.augment == "all_patterns"
                else np.ones((1, num_mod), bool))
    num_copies = mc.num_patterns if mc.augment == "sampled" else len(patterns)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        keys = step_keys(state, "dropout", "rho", "rho0", "patterns")
        batch = cast_inputs(batch, dtype)
        present, label = batch["present"], batch["label"]
        if mc.augment == "sampled":
            delta = sample_patterns(keys["patterns"], num_copies, present)  # [P, B, M]
        else:
            delta = jnp.asarray(patterns)[:, None, :] & present[None]  # [P, B, M]
        valid = delta.any(-1)  # [P, B]

        def objective(params):
            module = model.bind(params, state.model_state)
            rngs = nnx.Rngs(dropout=keys["dropout"])
            mu, logvar, mu0, logvar0 = module(batch["inputs"], zero_row=True,
                                              deterministic=False, rngs=rngs)
            model_state = nnx.state(module, nnx.Not(nnx.Param))
            mu, logvar = mu.astype(jnp.float32), logvar.astype(jnp.float32)
            mu0, logvar0 = mu0.astype(jnp.float32), logvar0.astype(jnp.float32)
            # Per pattern, a dropped modality carries its zero-filled input's encoding.
            keep = delta[..., None]  # [P, B, M, 1]
            mu_p = jnp.where(keep, mu[None], mu0[None, None])  # [P, B, M, D]
            logvar_p = jnp.where(keep, logvar[None], logvar0[None, None])

            # L^M (eq. 5) on the fused h of eq. (4).
            w = _weights(mc, params, logvar_p, delta)
            h = fuse(w, mu_p)  # [P, B, D]
            logits = module.predict("fused", h, deterministic=False, rngs=rngs)
            lm = losses.per_example(spec.task, logits.reshape(-1, logits.shape[-1]),
                                    jnp.tile(label, (num_copies,) + (1,) * (label.ndim - 1))
                                    ).reshape(valid.shape)  # [P, B]

            # L^U (eq. 2): CE of reparameterised samples h_m = mu_m + rho * sigma_m, through f.
            rho = jax.random.normal(keys["rho"], mu.shape)
            rho0 = jax.random.normal(keys["rho0"], mu.shape)
            h_m = mu + rho * jnp.exp(0.5 * logvar)  # [B, M, D]
            h_0 = mu0[None] + rho0 * jnp.exp(0.5 * logvar0)[None]  # [B, M, D]
            ce, ce0 = [], []
            for c, m in enumerate(modalities):
                for hs, out in ((h_m, ce), (h_0, ce0)):
                    y = module.predict(m, hs[:, c], deterministic=False, rngs=rngs)
                    out.append(losses.per_example(spec.task, y, label))
            ce, ce0 = jnp.stack(ce, -1), jnp.stack(ce0, -1)  # [B, M]
            if mc.unimodal_loss == "all":
                lu = jnp.where(delta, ce[None], ce0[None]).sum(-1)  # [P, B]
            else:
                lu = jnp.where(delta, ce[None], 0.0).sum(-1)

            # L^D (eq. 3): weights normalised over ALL modalities (no delta).
            all_on = jnp.ones(delta.shape, bool)
            ld = sparsity_loss(_weights(mc, params, logvar_p, all_on), mu_p)  # [P, B]

            weight = valid.astype(jnp.float32)
            mean = lambda v: losses.weighted_mean(v.reshape(-1), weight.reshape(-1))
            metrics = {"loss_fused": mean(lm), "loss_unimodal": mean(lu),
                       "loss_sparsity": mean(ld)}
            loss = (metrics["loss_fused"] + mc.lambda_unimodal * metrics["loss_unimodal"]
                    + mc.lambda_sparsity * metrics["loss_sparsity"])
            # Mean fusion weight of each modality on the batch's own (unaugmented) pattern.
            w_own = _weights(mc, params, logvar, present)  # [B, M, D]
            for c, m in enumerate(modalities):
                metrics[f"weight_{m}"] = losses.weighted_mean(w_own[:, c].mean(-1),
                                                              present[:, c])
            return loss, ({"model_state": model_state}, metrics)

        return gradient_step(state, tx, objective)

    inspect = make_inspect(config, spec)

    def predict(state: TrainState, batch: Batch) -> jax.Array:
        return inspect(state, batch)["logits"]

    return Method(init=initializer(model, tx.init), phases=one_phase(train_step),
                  predict=predict)


def make_inspect(config: ExperimentConfig, spec: DatasetSpec):
    """``inspect(state, batch) -> {"mu", "logvar", "weights", "logits"}`` in eval mode.

    ``mu``, ``logvar`` and the fusion ``weights`` (eq. 4 over ``batch["present"]``) are
    ``[B, M, D]``, ``logits`` ``[B, C]``; ``predict`` returns ``logits``. Used for Figure 5's
    weight maps. ``state`` is a state of ``make(config, spec)``.
    """
    check_config(config)
    mc = config.method
    dtype = compute_dtype(config.train.dtype)
    model = raml_net(config, spec)

    def inspect(state: TrainState, batch: Batch) -> dict:
        batch = cast_inputs(batch, dtype)
        module = model.bind(state.params, state.model_state)
        mu, logvar = module(batch["inputs"], deterministic=True)
        mu, logvar = mu.astype(jnp.float32), logvar.astype(jnp.float32)
        w = _weights(mc, state.params, logvar, batch["present"])
        logits = module.predict("fused", fuse(w, mu), deterministic=True)
        return {"mu": mu, "logvar": logvar, "weights": w, "logits": logits.astype(jnp.float32)}

    return inspect
