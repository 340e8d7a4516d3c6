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
arithmetic on ``state.step`` (``jnp.where``), eta and MAL live in ``state.extra``.

Ablations (paper, "Ablation Studies", Table 2), as switches of the one registry name ``redcore``:
``regulate=False`` is *Core* (eta fixed and equal, eta_m = xi2 / sqrt(M), on Gamma_1);
``unimodal_ce=False`` is *Red* (no per-modality VIB prediction: the CE sum runs over m = M+1 only).
MAL and r are computed and logged in every variant (Figure 5 plots r for Core too).

Paper <-> released code (official-code-notes §1.4, §1.7); defaults are the paper's:
- ``projection``: ``exact`` Euclidean projection onto Gamma_1 (eq. 9) | ``clamp_normalize``
  (released: max(eta, xi1) then rescale to norm xi2; can leave a component below xi1).
- ``alpha_schedule``: ``constant`` alpha1 (paper) | ``released``: alpha1 * growth^(floor(step /
  every) + 1) (the code multiplies its step size by 1.5 every 500 iterations from iteration 0).
- ``test_latent``: ``mean`` (paper silent; deterministic predictions) | ``sample`` (released code
  samples z at test time; here with a fixed key folded from the state's key).
- ``gamma_on``: ``kl`` (released code and Alemi et al.'s VIB: the coefficient weighs the KL;
  the released value is 8e-4, the paper's 0.008 is the default) | ``ce`` (eq. 2-3 read
  literally: KL + gamma * CE, which with gamma = 0.008 lets the KL dominate).

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

import math

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax import losses
from mmjax.config import ExperimentConfig, MethodConfig, ModelConfig, frozen
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, TrainState, apply_gradients, cast_inputs,
                                compute_dtype, init_state, make_optimizer, norms, one_phase,
                                step_keys)
from mmjax.methods.redcore_projection import (PROJECTIONS, check_constraints, moving_average,
                                              relative_advantage, update_eta)
from mmjax.models.encoders import default_encoder, encode, make_encoder
from mmjax.models.fusion import MLPHead
from mmjax.models.residual_ae import CascadedResidualAE


@frozen
class RedCoreConfig(MethodConfig):
    """RedCore's hyper-parameters and switches; defaults are the paper's (Implementation Details).

    Attributes:
      latent_dim: d, the width of every representation z_m (paper 128).
      xenc_layers: hidden widths of one residual-autoencoder block's encoder, mirrored by its
        decoder (paper RA-layers 256-128-64-32-64-128-256 with a 256-d input: (128, 64, 32)).
      xenc_blocks: residual autoencoder blocks per cross-modal encoder (paper 5).
      gamma: the VIB coefficient (paper 0.008; released code 8e-4 on the KL).
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
        ``alpha_every`` steps, starting at step 0).
      alpha_growth: released schedule factor (1.5).
      alpha_every: released schedule period in steps (500).
      test_latent: ``mean`` (default) | ``sample`` (released).
    """

    name: str = "redcore"
    latent_dim: int = 128
    xenc_layers: tuple[int, ...] = (128, 64, 32)
    xenc_blocks: int = 5
    gamma: float = 0.008
    gamma_on: str = "kl"
    unimodal_ce: bool = True
    regulate: bool = True
    beta: float = 0.7
    every: int = 3
    alpha: float = 0.1
    xi1: float = 0.015
    xi2: float = 0.15
    projection: str = "exact"
    alpha_schedule: str = "constant"
    alpha_growth: float = 1.5
    alpha_every: int = 500
    test_latent: str = "mean"


