"""RedCore: VIB cross-modal representation learning with relative-advantage supervision regulation.

Sun et al., "RedCore: Relative Advantage Aware Cross-Modal Representation Learning for Missing
Modalities with Imbalanced Missing Rates", AAAI 2024 (papers/000). Released code:
``sunjunaimer/RedCore`` (official-code-notes §1). Imperfect-data training: a missing input is
never read (it is replaced by a constant zero before the encoder, so neither its value nor its
gradient enters the step) and never used as supervision.

Algorithm (one jitted ``train_step``; M modalities, p[b, m] = present)::

    senc_m     (mu_m, logvar_m) = Gauss_m(f_m(x_m)),  zbar_m = mu_m + eps * exp(logvar_m / 2)
               (eq. 3, reparameterised; zbar_m := 0 where m is missing)
    xenc_m     zhat_m = RAE_m([zbar_m' for m' != m])   (residual autoencoder of the other
               modalities' latents, missing ones contributing zeros: "other *present* modalities")
    eq. (1)    z_m = p_m ? zbar_m : zhat_m;   z_{M+1} = [z_1; ...; z_M]
    heads      logits_m = dec_m(z_m) (m <= M), logits_{M+1} = dec_{M+1}(z_{M+1})
    eq. (3)    L_VIB = sum_{m<=M+1} CE_m + gamma * sum_{m<=M} KL_m       (``gamma_on="kl"``)
               KL_m = sum_b p_bm KL(N(mu_bm, exp logvar_bm) || N(0, I)) / B
    L_MSE^m    sum_b p_bm ||zbar_bm - zhat_bm||^2 / N_m,  N_m = sum_b p_bm  (present samples only)
    loss       L = L_VIB + sum_m eta_m L_MSE^m
    Red        MAL_m <- (1 - beta) MAL_m + beta L_MSE^m                (eq. 10, every step)
               r = (mean MAL - MAL) / mean MAL                         (eqs. 4-5)
               if step % K == 0: eta <- Pro_Gamma1[eta - alpha1 r]     (eq. 9, Algorithm 1)
    predict    logits_{M+1} with zbar_m = mu_m (``test_latent="mean"``) or sampled.

Algorithm 1 computes r(theta_{sK}) and updates eta *before* the K parameter updates of block s;
here the step computes the losses once, updates MAL and (when step % K == 0) eta from them, and
differentiates L with the new eta (stop-gradient: eta is the upper-level variable). Every-K is
arithmetic on ``state.step`` (``jnp.where``), eta and MAL live in ``state.extra``; so does
gamma when ``mmjax sweep`` packs points that differ in it (``traceable``), each replica its own.

Ablations (paper, "Ablation Studies", Table 2), as switches of the one registry name ``redcore``:
``regulate=False`` is *Core* (eta fixed and equal, eta_m = xi2 / sqrt(M), on Gamma_1);
``unimodal_ce=False`` is *Red* (no per-modality VIB prediction: the CE sum runs over m = M+1 only).
MAL and r are computed and logged in every variant (Figure 5 plots r for Core too).

Paper <-> released code (official-code-notes §1.4, §1.7); defaults are the paper's, and
``released(config)`` sets every released switch at once (the ``:released`` config variant; checked
against numbers recorded from the released code in tests/test_golden_redcore.py):
- ``projection``: ``exact`` Euclidean projection onto Gamma_1 (eq. 9) | ``clamp_normalize``
  (released: max(eta, xi1) then rescale to norm xi2; can leave a component below xi1).
- ``alpha_schedule``: ``constant`` alpha1 on eta (paper) | ``released``: the code keeps a
  unit-norm beta = eta / xi2 (its ``mse_weight`` 0.15 = xi2 multiplies beta) and steps it by
  alpha1 * growth^(floor(step / alpha_every) + 1) (x1.5 every 500 iterations from iteration 0),
  which is a step of xi2 * alpha1 * growth^(...) on eta.
- ``eta_init``: ``gamma1`` (eta_0 = xi2 / sqrt(M), on Gamma_1) | ``released`` (beta_0 = 1, i.e.
  eta_0 = xi2 * 1, not normalised; the step-0 update normalises it).
- ``mal_init``: ``first`` (the first moving average is the first loss) | ``zero`` (released: the
  averages start at 0, so the first is beta * L_0 = 0.7 L_0).
- ``test_latent``: ``mean`` (paper silent; deterministic predictions) | ``sample`` (released code
  samples z at test time; here with a fixed key folded from the state's key).
- ``gamma_on``: ``kl`` (released code and Alemi et al.'s VIB: the coefficient weighs the KL) |
  ``ce`` (eq. 2-3 read literally: KL + gamma * CE, which with gamma = 0.008 lets the KL dominate).
  The released term is -lambda * sum(1 + logvar - mu^2 - exp(logvar)) / B with lambda = 8e-4,
  which is 2 * lambda = 1.6e-3 times the KL: the released gamma on the KL is 1.6e-3.
- ``xenc_slope``, ``xenc_latent_act``, ``xenc_layers``: the cross-modal encoder's LeakyReLU
  slope 0.2 with an activated latent, widths (128, 64, 32) (ours / the paper's RA-layers) |
  released ``ResidualXE``: slope 0.01 (PyTorch's default), a linear latent, widths 256-128-64.
- ``cls_layers``: ``()`` = one hidden layer of ``model.hidden`` per head | released (128, 128):
  ``FcClassifier`` with two hidden ReLU layers.
- ``missing_latent``: ``zero`` (a missing modality's zbar is 0, so the cross-modal encoders see
  only present modalities) | ``encoded`` (released: the encoder's sampled latent of the zeroed
  input, which is not 0, feeds the cross-modal encoders).
- ``transformer``: ``paper`` | ``released``: for modalities whose ``model.encoders`` entry is
  ``transformer``, ``TransformerEncoder(form="released")`` (mmjax/models/sequence.py: no
  positions, a LayerNorm on each branch output, unmasked mean over the padding, sigmoid), whose
  output is the Gaussian head's input (``latent_dim`` = ``model.hidden`` in the release).
- ``clip_per_network``: 0 (off) | 1.0 (released: ``clip_grad_norm_(net, 1.0)`` separately for
  each network: per modality its encoder with its Gaussian head, its cross-modal encoder, its head,
  and the joint head).
Not reproduced: the released code averages CE over every sample (mmjax over samples with at least
one modality; equal unless a sample has none) and fails with NaN when a batch has no sample of a
modality (0/0 in its reconstruction loss; mmjax keeps the previous moving average).

Our choices where the paper is silent: the KL of z_{M+1} (a concatenation of the per-modality
latents) is counted once, as the sum of the present modalities' KL terms (the released code does
the same); the MSE target zbar_m is not detached (released code); the CE terms average over
samples with at least one modality (all, when ``missing.forbid_empty``); each self-modal encoder
is the dataset's encoder (MLP for vectors, LeNet-5 / sound CNN for AV-MNIST) followed by a linear
Gaussian head ``feature -> (mu, logvar)``; the residual autoencoder's encoder layers use
LeakyReLU(0.2), its decoder layers ReLU with a linear output back to the input width, and a
transition Linear(in, in) -> ReLU -> Linear(in, latent) as in MMIN's ``ResidualXE``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, ClassVar, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax import losses
from mmjax.config import (NON_NEGATIVE, POSITIVE, ExperimentConfig, MethodConfig, ModelConfig,
                          Range, frozen)
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.methods.base import (TRACED, Batch, Method, NNXModel, TrainState, cast_inputs,
                                compute_dtype, init_state, make_optimizer, one_phase, step_keys)
from mmjax.methods.redcore_projection import (check_constraints, moving_average,
                                              relative_advantage, update_eta)
from mmjax.methods.supervised import gradient_step
from mmjax.models.encoders import encode, encoder_names, make_encoder
from mmjax.models.fusion import MLPHead
from mmjax.models.residual_ae import CascadedResidualAE
from mmjax.models.sequence import TransformerEncoder


@frozen
class RedCoreConfig(MethodConfig):
    """RedCore's hyper-parameters and switches; defaults are the paper's (Implementation Details).

    Attributes:
      latent_dim: d, the width of every representation z_m (paper 128).
      xenc_layers: hidden widths of one residual-autoencoder block's encoder, mirrored by its
        decoder (paper RA-layers 256-128-64-32-64-128-256 with a 256-d input: (128, 64, 32)).
      xenc_blocks: residual autoencoder blocks per cross-modal encoder (paper 5).
      gamma: the VIB coefficient (paper 0.008; released 1.6e-3 on the KL, see the module doc).
      gamma_on: ``kl`` (coefficient on the KL, released/Alemi) | ``ce`` (eq. 2-3 literally).
      unimodal_ce: per-modality VIB prediction (False = the *Red* ablation).
      regulate: update eta by eq. (9) (False = the *Core* ablation, eta fixed and equal).
      beta: moving-average weight of the new loss, eq. (10) (paper 0.7).
      every: K, steps between eta updates (paper 3).
      alpha: alpha1, the step size of eq. (9) (paper 0.1).
      xi1: lower bound of every eta_m (paper 0.015).
      xi2: L2 norm of eta (paper 0.15; p = 2).
      projection: ``exact`` (paper) | ``clamp_normalize`` (released).
      alpha_schedule: ``constant`` (paper) | ``released`` (x ``alpha_growth`` every
        ``alpha_every`` steps, starting at step 0, on beta = eta / xi2).
      alpha_growth: released schedule factor (1.5).
      alpha_every: released schedule period in steps (500).
      test_latent: ``mean`` (default) | ``sample`` (released).
      eta_init: ``gamma1`` (xi2 / sqrt(M) each) | ``released`` (xi2 each).
      mal_init: ``first`` (first average = first loss) | ``zero`` (released).
      xenc_slope: the cross-modal encoders' LeakyReLU slope (ours 0.2; released 0.01).
      xenc_latent_act: activate their latent layer (ours True; released False).
      cls_layers: hidden widths of every head; ``()`` = one layer of ``model.hidden``
        (released (128, 128)).
      missing_latent: ``zero`` | ``encoded`` (released; see the module doc).
      transformer: ``paper`` | ``released`` form of ``transformer`` self-modal encoders.
      clip_per_network: per-network gradient-norm clipping (0 = off; released 1.0).
    """

    name: str = "redcore"
    latent_dim: Annotated[int, POSITIVE] = 128
    xenc_layers: tuple[int, ...] = (128, 64, 32)
    xenc_blocks: Annotated[int, POSITIVE] = 5
    # A sweep over gamma packs into one program: the step reads it from the state when traced.
    traceable: ClassVar[tuple[str, ...]] = ("gamma",)
    gamma: float = 0.008
    gamma_on: Literal["kl", "ce"] = "kl"
    unimodal_ce: bool = True
    regulate: bool = True
    beta: Annotated[float, Range(0, 1, low_open=True)] = 0.7
    every: Annotated[int, POSITIVE] = 3
    alpha: float = 0.1
    xi1: float = 0.015
    xi2: float = 0.15
    projection: Literal["exact", "clamp_normalize"] = "exact"  # redcore_projection.PROJECTIONS
    alpha_schedule: Literal["constant", "released"] = "constant"
    alpha_growth: float = 1.5
    alpha_every: Annotated[int, POSITIVE] = 500
    test_latent: Literal["mean", "sample"] = "mean"
    eta_init: Literal["gamma1", "released"] = "gamma1"
    mal_init: Literal["first", "zero"] = "first"
    xenc_slope: float = 0.2
    xenc_latent_act: bool = True
    cls_layers: Annotated[tuple[int, ...], POSITIVE] = ()
    missing_latent: Literal["zero", "encoded"] = "zero"
    transformer: Literal["paper", "released"] = "paper"
    clip_per_network: Annotated[float, NON_NEGATIVE] = 0.0


def released(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with every switch that makes RedCore the released code (the ``:released``
    variant): clamp-normalise, the beta step schedule, beta_0 = 1, moving averages from 0, gamma
    1.6e-3 on the KL (the released 8e-4 on twice the KL), sampled test latents, ``ResidualXE``
    (slope 0.01, linear latent, 256-128-64, 5 blocks), heads 128-128, encoded latents of missing
    inputs, the released Transformer form, per-network clipping at 1. The optimiser and the widths
    of the self-modal encoders stay the config's."""
    method = dataclasses.replace(
        config.method, projection="clamp_normalize", alpha_schedule="released",
        eta_init="released", mal_init="zero", gamma=1.6e-3, gamma_on="kl", test_latent="sample",
        xenc_layers=(256, 128, 64), xenc_blocks=5, xenc_slope=0.01, xenc_latent_act=False,
        cls_layers=(128, 128), missing_latent="encoded", transformer="released",
        clip_per_network=1.0, beta=0.7, every=3, alpha=0.1, alpha_growth=1.5, alpha_every=500)
    return dataclasses.replace(config, method=method)


