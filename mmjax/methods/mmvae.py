"""MMVAE: a multimodal VAE with a mixture-of-experts posterior, then SMIL's linear probe.

Shi, Siddharth, Paige and Torr, "Variational Mixture-of-Experts Autoencoders for Multi-Modal Deep
Generative Models", NeurIPS 2019 (MMVAE), section 3 (the mixture-of-experts joint posterior and
its stratified importance-weighted objective, trained with the DReG estimator); used as a
baseline by RAML (papers/001, Table I: "MMVAE [34] learned the robust joint variational
posterior through the mixture of each single-modality posterior"). The authors' released code
(github.com/iffsid/mmvae, ``src/objectives.py``: ``m_dreg_looser``, ``m_iwae_looser``) fixes
what the paper leaves open, and its README gives the flags of the paper's runs (``--obj dreg
--looser --learn-prior --K 30``, latent 20 on MNIST-SVHN; ``--K 50``, latent 64 on CUB). One
``mmjax train`` runs two ``Phase``s ("vae" for ``vae_steps`` steps, then "probe"), each its own
compiled program, as MVAE does (``mvae.probe_method``)::

    experts      q_m(z | x_m) = Laplace(a_m, b_m):  [a_m, r_m] = W_m E_m(x_m) + c_m,
                 b_m = L softmax(r_m) + 1e-6          (the released code's scale: sums to L)
    prior        p(z) = Laplace(0, L softmax(pi)),  pi learned (``learn_prior``; the paper's
                 runs) or held at 0 (scale 1)
    mixture      q(z | X_S) = (1 / |S|) sum_{d in S} q_d(z | x_d)      (section 3, MoE, alpha_m
                 = 1 / M over the present set S)
    weights      w_{m,k} = p(z_{m,k}) prod_{d in S} p(x_d | z_{m,k}) / q(z_{m,k} | X_S),
                 z_{m,k} = a_m + b_m eps,  eps ~ Laplace(0, 1),  k = 1 ... K
                 p(x_d | z) = N(D_d(z), I): log p = -0.5 ||x_d - D_d(z)||^2 (+ a constant)
    phase 1      maximise, per sample, the stratified bound (the paper's L_IWAE^MoE; the code's
                 "looser" form, the mean over the modalities outside the log)
                     (1 / |S|) sum_{m in S} log (1 / K) sum_k w_{m,k},
                 averaged over the samples with a modality. estimator "dreg" (the paper's):
                 Tucker et al.'s doubly reparameterised gradient, as the released code computes
                 it: q's parameters held in w (stop-gradient), the generative gradient
                 sum_k w~_k grad log w_k and the encoders' sum_k w~_k^2 (d log w_k / dz) dz/dphi,
                 w~ = softmax_k(log w) held; "iwae": the bound's own gradient.
    phase 2      the MMVAE frozen, a linear classifier trained with the task loss on the
                 mixture's mean stop_grad((1 / |S|) sum_{d in S} a_d) (mvae.probe_method);
                 ``probe_lr``, its own optimiser state.
    predict      linear((1 / |S|) sum_{d in S} a_d)

Missing modalities leave the mixture: S is the present set, a missing modality is never decoded
into the bound, and a sample with none counts in no average (its latent mean is 0). ``present``
enters only as masks.

Our choices where the paper is silent for these data: Gaussian decoders with unit variance on
every modality (the paper's Laplace likelihoods of scale 0.75 are for pixels), every modality's
likelihood weight 1 (the code rescales MNIST's by its size ratio to SVHN), decoders and latent
size as MVAE's here (``mvae.Decoder``; 64, the paper's CUB size), the probe on the mixture's
mean (the paper's latent classifier reads one modality's), the phase lengths.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax import losses
from mmjax.config import NON_NEGATIVE, POSITIVE, ExperimentConfig, MethodConfig, ModelConfig, frozen
from mmjax.data.base import DatasetSpec
from mmjax.methods.base import Batch, Method, NNXModel, TrainState, compute_dtype
from mmjax.methods.mvae import MvaeNet, check_config, probe_method

SCALE_FLOOR = 1e-6  # the released code's Constants.eta, added to every posterior scale


@frozen
class MmvaeConfig(MethodConfig):
    """MMVAE's switches.

    Attributes:
      latent_dim: dimension of z.
      decoder_hidden: hidden width of each modality's decoder.
      vae_steps: phase-1 steps; the rest of ``train.steps`` trains the probe.
      num_particles: K, the importance samples per stratum (the paper: 30 on MNIST-SVHN, 50 on
        CUB).
      estimator: ``dreg`` (the paper's) or ``iwae`` (the bound's plain gradient).
      learn_prior: learn the prior's scale (the paper's runs) or hold it at 1.
      probe_lr: phase-2 learning rate of the linear classifier; 0 = ``optim.lr`` (1e-2, as
        MVAE's).
    """

    name: str = "mmvae"
    latent_dim: Annotated[int, POSITIVE] = 64
    decoder_hidden: Annotated[int, POSITIVE] = 256
    vae_steps: int = 600
    num_particles: Annotated[int, POSITIVE] = 30
    estimator: Literal["dreg", "iwae"] = "dreg"
    learn_prior: bool = True
    probe_lr: Annotated[float, NON_NEGATIVE] = 1e-2


# ----------------------------------------------------------------------------------------------
# The defining computations.
# ----------------------------------------------------------------------------------------------


def laplace_log_prob(z: jax.Array, loc: jax.Array, scale: jax.Array) -> jax.Array:
    """``log Laplace(z; loc, scale)`` summed over the last axis."""
    return (-jnp.log(2.0 * scale) - jnp.abs(z - loc) / scale).sum(-1)


def sum_to_size_scale(raw: jax.Array) -> jax.Array:
    """``L softmax(raw)`` over the last axis (size L): the released code's scales."""
    return raw.shape[-1] * jax.nn.softmax(raw, -1)


def log_weights(z: jax.Array, recon: dict, inputs: dict, present: jax.Array, loc: jax.Array,
                scale: jax.Array, prior_scale: jax.Array) -> jax.Array:
    """``log w = log p(z) + sum_{d in S} log p(x_d | z) - log q(z | X_S)``, ``[M, K, B]``.

    Args:
      z: ``[M, K, B, L]`` the samples of every stratum (expert m's draws at ``z[m]``).
      recon: ``{d: [M, K, B, *shape]}`` every decoder on ``z``, in the modalities' order.
      inputs: ``{d: [B, *shape]}`` (and any length keys, not read).
      present: ``[B, M]`` 1 on the present set S of every sample, which is non-empty.
      loc, scale: ``[B, M, L]`` the experts' parameters (held for DReG by the caller).
      prior_scale: ``[L]``.
    """
    log_prior = laplace_log_prob(z, 0.0, prior_scale[None, None, None])
    log_lik = 0.0
    for c, m in enumerate(recon):
        err = (recon[m].astype(jnp.float32) - inputs[m].astype(jnp.float32)[None, None]) ** 2
        half_sq = 0.5 * err.reshape(*err.shape[:3], -1).sum(-1)  # [M, K, B]
        log_lik = log_lik - half_sq * present[None, None, :, c]
    # log q_d(z) of every expert d at every sample: [M, K, B, M_d]
    log_q = laplace_log_prob(z[..., None, :], loc[None, None], scale[None, None])
    share = present / present.sum(-1, keepdims=True)  # alpha_d = 1 / |S| on the present set
    log_mixture = jax.nn.logsumexp(log_q, axis=-1, b=share[None, None])
    return log_prior + log_lik - log_mixture


def strata_mean(per_stratum: jax.Array, present: jax.Array) -> jax.Array:
    """``(1 / |S|) sum_{m in S} per_stratum[m]`` per sample, ``[M, B] -> [B]``."""
    return (per_stratum.T * present).sum(-1) / present.sum(-1)


def stratified_bound(log_w: jax.Array, present: jax.Array) -> jax.Array:
    """``(1 / |S|) sum_{m in S} log (1 / K) sum_k w_{m,k}`` per sample, ``[M, K, B] -> [B]``."""
    return strata_mean(jax.nn.logsumexp(log_w, axis=1) - math.log(log_w.shape[1]), present)


# ----------------------------------------------------------------------------------------------
# The network.
# ----------------------------------------------------------------------------------------------


class MmvaeNet(MvaeNet):
    """MVAE's encoders, experts and decoders, and the prior's scale logits ``pi``."""

    def __init__(self, spec: DatasetSpec, config: ModelConfig, *, latent_dim: int,
                 decoder_hidden: int, dtype=None, rngs: nnx.Rngs):
        super().__init__(spec, config, latent_dim=latent_dim, decoder_hidden=decoder_hidden,
                         dtype=dtype, rngs=rngs)
        self.prior_logits = nnx.Param(jnp.zeros((latent_dim,)))

    def __call__(self, inputs: dict, *, deterministic: bool, rngs: nnx.Rngs | None = None):
        """The experts' Laplace parameters ``(loc [B, M, L], scale [B, M, L])``."""
        loc, raw = self.experts_of(inputs, deterministic=deterministic, rngs=rngs)
        return loc, sum_to_size_scale(raw) + SCALE_FLOOR


# ----------------------------------------------------------------------------------------------
# The method.
# ----------------------------------------------------------------------------------------------


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """MMVAE + linear probe on the Method contract; see the module docstring."""
    check_config(config)
    mc = config.method
    num_mod, k = len(spec.modalities), mc.num_particles
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: MmvaeNet(spec, config.model, latent_dim=mc.latent_dim,
                                           decoder_hidden=mc.decoder_hidden, dtype=dtype,
                                           rngs=rngs))
    sg = jax.lax.stop_gradient

    def latent_mean(vae, model_state, batch) -> jax.Array:
        """The mixture's mean over the present experts, encoders in inference mode, ``[B, L]``
        (0 for a sample with none)."""
        (loc, _), _ = model.apply(vae, model_state, batch["inputs"], train=False)
        present = batch["present"].astype(loc.dtype)[..., None]
        return (loc * present).sum(1) / jnp.maximum(present.sum(1), 1.0)

    def vae_objective(state: TrainState, batch: Batch, keys: dict):
        has_any = batch["present"].any(-1)
        # A sample without modalities gets every expert, so its terms stay finite; it has
        # weight 0 in the average.
        present = jnp.where(has_any[:, None], batch["present"], True).astype(jnp.float32)
        batch_size = present.shape[0]
        eps = jax.random.laplace(keys["eps"], (num_mod, k, batch_size, mc.latent_dim))

        def objective(vae):
            module = model.bind(vae, state.model_state)
            loc, scale = module(batch["inputs"], deterministic=False,
                                rngs=nnx.Rngs(dropout=keys["dropout"]))
            model_state = nnx.state(module, nnx.Not(nnx.Param))
            logits = module.prior_logits[...]
            prior_scale = sum_to_size_scale(logits if mc.learn_prior else sg(logits))
            # Stratum m samples from expert m: z[m, k, b] = a_m(b) + b_m(b) eps.
            z = jnp.moveaxis(loc, 1, 0)[:, None] + jnp.moveaxis(scale, 1, 0)[:, None] * eps

            def log_w(z, loc, scale, prior_scale):
                return log_weights(z, module.decode(z), batch["inputs"], present, loc, scale,
                                   prior_scale)

            if mc.estimator == "iwae":
                value = stratified_bound(log_w(z, loc, scale, prior_scale), present)
            else:
                # DReG: the normalised weights from a held pass; then z's path to the encoders
                # scaled by w~ once more (the released code's gradient hook on z), q's
                # parameters held, and sum_k w~_k log w_k as the surrogate.
                held = sg(log_w(sg(z), sg(loc), sg(scale), sg(prior_scale)))
                w_norm = jax.nn.softmax(held, axis=1)
                z_hooked = sg(z) + w_norm[..., None] * (z - sg(z))
                surrogate = strata_mean(
                    (w_norm * log_w(z_hooked, sg(loc), sg(scale), prior_scale)).sum(1), present)
                # the bound's value, DReG's gradient
                value = stratified_bound(held, present) + surrogate - sg(surrogate)
            loss = -losses.weighted_mean(value, has_any)
            return loss, ({"model_state": model_state}, {})

        return objective

    return probe_method(config, spec, model, vae_objective=vae_objective,
                        latent_mean=latent_mean, objective_name="iwae",
                        idle_metrics={})