def check_config(mc: RedCoreConfig, spec: DatasetSpec) -> None:
    """``UserError`` for settings that cannot run."""
    if spec.num_modalities < 2:
        raise UserError("redcore needs at least two modalities (cross-modal encoders)")
    if spec.task != "classification":
        raise UserError(f"redcore supports classification datasets, {spec.name} is {spec.task}")
    choices = {"gamma_on": ("kl", "ce"), "projection": tuple(PROJECTIONS),
               "alpha_schedule": ("constant", "released"), "test_latent": ("mean", "sample")}
    for field, allowed in choices.items():
        if getattr(mc, field) not in allowed:
            raise UserError(f"method.{field} must be one of {', '.join(allowed)}, "
                            f"got {getattr(mc, field)!r}")
    if mc.every < 1 or mc.alpha_every < 1 or mc.xenc_blocks < 1 or mc.latent_dim < 1:
        raise UserError("method.every, alpha_every, xenc_blocks and latent_dim must be >= 1")
    if not 0.0 < mc.beta <= 1.0:
        raise UserError(f"method.beta must lie in (0, 1] (eq. 10), got {mc.beta}")
    check_constraints(spec.num_modalities, mc.xi1, mc.xi2)


# ----------------------------------------------------------------------------------------------
# The network.
# ----------------------------------------------------------------------------------------------