def check_config(mc: RedCoreConfig, spec: DatasetSpec) -> None:
    """``UserError`` for settings that cannot run."""
    if spec.num_modalities < 2:
        raise UserError("redcore needs at least two modalities (cross-modal encoders)")
    if spec.task != "classification":
        raise UserError(f"redcore supports classification datasets, {spec.name} is {spec.task}")
    check_constraints(spec.num_modalities, mc.xi1, mc.xi2)


# ----------------------------------------------------------------------------------------------
# The network.
# ----------------------------------------------------------------------------------------------


class ResidualXE(CascadedResidualAE):
    """Cross-modal encoder: ``blocks`` residual autoencoder blocks, then a transition to ``out``.

    MMIN's ``ResidualXE``: x_in = x, x_out = 0; per block x_in <- x_in + x_out, x_out <-
    dec(enc(x_in)); finally transition(x_in + x_out), transition = Linear(in, in) -> ReLU ->
    Linear(in, out). The shared ``models.residual_ae.CascadedResidualAE``, its encoder layers
    activated by LeakyReLU(``slope``) (the latent too with ``latent_act``: ours 0.2 and True,
    released 0.01 and False); returns the transition's output only.
    """

    def __init__(self, in_dim: int, layers: tuple[int, ...], blocks: int, out_dim: int, *,
                 slope: float = 0.2, latent_act: bool = True, dtype=None, rngs: nnx.Rngs):
        super().__init__(in_dim, layers, blocks, out_dim, slope=slope, latent_act=latent_act,
                         dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return super().__call__(x)[0]


class FcClassifier(nnx.Module):
    """The released heads: ``in -> layers[0] -> ... -> layers[-1] -> out``, ReLU and dropout
    after every hidden layer (RedCore's ``FcClassifier`` with ``cls_layers``)."""

    def __init__(self, in_dim: int, layers: tuple[int, ...], out_dim: int, dropout: float, *,
                 dtype=None, rngs: nnx.Rngs):
        widths = (in_dim, *layers)
        self.hidden = nnx.List([nnx.Linear(a, b, dtype=dtype, rngs=rngs)
                                for a, b in zip(widths, widths[1:])])
        self.out = nnx.Linear(widths[-1], out_dim, dtype=dtype, rngs=rngs)
        self.drop = nnx.Dropout(dropout)

    def __call__(self, x, *, deterministic: bool, rngs: nnx.Rngs | None = None):
        for layer in self.hidden:
            x = self.drop(jax.nn.relu(layer(x)), deterministic=deterministic, rngs=rngs)
        return self.out(x)


def latent_noise(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    """epsilon ~ N(0, I) of the reparameterisation (one function, so a test can supply the
    released code's draws)."""
    return jax.random.normal(key, shape, dtype)


def _encoder(name: str, shape, model: ModelConfig, mc: RedCoreConfig, *, dtype, rngs):
    """The self-modal encoder of one modality (the released Transformer form if asked)."""
    if name == "transformer" and mc.transformer == "released":
        return TransformerEncoder(shape[1], model.hidden, width=model.hidden, layers=3, heads=8,
                                  dropout=model.dropout, form="released", dtype=dtype, rngs=rngs)
    return make_encoder(name, shape, hidden=model.hidden, out_dim=model.feature_dim,
                        dropout=model.dropout, dtype=dtype, rngs=rngs)


class RedCoreNet(nnx.Module):
    """Self-modal variational encoders, cross-modal encoders and the M + 1 heads.

    ``__call__(inputs, present, noise_key=None)`` returns a dict with per-modality ``mu``,
    ``logvar``, ``zbar``, ``zhat``, ``z``, ``logits`` (lists in modality order) and ``joint``
    (the logits of z_{M+1}). ``noise_key=None`` uses the mean latent.
    """

    def __init__(self, spec: DatasetSpec, model: ModelConfig, mc: RedCoreConfig, *, dtype=None,
                 rngs: nnx.Rngs):
        names = encoder_names(spec, model)
        d, m = mc.latent_dim, spec.num_modalities
        self.modalities = tuple(spec.modalities)  # iterate this, never the (sorted) nnx.Dicts
        self.encoders = nnx.Dict({
            mod: _encoder(names[c], spec.shapes[c], model, mc, dtype=dtype, rngs=rngs)
            for c, mod in enumerate(spec.modalities)})
        self.gauss = nnx.Dict({mod: nnx.Linear(self.encoders[mod].out_dim, 2 * d, dtype=dtype,
                                               rngs=rngs) for mod in spec.modalities})
        self.xenc = nnx.Dict({mod: ResidualXE((m - 1) * d, tuple(mc.xenc_layers), mc.xenc_blocks,
                                              d, slope=mc.xenc_slope,
                                              latent_act=mc.xenc_latent_act, dtype=dtype,
                                              rngs=rngs)
                              for mod in spec.modalities})

        def head(in_dim):
            if mc.cls_layers:
                return FcClassifier(in_dim, tuple(mc.cls_layers), spec.num_classes,
                                    model.dropout, dtype=dtype, rngs=rngs)
            return MLPHead(in_dim, model.hidden, spec.num_classes, model.dropout, dtype=dtype,
                           rngs=rngs)

        self.heads = nnx.Dict({mod: head(d) for mod in spec.modalities})
        self.joint = head(m * d)
        self.missing_latent = mc.missing_latent

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None, noise_key: jax.Array | None = None):
        mods = self.modalities
        out = {k: [] for k in ("mu", "logvar", "zbar", "zhat", "z", "logits")}
        keys = (jax.random.split(noise_key, len(mods)) if noise_key is not None
                else [None] * len(mods))
        for c, mod in enumerate(mods):
            p = present[:, c]
            x = inputs[mod]
            # A missing input is replaced by a constant: its value and gradient never enter.
            x = jnp.where(p.reshape((-1,) + (1,) * (x.ndim - 1)), x, jnp.zeros_like(x))
            # Sequence encoders also get the valid lengths (mmjax/models/sequence.py).
            f = encode(self.encoders[mod], x, inputs.get(length_key(mod)),
                       deterministic=deterministic, rngs=rngs)
            mu, logvar = jnp.split(self.gauss[mod](f), 2, axis=-1)
            z = mu if keys[c] is None else (
                mu + latent_noise(keys[c], mu.shape, mu.dtype) * jnp.exp(0.5 * logvar))
            out["mu"].append(mu)
            out["logvar"].append(logvar)
            # eq. (3), zero where missing (released: the latent of the zeroed input)
            out["zbar"].append(z if self.missing_latent == "encoded"
                               else jnp.where(p[:, None], z, 0.0))
        for c, mod in enumerate(mods):
            others = jnp.concatenate([out["zbar"][o] for o in range(len(mods)) if o != c], -1)
            zhat = self.xenc[mod](others)
            out["zhat"].append(zhat)
            z = jnp.where(present[:, c:c + 1], out["zbar"][c], zhat)  # eq. (1)
            out["z"].append(z)
            out["logits"].append(self.heads[mod](z, deterministic=deterministic, rngs=rngs))
        out["joint"] = self.joint(jnp.concatenate(out["z"], -1), deterministic=deterministic,
                                  rngs=rngs)
        return out


def redcore_net(config: ExperimentConfig, spec: DatasetSpec) -> NNXModel:
    """The network as pure init/apply functions."""
    dtype = compute_dtype(config.train.dtype)
    return NNXModel(lambda rngs: RedCoreNet(spec, config.model, config.method, dtype=dtype,
                                            rngs=rngs))


# ----------------------------------------------------------------------------------------------
# Loss terms.
# ----------------------------------------------------------------------------------------------


def gaussian_kl(mu: jax.Array, logvar: jax.Array) -> jax.Array:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) per sample: ``[B, d] -> [B]``."""
    mu, logvar = mu.astype(jnp.float32), logvar.astype(jnp.float32)
    return -0.5 * jnp.sum(1.0 + logvar - mu ** 2 - jnp.exp(logvar), axis=-1)


def masked_mse(zbar: jax.Array, zhat: jax.Array, present: jax.Array) -> jax.Array:
    """L_MSE^m = sum_b p_b ||zbar_b - zhat_b||^2 / max(N_m, 1): only present samples count."""
    err = jnp.sum((zbar.astype(jnp.float32) - zhat.astype(jnp.float32)) ** 2, axis=-1)
    return losses.weighted_mean(err, present)


def alpha_at(mc: RedCoreConfig, step: jax.Array) -> jax.Array:
    """alpha1 at ``step``: constant, or the released growth schedule (x growth from step 0; in
    the released code's units, a step on beta = eta / xi2: see ``eta_step``)."""
    if mc.alpha_schedule == "constant":
        return jnp.asarray(mc.alpha, jnp.float32)
    periods = (step // mc.alpha_every + 1).astype(jnp.float32)
    return mc.alpha * jnp.asarray(mc.alpha_growth, jnp.float32) ** periods


def eta_step(mc: RedCoreConfig, step: jax.Array) -> jax.Array:
    """The step size of eq. (9) on eta: alpha1, or under the released schedule xi2 * alpha_at
    (beta - a r on beta = eta / xi2 is eta - xi2 a r on eta)."""
    scale = mc.xi2 if mc.alpha_schedule == "released" else 1.0
    return scale * alpha_at(mc, step)


def initial_eta(mc: RedCoreConfig, num_modalities: int) -> jax.Array:
    """eta_0 = xi2 / sqrt(M) for every modality: equal and on Gamma_1 (Core keeps it); released:
    xi2 for every modality (beta_0 = 1, not normalised)."""
    if mc.eta_init == "released":
        return jnp.full((num_modalities,), mc.xi2, jnp.float32)
    return jnp.full((num_modalities,), mc.xi2 / math.sqrt(num_modalities), jnp.float32)


def regulate(mc: RedCoreConfig, extra: dict, mse: jax.Array, valid: jax.Array,
             step: jax.Array) -> tuple[dict, jax.Array]:
    """Red for one step: eq. (10) moving averages, eqs. (4)-(5) r, every K steps eq. (9).

    Returns the new ``{"eta", "mal"}`` and r. With ``regulate=False`` eta is returned unchanged.
    """
    first = (step == 0) if mc.mal_init == "first" else jnp.asarray(False)  # released: from 0
    mal = moving_average(extra["mal"], mse, mc.beta, valid, first)
    ra = relative_advantage(mal)
    eta = extra["eta"]
    if mc.regulate:
        updated = update_eta(eta, ra, eta_step(mc, step), mc.xi1, mc.xi2, mc.projection)
        eta = jnp.where(step % mc.every == 0, updated, eta)
    return {"eta": eta, "mal": mal}, ra


def network_of(path) -> tuple[str, ...]:
    """The released network a parameter belongs to: ``(mod,)`` for a modality's encoder and its
    Gaussian head (the released ``Transformer`` holds both), ``("xenc", mod)``,
    ``("heads", mod)``, ``("joint",)``."""
    keys = [getattr(k, "key", None) for k in path]
    if keys[0] in ("encoders", "gauss"):
        return (keys[1],)
    return tuple(keys[:2]) if keys[0] in ("xenc", "heads") else (keys[0],)


def clip_per_network(grads, max_norm: float):
    """``torch.nn.utils.clip_grad_norm_(net, max_norm)`` for each network of ``network_of``:
    g <- g * min(1, max_norm / (||g_net||_2 + 1e-6))."""
    leaves = jax.tree_util.tree_leaves_with_path(grads)
    sq = {}
    for path, g in leaves:
        net = network_of(path)
        sq[net] = sq.get(net, 0.0) + jnp.sum(jnp.square(g.astype(jnp.float32)))
    factor = {net: jnp.minimum(1.0, max_norm / (jnp.sqrt(v) + 1e-6)) for net, v in sq.items()}
    return jax.tree_util.tree_map_with_path(
        lambda path, g: (g * factor[network_of(path)]).astype(g.dtype), grads)


# ----------------------------------------------------------------------------------------------
# The method.
# ----------------------------------------------------------------------------------------------


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """RedCore on the Method contract; see the module docstring."""
    mc = config.method
    check_config(mc, spec)
    tx = make_optimizer(config.optim, config.train.steps)
    dtype = compute_dtype(config.train.dtype)
    model = redcore_net(config, spec)
    mods = spec.modalities
    num = len(mods)

    # Under a sweep that packs gamma (``TRACED``), each replica's gamma is state, set by its own
    # config's init; otherwise the Python float (single runs' programs are unchanged).
    traced_gamma = "method.gamma" in TRACED.get()

    def init(key: jax.Array, batch: Batch) -> TrainState:
        del batch  # shapes come from the spec
        extra = {"eta": initial_eta(mc, num), "mal": jnp.zeros((num,), jnp.float32)}
        if traced_gamma:
            extra["gamma"] = jnp.float32(mc.gamma)
        return init_state(model, key, tx.init, extra=extra)

    def objective(params, state: TrainState, batch: Batch, keys: dict):
        out, model_state = model.apply(params, state.model_state, batch["inputs"],
                                       batch["present"], train=True, key=keys["dropout"],
                                       noise_key=keys["noise"])
        present, label = batch["present"], batch["label"]
        anyp = present.any(-1)
        ce_joint = losses.weighted_mean(losses.per_example(spec.task, out["joint"], label), anyp)
        ce = jnp.stack([losses.weighted_mean(losses.per_example(spec.task, lg, label), anyp)
                        for lg in out["logits"]])
        batch_size = present.shape[0]
        kl = jnp.stack([jnp.sum(gaussian_kl(mu, lv) * present[:, c]) / batch_size
                        for c, (mu, lv) in enumerate(zip(out["mu"], out["logvar"]))])
        mse = jnp.stack([masked_mse(out["zbar"][c], out["zhat"][c], present[:, c])
                         for c in range(num)])
        ce_sum = ce_joint + (ce.sum() if mc.unimodal_ce else 0.0)
        gamma = state.extra["gamma"] if traced_gamma else mc.gamma
        vib = (ce_sum + gamma * kl.sum() if mc.gamma_on == "kl"
               else kl.sum() + gamma * ce_sum)
        extra, ra = regulate(mc, state.extra, jax.lax.stop_gradient(mse), present.any(0),
                             state.step)
        extra = {**state.extra, **extra}  # a traced gamma rides along unchanged
        loss = vib + jnp.sum(jax.lax.stop_gradient(extra["eta"]) * mse)
        metrics = {"ce_joint": ce_joint, "vib": vib, "ra_spread": ra.max() - ra.min()}
        for c, mod in enumerate(mods):
            metrics.update({f"ce_{mod}": ce[c], f"kl_{mod}": kl[c], f"mse_{mod}": mse[c],
                            f"mal_{mod}": extra["mal"][c], f"ra_{mod}": ra[c],
                            f"eta_{mod}": extra["eta"][c]})
        return loss, ({"model_state": model_state, "extra": extra}, metrics)

    def clipped(grads, metrics):
        return clip_per_network(grads, mc.clip_per_network), metrics

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        keys = step_keys(state, "dropout", "noise")
        batch = cast_inputs(batch, dtype)
        return gradient_step(state, tx, lambda p: objective(p, state, batch, keys),
                             edit=clipped if mc.clip_per_network else None)

    def predict(state: TrainState, batch: Batch) -> jax.Array:
        batch = cast_inputs(batch, dtype)
        noise_key = (jax.random.fold_in(state.key, 2 ** 31 - 1) if mc.test_latent == "sample"
                     else None)
        out, _ = model.apply(state.params, state.model_state, batch["inputs"], batch["present"],
                             train=False, noise_key=noise_key)
        return out["joint"].astype(jnp.float32)

    return Method(init=init, phases=one_phase(train_step), predict=predict)