class ResidualXE(CascadedResidualAE):
    """Cross-modal encoder: ``blocks`` residual autoencoder blocks, then a transition to ``out``.

    MMIN's ``ResidualXE``: x_in = x, x_out = 0; per block x_in <- x_in + x_out, x_out <-
    dec(enc(x_in)); finally transition(x_in + x_out), transition = Linear(in, in) -> ReLU ->
    Linear(in, out). The shared ``models.residual_ae.CascadedResidualAE`` with every encoder
    layer (the latent too) activated by LeakyReLU(0.2); returns the transition's output only.
    """

    def __init__(self, in_dim: int, layers: tuple[int, ...], blocks: int, out_dim: int, *,
                 dtype=None, rngs: nnx.Rngs):
        super().__init__(in_dim, layers, blocks, out_dim, slope=0.2, latent_act=True,
                         dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return super().__call__(x)[0]


class RedCoreNet(nnx.Module):
    """Self-modal variational encoders, cross-modal encoders and the M + 1 heads.

    ``__call__(inputs, present, noise_key=None)`` returns a dict with per-modality ``mu``,
    ``logvar``, ``zbar``, ``zhat``, ``z``, ``logits`` (lists in modality order) and ``joint``
    (the logits of z_{M+1}). ``noise_key=None`` uses the mean latent.
    """

    def __init__(self, spec: DatasetSpec, model: ModelConfig, mc: RedCoreConfig, *, dtype=None,
                 rngs: nnx.Rngs):
        names = model.encoders or tuple(default_encoder(s) for s in spec.shapes)
        if len(names) != spec.num_modalities:
            raise UserError(f"model.encoders names {len(names)} encoders for "
                            f"{spec.num_modalities} modalities")
        d, m = mc.latent_dim, spec.num_modalities
        self.modalities = tuple(spec.modalities)  # iterate this, never the (sorted) nnx.Dicts
        self.encoders = nnx.Dict({
            mod: make_encoder(names[c], spec.shapes[c], hidden=model.hidden,
                              out_dim=model.feature_dim, dropout=model.dropout, dtype=dtype,
                              rngs=rngs)
            for c, mod in enumerate(spec.modalities)})
        self.gauss = nnx.Dict({mod: nnx.Linear(self.encoders[mod].out_dim, 2 * d, dtype=dtype,
                                               rngs=rngs) for mod in spec.modalities})
        self.xenc = nnx.Dict({mod: ResidualXE((m - 1) * d, tuple(mc.xenc_layers), mc.xenc_blocks,
                                              d, dtype=dtype, rngs=rngs)
                              for mod in spec.modalities})
        self.heads = nnx.Dict({mod: MLPHead(d, model.hidden, spec.num_classes, model.dropout,
                                            dtype=dtype, rngs=rngs) for mod in spec.modalities})
        self.joint = MLPHead(m * d, model.hidden, spec.num_classes, model.dropout, dtype=dtype,
                             rngs=rngs)

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
                mu + jax.random.normal(keys[c], mu.shape, mu.dtype) * jnp.exp(0.5 * logvar))
            out["mu"].append(mu)
            out["logvar"].append(logvar)
            out["zbar"].append(jnp.where(p[:, None], z, 0.0))  # eq. (3), zero where missing
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
    """alpha1 at ``step``: constant, or the released growth schedule (x growth from step 0)."""
    if mc.alpha_schedule == "constant":
        return jnp.asarray(mc.alpha, jnp.float32)
    periods = (step // mc.alpha_every + 1).astype(jnp.float32)
    return mc.alpha * jnp.asarray(mc.alpha_growth, jnp.float32) ** periods


def initial_eta(mc: RedCoreConfig, num_modalities: int) -> jax.Array:
    """eta_0 = xi2 / sqrt(M) for every modality: equal and on Gamma_1 (Core keeps it)."""
    return jnp.full((num_modalities,), mc.xi2 / math.sqrt(num_modalities), jnp.float32)


def regulate(mc: RedCoreConfig, extra: dict, mse: jax.Array, valid: jax.Array,
             step: jax.Array) -> tuple[dict, jax.Array]:
    """Red for one step: eq. (10) moving averages, eqs. (4)-(5) r, every K steps eq. (9).

    Returns the new ``{"eta", "mal"}`` and r. With ``regulate=False`` eta is returned unchanged.
    """
    mal = moving_average(extra["mal"], mse, mc.beta, valid, step == 0)
    ra = relative_advantage(mal)
    eta = extra["eta"]
    if mc.regulate:
        updated = update_eta(eta, ra, alpha_at(mc, step), mc.xi1, mc.xi2, mc.projection)
        eta = jnp.where(step % mc.every == 0, updated, eta)
    return {"eta": eta, "mal": mal}, ra


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

    def init(key: jax.Array, batch: Batch) -> TrainState:
        del batch  # shapes come from the spec
        extra = {"eta": initial_eta(mc, num), "mal": jnp.zeros((num,), jnp.float32)}
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
        vib = (ce_sum + mc.gamma * kl.sum() if mc.gamma_on == "kl"
               else kl.sum() + mc.gamma * ce_sum)
        extra, ra = regulate(mc, state.extra, jax.lax.stop_gradient(mse), present.any(0),
                             state.step)
        loss = vib + jnp.sum(jax.lax.stop_gradient(extra["eta"]) * mse)
        metrics = {"ce_joint": ce_joint, "vib": vib, "ra_spread": ra.max() - ra.min()}
        for c, mod in enumerate(mods):
            metrics.update({f"ce_{mod}": ce[c], f"kl_{mod}": kl[c], f"mse_{mod}": mse[c],
                            f"mal_{mod}": extra["mal"][c], f"ra_{mod}": ra[c],
                            f"eta_{mod}": extra["eta"][c]})
        return loss, (model_state, extra, metrics)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        keys = step_keys(state, "dropout", "noise")
        batch = cast_inputs(batch, dtype)
        (loss, (model_state, extra, metrics)), grads = jax.value_and_grad(
            objective, has_aux=True)(state.params, state, batch, keys)
        new_state = apply_gradients(state, tx, grads, model_state=model_state, extra=extra)
        return new_state, {"loss": loss, **metrics, **norms(grads, state.params)}

    def predict(state: TrainState, batch: Batch) -> jax.Array:
        batch = cast_inputs(batch, dtype)
        noise_key = (jax.random.fold_in(state.key, 2 ** 31 - 1) if mc.test_latent == "sample"
                     else None)
        out, _ = model.apply(state.params, state.model_state, batch["inputs"], batch["present"],
                             train=False, noise_key=noise_key)
        return out["joint"].astype(jnp.float32)

    return Method(init=init, phases=one_phase(train_step), predict=predict)
