"""SMIL: multimodal learning with severely missing modality, by Bayesian meta-learning.

Ma et al., "SMIL: Multimodal Learning with Severely Missing Modality", AAAI 2021 (papers/004);
released code ``deep-real/SMIL`` (official-code-notes §5). Two modalities: modality 1 (``x1``,
e.g. image) is always present, modality 2 (``x2``, e.g. audio) only on a fraction eta of the
training samples (``missing.protocol=paired``, ``missing.paired_fraction=eta``).

One ``mmjax train`` runs the whole pipeline as three ``Phase``s, each its own compiled program
(the host picks the phase from the step number; no step branches on ``state.step``). Every phase
advances only its own optimiser state, ``opt_state = (tx1's, tx2's, tx3's)``, so phase 2 and phase
3 start from fresh optimiser states and schedules; the metrics of every phase have the same keys
(the losses a phase does not use are reported as 0, ``phase`` is 1, 2 or 3)::

    memory     every step of every phase: the batch's complete samples (x1, x2, y) are written,
               once each, into a fixed-size paired memory in ``state.extra`` (the
               modality-complete set D^f; a fingerprint of the inputs skips samples already
               stored), then a D^f batch is drawn from it, as the released code draws its paired
               "meta-val" loader.
    phase 1    "pretrain_unimodal", [0, phase1_steps): unimodal pretraining (released
               train_mnist.py/train_sound.py): CE(head1(f1(x1))) on the batch + CE(head2(f2(x2)))
               on a D^f batch; ``tx1``.
    phase 2    "pretrain_fusion", [phase1_steps, +phase2_steps): full-modality training of the
               fusion model on D^f batches (released train_soundmnist.py): CE(g(f1(x1), f2(x2))),
               no regulariser; ``tx2``.
    priors     the meta phase's ``enter``, run once by the host before the first meta step:
               M = K-means (or PCA) of f2(x2) over the memory (eq. 2's modality priors; released
               get_sound_mean_kmean.py, K = 10), key ``fold_in(state.key, 7)``. The memory is the
               one pretraining ended with: the first meta step's batch is inserted after the
               priors are computed (a step that computed them after its own insert would have to
               branch on the step number). So the priors miss that one batch's complete samples
               when they are new and the memory has room; with ``phase1_steps = phase2_steps = 0``
               they come from an empty memory (finite, meaningless priors).
    phase 3    "meta", the remaining steps: meta-training (eq. 4-7, Algorithm 1), one update per
               step with ``tx3``:
                 D^m = the batch with x2 treated as missing (reconstructed for every sample),
                 D^f = a memory batch;
                 theta_0 = theta;  for k < K:  z_k ~ q(z | x1; psi, theta_k)
                   theta_{k+1} = theta_k - alpha_k grad_theta CE(f_theta_k(x1, x2_hat; z_k), y)
                 (lax.scan; second order by default: the outer gradient flows through grad)
                 L_outer = 1/L sum_l CE(f_theta*(x1, x2; z_l), y) on D^f      (eq. 7, Alg. 1 l.10)
                           + CE(f_theta(x1, x2_hat; z_0), y) on D^m  [outer_incomplete_term]
                           + kl_weight * KL[q(z | X; psi) || p(z)]               (eq. 6-7)
                           + recon_nll_weight * NLL_1 on the batch's complete samples (eq. 1;
                             off by default, see below)
                 theta, psi <- Adam(grad_{theta, psi} L_outer)                 (Alg. 1 l.10-11)
    predict    x2 where present (reconstruction off), x2_hat = reconstruction where missing
               (on); deterministic z (omega = E[omega], r = mu), as the released eval mode.

Networks (f_theta, the "main network"): f1, f2 = encoders of x1, x2 (AV-MNIST: the released
LeNet-5 -> 160 and sound CNN -> 320; vectors: MLPs; MM-IMDb: one FC layer per modality, ``fc``;
CMU-MOSI: three FC layers of width 16 on the time-averaged Facet frames, ``mean_mlp3``, and a
one-layer LSTM on the GloVe words, ``lstm_last``; see mmjax/models/smil_encoders.py and
configs/mmimdb/smil.py, configs/multibench_mosi/smil.py), fusion g: concat -> fc1 -> ReLU -> fc2
(AV-MNIST 480 -> 64 -> 10). Sequence modalities are encoded with their valid lengths
(``inputs["<m>_len"]``), which the paired memory keeps with the samples. The task loss is the
dataset's (softmax CE; binary CE on multi-label MM-IMDb with positives weighted by
``pos_weight``, 2.0 in the paper); "CE" below stands for it. The reconstruction network phi_c
(eq. 2) maps f1(x1) to K prior weights; the regularisation network phi_r (eq. 3) perturbs the
concatenated features (site 1, computed from f1(x1), as released) and the fc1 activations (site
2, computed from the concat); psi = {phi_c, phi_r}. Only theta is adapted in the inner loop
(the modality-2 encoder is not on the D^m path, so it gets a zero inner gradient, as in the
released code which excludes it explicitly).

Symbols -> paper: M, x2_hat = <omega, M>, omega ~ N(1, sigma), sigma = f_phi_c(x1): eq. 2;
h <- h o softplus(r), r ~ N(mu, sigma), (mu, sigma) = f_phi_r(h_prev): eq. 3; theta* = theta -
alpha grad L(D^m): eq. 4; the D^f and D^m likelihood factors: eq. 5; the KL to the prior: eq. 6-7
(p(r) = N(0, I), p(omega) = N(1, I): the paper does not name p(z); these are our choice); L MC
samples: eq. 7; K inner steps: Algorithm 1.

Paper <-> released-code switches (``SmilConfig``; default = paper):
  reconstruction  paper: x2_hat = <omega, M> / K, omega ~ N(1, softplus(phi_c(x1)))  (the /K keeps
                  the mean reconstruction at the centroid average, whatever K);
                  released: x2_hat = sum_k w_k M_k / sum_k w_k, w = softplus(phi_c(x1)), no noise;
                  direct: x2_hat = phi_c(x1) regressed directly (Table 3 "w/o K-means").
  regularization  additive (released AV-MNIST) | multiplicative (released MM-IMDb fragment) | none
                  (Table 3 "w/o Regularization").
  reg_sigma       learned (paper: (mu, sigma) = f_phi_r) | fixed (released: unit variance).
  outer_loss      paper (above) | released: L = CE(D^m; theta) + CE(f_theta*(x1, x2_hat)) on D^f
                  + 0.01 MSE(concat features) + 0.01 MSE(fc1 features) between the D^f pass with
                  real x2 and the one with x2_hat (KDLossAlignTwo(0.01, 0.01); its clean-CE term is
                  computed but not added in the released code, so it is not here either).
                  The clean D^f pass (real x2) applies no regulariser, as the released mode 'two'.
  inner_lr_decay_every  0 (paper) | 1000 (released: alpha * 0.1^(meta_step // 1000)).
  kl_weight       the paper gives none; the released code has no KL (use 0).
  recon_nll_weight  0 (Algorithm 1 and the released code: phi_c learns only through the meta
                  loss) | w > 0: SMIL eq. 1, phi_c* = argmin E_{p(x1, x2)}[-log p(x2_hat | x1;
                  phi_c)], as a term of the outer loss (either ``outer_loss``): w * NLL_1 with
                  NLL_1 = mean over the batch's complete samples of 0.5 ||x2_hat - f2(x2)||^2 (a
                  unit-variance Gaussian, constant dropped). SMIL reconstructs in feature space,
                  so the target is the modality-2 encoder's feature f2(x2), the quantity eq. 2's
                  x2_hat replaces; x2_hat is eq. 2's reconstruction at theta with the omega draw
                  of the first inner step's D^m pass. Both f1(x1) and f2(x2) are held constant
                  (stop-gradient): eq. 1 minimises over phi_c alone, and a gradient into f2 would
                  pull the features toward the priors M, which stay fixed once computed. Under
                  ``reconstruction=paper`` E[omega] = 1, so the term reaches phi_c only through
                  the spread sigma (E||x2_hat - t||^2 = ||M-bar - t||^2 + tr Cov(x2_hat)): it
                  shrinks sigma; with ``deterministic`` it gives phi_c no gradient at all.
                  Metric ``recon_nll``: NLL_1 (0 when the weight is 0: the term is not computed).
  meta_optimizer  config (tx3 = ``config.optim``) | released (Adam with L2 weight decay 1e-4 added
                  to the gradient, as torch's Adam ``weight_decay``, betas (0.9, 0.999), no
                  clipping, and the rate x0.1 every 5,000 meta-steps, StepLR(5000, 0.1); the rate
                  itself stays ``optim.lr``, 1e-3 released).
``released(config)`` sets every released switch at once (the ``:released`` config variant):
reconstruction=released, reg_sigma=fixed, outer_loss=released, kl_weight=0,
inner_lr_decay_every=1000, inner_steps=1, mc_samples=1, meta_optimizer=released.
Ablations (Table 3): reconstruction=direct; regularization=none; fixed_gaussian=True (r ~ N(0, I),
input-independent); deterministic=True (no sampling of omega or r: their means).

Our choices where paper and code are silent or cannot apply here: meta-training runs with dropout
off and BatchNorm on its running statistics. (The released code calls ``eval()`` once, but its
three meta passes go through MetaNN's ``functional(params, True)``, which switches the functional
copy to train mode: dropout on and the sound CNN's BatchNorm on batch statistics in the clean
pass; not reproduced, see experiments/smil/README.md, "Released conformance".) The
modality-2 memory replaces the released separate paired loader (the pipeline serves random
batches of the whole training set); phase lengths are config fields (the paper gives 15,000
meta-iterations, the released script 8,000; we train far fewer, see
configs/avmnist_offline/smil.py).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, ClassVar, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mmjax import losses
from mmjax.config import (NON_NEGATIVE, POSITIVE, ExperimentConfig, MethodConfig, ModelConfig,
                          frozen)
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.methods import smil_priors
from mmjax.methods.base import (Batch, Method, NNXModel, Phase, TrainState, cast_inputs,
                                compute_dtype, init_state, make_optimizer, norms, step_keys)
from mmjax.models.encoders import encode, encoder_names, make_encoder


@frozen
class SmilConfig(MethodConfig):
    """SMIL's hyper-parameters and switches; the defaults are the paper's method.

    Attributes:
      phase1_steps: unimodal pretraining steps.
      phase2_steps: full-modality (fusion) training steps on the paired memory; meta-training
        takes the remaining ``train.steps - phase1_steps - phase2_steps``.
      num_priors: K, the number of modality priors (paper/released: 10).
      priors: ``kmeans`` (released) or ``pca`` (paper names both).
      kmeans_iters: Lloyd iterations.
      reconstruction: ``paper`` (eq. 2, omega ~ N(1, sigma)) | ``released`` (softplus-weighted
        centroid average) | ``direct`` (Table 3 "w/o K-means": regress the feature).
      regularization: ``additive`` | ``multiplicative`` | ``none`` (Table 3 "w/o Regularization").
      reg_sigma: ``learned`` (paper) | ``fixed`` (released: unit variance).
      fixed_gaussian: Table 3 "w/ Fixed Gaussian": r ~ N(0, I), independent of the input.
      deterministic: Table 3 "w/ Deterministic": omega and r are their means (no sampling).
      inner_steps: K, inner SGD steps per meta-update (released: 1).
      inner_lr: alpha (paper: 1e-3 on AV-MNIST).
      inner_lr_decay_every: 0 = constant alpha (paper); N = alpha * 0.1^(meta_step // N)
        (released: 1000).
      first_order: drop the second-order term (stop the gradient through the inner gradients).
      mc_samples: L, Monte-Carlo samples of z in the outer loss (eq. 7).
      kl_weight: weight of KL[q(z|X; psi) || p(z)] (eq. 6-7; our default, the paper gives none).
      recon_nll_weight: weight of SMIL eq. 1's negative log-likelihood of the missing modality's
        feature, 0.5 ||x2_hat - f2(x2)||^2 averaged over the batch's complete samples, added to
        the outer loss; it updates phi_c only (see the module docstring). 0 = Algorithm 1 and
        the released code (eq. 1 is not a term of their objective).
      outer_loss: ``paper`` | ``released`` (see the module docstring).
      meta_optimizer: ``config`` | ``released`` (Adam + weight decay 1e-4, StepLR(5000, 0.1)).
      outer_incomplete_term: paper outer loss: add the D^m likelihood factor of eq. 5
        (CE of the meta-train pass at theta); False = Algorithm 1 line 10 literally (D^f only).
      memory_size: capacity of the paired memory (complete training samples kept).
      pos_weight: multi-label tasks: weight w of the positive labels in the binary cross-entropy,
        ``-(w y log s(x) + (1 - y) log(1 - s(x)))`` (``losses.per_example``); every task loss of
        every phase uses it. 1.0 = unweighted; the paper uses 2.0 on MM-IMDb ("we follow previous
        work (Vielzeuf et al. 2018) to add a weight of 2.0 on the positive label").
    """

    requires: ClassVar[tuple[str, ...]] = ("paired_data",)  # mmjax.config.REQUIREMENTS
    name: str = "smil"
    phase1_steps: Annotated[int, NON_NEGATIVE] = 200
    phase2_steps: Annotated[int, NON_NEGATIVE] = 100
    num_priors: Annotated[int, POSITIVE] = 10
    priors: Literal["kmeans", "pca"] = "kmeans"
    kmeans_iters: Annotated[int, POSITIVE] = 50
    reconstruction: Literal["paper", "released", "direct"] = "paper"
    regularization: Literal["additive", "multiplicative", "none"] = "additive"
    reg_sigma: Literal["learned", "fixed"] = "learned"
    fixed_gaussian: bool = False
    deterministic: bool = False
    inner_steps: Annotated[int, POSITIVE] = 1
    inner_lr: float = 1e-3
    inner_lr_decay_every: Annotated[int, NON_NEGATIVE] = 0
    first_order: bool = False
    mc_samples: Annotated[int, POSITIVE] = 1
    kl_weight: float = 1e-3
    recon_nll_weight: Annotated[float, NON_NEGATIVE] = 0.0
    outer_loss: Literal["paper", "released"] = "paper"
    outer_incomplete_term: bool = True
    memory_size: Annotated[int, POSITIVE] = 1024
    pos_weight: float = 1.0
    meta_optimizer: Literal["config", "released"] = "config"


def released(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with every switch that makes SMIL's meta phase the released code's (the
    ``:released`` variant; see the module docstring). The regulariser's form stays the config's
    (released AV-MNIST: additive; the MM-IMDb fragment: multiplicative)."""
    method = dataclasses.replace(
        config.method, reconstruction="released", reg_sigma="fixed", outer_loss="released",
        kl_weight=0.0, inner_lr_decay_every=1000, inner_steps=1, mc_samples=1,
        meta_optimizer="released")
    return dataclasses.replace(config, method=method)


# Parameters of psi = {phi_c, phi_r}; every other parameter belongs to the main network theta.
PSI = ("recon", "recon_direct", "reg1_mu", "reg1_sigma", "reg2_mu", "reg2_sigma")


class SmilNet(nnx.Module):
    """SMIL's main network (encoders, unimodal heads, fusion fc1/fc2) and psi's small networks."""

    def __init__(self, spec: DatasetSpec, model: ModelConfig, num_priors: int, *, dtype=None,
                 rngs: nnx.Rngs):
        names = encoder_names(spec, model)
        self.enc1, self.enc2 = (
            make_encoder(n, s, hidden=model.hidden, out_dim=model.feature_dim,
                         dropout=model.dropout, dtype=dtype, rngs=rngs)
            for n, s in zip(names, spec.shapes))
        d1, d2, h, c = self.enc1.out_dim, self.enc2.out_dim, model.hidden, spec.num_classes
        lin = lambda a, b: nnx.Linear(a, b, dtype=dtype, rngs=rngs)  # noqa: E731
        self.head1, self.head2 = lin(d1, c), lin(d2, c)  # phase-1 unimodal classifiers
        self.fc1, self.fc2 = lin(d1 + d2, h), lin(h, c)  # fusion g
        self.recon, self.recon_direct = lin(d1, num_priors), lin(d1, d2)  # phi_c
        self.reg1_mu, self.reg1_sigma = lin(d1, d1 + d2), lin(d1, d1 + d2)  # phi_r, site 1
        self.reg2_mu, self.reg2_sigma = lin(d1 + d2, h), lin(d1 + d2, h)  # phi_r, site 2
        self.dims = (d1, d2, h)

    def __call__(self, *args, **kwargs):  # only used abstractly by NNXModel; see the functions
        raise NotImplementedError("SmilNet is applied through smil.forward and its phase "
                                  "functions, never called as a whole")


class Noise(NamedTuple):
    """Standard-normal draws of one sample of z = {omega, r1, r2}; None = deterministic (means)."""

    omega: jax.Array
    r1: jax.Array
    r2: jax.Array


def draw_noise(key: jax.Array, batch: int, k: int, dims: tuple[int, int, int]) -> Noise:
    """epsilon ~ N(0, I) for omega ``[B, K]``, r1 ``[B, d1 + d2]`` and r2 ``[B, hidden]``."""
    d1, d2, h = dims
    a, b, c = jax.random.split(key, 3)
    return Noise(jax.random.normal(a, (batch, k)), jax.random.normal(b, (batch, d1 + d2)),
                 jax.random.normal(c, (batch, h)))


def reconstruct(net: SmilNet, mc: SmilConfig, h1: jax.Array, priors: jax.Array,
                eps: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """Eq. 2: the missing modality's feature from f1(x1); returns ``(x2_hat [B, d2], kl [B])``.

    ``paper``: sigma = softplus(phi_c(h1)), omega = 1 + sigma * eps, x2_hat = omega @ M / K,
    KL[N(1, sigma^2) || N(1, 1)]. ``released``: softplus-weighted average of the priors.
    ``direct``: phi_c regresses the feature. ``eps=None`` uses E[omega] = 1.
    """
    zero = jnp.zeros(h1.shape[:1], h1.dtype)
    if mc.reconstruction == "direct":
        return net.recon_direct(h1), zero
    a = net.recon(h1)
    if mc.reconstruction == "released":
        w = jax.nn.softplus(a)
        return (w @ priors) / w.sum(-1, keepdims=True), zero
    sigma = jax.nn.softplus(a) + 1e-6
    omega = 1.0 + sigma * eps if eps is not None else jnp.ones_like(sigma)
    kl = 0.5 * (sigma**2 - 1.0 - 2.0 * jnp.log(sigma)).sum(-1)
    return (omega @ priors) / priors.shape[0], kl


def regularize(mu_layer, sigma_layer, mc: SmilConfig, h_prev: jax.Array, h: jax.Array,
               eps: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """Eq. 3: ``h o softplus(r)``, r ~ N(mu, sigma), (mu, sigma) = f_phi_r(h_prev); ``(h, kl [B])``.

    ``reg_sigma=fixed`` uses sigma = 1 (released); ``fixed_gaussian`` uses r ~ N(0, I);
    ``eps=None`` uses r = mu. KL[N(mu, sigma^2) || N(0, I)] summed over features.
    """
    zero = jnp.zeros(h.shape[:1], h.dtype)
    if mc.regularization == "none":
        return h, zero
    if mc.fixed_gaussian:
        mu, sigma = jnp.zeros_like(h), jnp.ones_like(h)
    else:
        mu = mu_layer(h_prev)
        sigma = (jax.nn.softplus(sigma_layer(h_prev)) + 1e-6 if mc.reg_sigma == "learned"
                 else jnp.ones_like(mu))
    r = mu + sigma * eps if eps is not None else mu
    kl = 0.5 * (sigma**2 + mu**2 - 1.0 - 2.0 * jnp.log(sigma)).sum(-1)
    if mc.fixed_gaussian:
        kl = zero
    s = jax.nn.softplus(r)
    return (h + s if mc.regularization == "additive" else h * s), kl


def fusion(net: SmilNet, mc: SmilConfig, h1, h2, noise: Noise | None, regularize_on: bool = True):
    """g with the regulariser at both sites; returns ``(logits, concat features, fc1 features,
    kl [B])``."""
    h = jnp.concatenate([h1, h2], -1)
    kl = jnp.zeros(h.shape[:1], h.dtype)
    if regularize_on:
        h, kl1 = regularize(net.reg1_mu, net.reg1_sigma, mc, h1, h,
                            None if noise is None else noise.r1)
        kl = kl + kl1
    a = jax.nn.relu(net.fc1(h))
    if regularize_on:
        a, kl2 = regularize(net.reg2_mu, net.reg2_sigma, mc, h, a,
                            None if noise is None else noise.r2)
        kl = kl + kl2
    return net.fc2(a), h, a, kl


def forward(net: SmilNet, mc: SmilConfig, x1, x2, real2, priors, noise: Noise | None,
            len1=None, len2=None, regularize_on: bool = True):
    """The main network on a batch, deterministic layers (dropout off, BatchNorm frozen).

    ``real2`` ``[B]``: 1 where x2 is used (reconstruction off), 0 where x2_hat replaces it;
    ``x2=None`` reconstructs every sample. ``len1``, ``len2``: valid lengths of sequence
    modalities (None otherwise); ``regularize_on=False``: no regulariser (the released clean
    pass). Returns ``(logits, h, a, kl [B])``.
    """
    h1 = encode(net.enc1, x1, len1, deterministic=True)
    h2_hat, kl_w = reconstruct(net, mc, h1, priors, None if noise is None else noise.omega)
    if x2 is None:
        h2, used = h2_hat, jnp.ones(h1.shape[:1], h1.dtype)
    else:
        real = real2.astype(h1.dtype)
        h2 = (real[:, None] * encode(net.enc2, x2, len2, deterministic=True)
              + (1.0 - real[:, None]) * h2_hat)
        used = 1.0 - real
    logits, h, a, kl = fusion(net, mc, h1, h2, noise, regularize_on)
    return logits, h, a, kl + used * kl_w


def adapt(inner_loss, params, mask, alphas: jax.Array, keys: jax.Array, first_order: bool):
    """The inner loop (eq. 4, Algorithm 1 lines 4-7): K SGD steps with ``lax.scan``.

    ``theta_{k+1} = theta_k - alpha_k * grad inner_loss(theta_k, key_k)`` on the leaves where
    ``mask`` (a pytree of Python bools like ``params``) is True; the others are carried unchanged.
    ``first_order`` stops the gradient through the inner gradients (first-order MAML).

    Args:
      inner_loss: ``(params, key) -> (loss, aux)``.
      alphas: ``[K]`` step sizes; keys: ``[K]`` keys.
    Returns:
      ``(theta_K, (losses [K], aux stacked over K))``.
    """

    def body(p, xs):
        alpha, key = xs
        (loss, aux), g = jax.value_and_grad(inner_loss, has_aux=True)(p, key)
        if first_order:
            g = jax.lax.stop_gradient(g)
        p = jax.tree.map(lambda x, gi, m: x - alpha * gi if m else x, p, g, mask)
        return p, (loss, aux)

    return jax.lax.scan(body, params, (alphas, keys))


def theta_mask(params):
    """A pytree of Python bools like ``params``: True on theta, False on psi."""
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(path[0], "key", None) not in PSI, params)


# ----------------------------------------------------------------------------------------------
# The paired memory (D^f) in state.extra.
# ----------------------------------------------------------------------------------------------


class Memory(NamedTuple):
    """A batch drawn from the paired memory; ``len1``/``len2``: sequence lengths (None for a
    modality without them); ``weight`` 0 while the memory is empty."""

    x1: jax.Array
    len1: jax.Array | None
    x2: jax.Array
    len2: jax.Array | None
    y: jax.Array
    weight: jax.Array


def _fingerprint(x1, x2, r1, r2):
    return x1.reshape(x1.shape[0], -1) @ r1 + x2.reshape(x2.shape[0], -1) @ r2


def memory_insert(extra: dict, batch: Batch, modalities, r1, r2) -> dict:
    """Writes the batch's complete samples not yet stored into the next free memory slots (with
    their sequence lengths where the memory keeps them: ``extra["len1"]``, ``extra["len2"]``)."""
    m1, m2 = modalities
    x1, x2 = batch["inputs"][m1], batch["inputs"][m2]
    size = extra["fp"].shape[0]
    fp = _fingerprint(x1, x2, r1, r2)  # [B]
    valid = jnp.arange(size) < extra["count"]
    # A sample's fingerprint can differ in the last bits between batches (reduction order).
    same = jnp.abs(fp[:, None] - extra["fp"][None, :]) <= 1e-4 * (1.0 + jnp.abs(fp[:, None]))
    new = batch["present"].all(-1) & ~(same & valid[None, :]).any(-1)
    pos = extra["count"] + jnp.cumsum(new) - 1
    keep = new & (pos < size)
    slot = jnp.where(keep, pos, size)  # out-of-range slots are dropped
    lens = {f"len{i}": extra[f"len{i}"].at[slot].set(batch["inputs"][length_key(m)], mode="drop")
            for i, m in ((1, m1), (2, m2)) if f"len{i}" in extra}
    return {**extra, **lens,
            "x1": extra["x1"].at[slot].set(x1.astype(extra["x1"].dtype), mode="drop"),
            "x2": extra["x2"].at[slot].set(x2.astype(extra["x2"].dtype), mode="drop"),
            "y": extra["y"].at[slot].set(batch["label"], mode="drop"),
            "fp": extra["fp"].at[slot].set(fp, mode="drop"),
            "count": extra["count"] + keep.sum().astype(jnp.int32)}


def memory_batch(extra: dict, key: jax.Array, batch_size: int, dtype=None) -> Memory:
    """``batch_size`` samples drawn uniformly from the filled memory, inputs cast to ``dtype``
    (None: float32)."""
    count = extra["count"]
    idx = jnp.minimum((jax.random.uniform(key, (batch_size,)) * jnp.maximum(count, 1))
                      .astype(jnp.int32), jnp.maximum(count - 1, 0))
    weight = jnp.broadcast_to(count > 0, (batch_size,))
    dtype = dtype or jnp.float32
    lens = [extra[k][idx] if k in extra else None for k in ("len1", "len2")]
    return Memory(extra["x1"][idx].astype(dtype), lens[0], extra["x2"][idx].astype(dtype),
                  lens[1], extra["y"][idx], weight)


# ----------------------------------------------------------------------------------------------
# make()
# ----------------------------------------------------------------------------------------------

METRICS = ("loss", "loss_pre_image", "loss_pre_audio", "loss_pre_fusion", "loss_inner",
           "loss_outer", "kl", "recon_nll", "memory", "phase")


def check_config(config: ExperimentConfig, spec: DatasetSpec) -> None:
    """``UserError`` for settings that cannot run."""
    mc = config.method
    if spec.num_modalities != 2:
        raise UserError(f"smil needs exactly two modalities, {spec.name} has "
                        f"{spec.num_modalities}; pick two with data.views")
    losses.check_pos_weight(mc.pos_weight, spec.task, spec.name)
    if mc.phase1_steps + mc.phase2_steps > config.train.steps:
        raise UserError(f"method.phase1_steps + phase2_steps = "
                        f"{mc.phase1_steps + mc.phase2_steps} exceeds train.steps="
                        f"{config.train.steps}")


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """SMIL on the Method contract; see the module docstring."""
    check_config(config, spec)
    mc: SmilConfig = config.method
    m1, m2 = spec.modalities
    k = mc.num_priors
    meta_start = mc.phase1_steps + mc.phase2_steps
    batch_size = config.train.batch_size
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: SmilNet(spec, config.model, k, dtype=dtype, rngs=rngs))
    dims = nnx.eval_shape(lambda: SmilNet(spec, config.model, k, rngs=nnx.Rngs(0))).dims
    tx1 = make_optimizer(config.optim, max(mc.phase1_steps, 1))
    tx2 = make_optimizer(config.optim, max(mc.phase2_steps, 1))
    meta_optim = config.optim if mc.meta_optimizer == "config" else dataclasses.replace(
        config.optim, name="adam", beta1=0.9, weight_decay=1e-4, schedule="step",
        decay_steps=5000, decay_rate=0.1, warmup_steps=0, grad_clip=0.0)  # torch Adam defaults
    tx3 = make_optimizer(meta_optim, max(config.train.steps - meta_start, 1))
    fp_keys = jax.random.split(jax.random.key(12345))
    r1 = jax.random.normal(fp_keys[0], (math.prod(spec.shape_of(m1)),))
    r2 = jax.random.normal(fp_keys[1], (math.prod(spec.shape_of(m2)),))

    def task_loss(logits, label, weight=None):
        per = losses.per_example(spec.task, logits, label, mc.pos_weight)
        return per.mean() if weight is None else losses.weighted_mean(per, weight)

    def init(key: jax.Array, batch: Batch) -> TrainState:
        label = batch["label"]
        p = mc.memory_size
        extra = {"x1": jnp.zeros((p, *spec.shape_of(m1)), jnp.float32),
                 "x2": jnp.zeros((p, *spec.shape_of(m2)), jnp.float32),
                 "y": jnp.zeros((p, *label.shape[1:]), label.dtype),
                 "fp": jnp.zeros((p,), jnp.float32), "count": jnp.zeros((), jnp.int32),
                 "priors": jnp.zeros((k, dims[1]), jnp.float32)}
        for i, m in ((1, m1), (2, m2)):  # sequence modalities: their lengths are kept too
            if length_key(m) in batch["inputs"]:
                extra[f"len{i}"] = jnp.zeros((p,), jnp.int32)
        return init_state(model, key, lambda p: (tx1.init(p), tx2.init(p), tx3.init(p)),
                          extra=extra)

    def compute_priors(extra, params, model_state, key):
        """M from modality-2 features of every sample in the memory (eval-mode encoder)."""
        if mc.reconstruction == "direct":  # "w/o K-means" uses no priors
            return extra
        enc2 = model.bind(params, model_state).enc2
        feats = encode(enc2, extra["x2"].astype(dtype or jnp.float32), extra.get("len2"),
                       deterministic=True).astype(jnp.float32)
        weights = (jnp.arange(feats.shape[0]) < extra["count"]).astype(jnp.float32)
        if mc.priors == "kmeans":
            priors = smil_priors.kmeans(key, feats, weights, k, mc.kmeans_iters)
        else:
            priors = smil_priors.pca(feats, weights, k)
        return {**extra, "priors": priors}

    def pretrain_objective(params, model_state, batch: Batch, mem: Memory, keys):
        """The losses of phases 1 and 2 on the batch and a D^f batch (every phase reports all
        three, as metrics); returns ``(l_img, l_snd, l_fus), (model_state, metrics)``."""
        net = model.bind(params, model_state)
        rngs = nnx.Rngs(dropout=keys["dropout"])
        h1 = encode(net.enc1, batch["inputs"][m1], batch["inputs"].get(length_key(m1)),
                    deterministic=False, rngs=rngs)
        l_img = task_loss(net.head1(h1), batch["label"], batch["present"][:, 0])
        h1m = encode(net.enc1, mem.x1, mem.len1, deterministic=False, rngs=rngs)
        # BatchNorm (sound CNN): batch statistics of complete samples only
        h2m = encode(net.enc2, mem.x2, mem.len2, deterministic=False, rngs=rngs)
        l_snd = task_loss(net.head2(h2m), mem.y, mem.weight)
        logits, _, _, _ = fusion(net, mc, h1m, h2m, None, regularize_on=False)
        l_fus = task_loss(logits, mem.y, mem.weight)
        metrics = {"loss_pre_image": l_img, "loss_pre_audio": l_snd, "loss_pre_fusion": l_fus}
        return (l_img, l_snd, l_fus), (nnx.state(net, nnx.Not(nnx.Param)), metrics)

    def pretrain(index: int, tx: optax.GradientTransformation, pick):
        """The update of pretraining phase ``index + 1`` (phase 1: ``pick`` = l_img + l_snd with
        ``tx1``; phase 2: l_fus with ``tx2``); it advances only ``opt_state[index]``."""

        def update(state: TrainState, batch: Batch, mem, keys) -> tuple[TrainState, dict]:
            def objective(params):
                parts, aux = pretrain_objective(params, state.model_state, batch, mem, keys)
                return pick(*parts), aux

            (loss, (model_state, metrics)), grads = jax.value_and_grad(
                objective, has_aux=True)(state.params)
            updates, opt = tx.update(grads, state.opt_state[index], state.params)
            opt_state = tuple(opt if i == index else s for i, s in enumerate(state.opt_state))
            new = state.replace(params=optax.apply_updates(state.params, updates),
                                model_state=model_state, opt_state=opt_state)
            metrics.update(loss=loss, loss_inner=jnp.zeros(()), loss_outer=jnp.zeros(()),
                           kl=jnp.zeros(()), recon_nll=jnp.zeros(()),
                           phase=jnp.asarray(float(index + 1)),
                           **norms(grads, state.params))
            return new, metrics

        return update

    def recon_nll(params, model_state, priors, x1, len1, x2, len2, complete, eps):
        """SMIL eq. 1's -log p(x2 | x1; phi_c) under a unit-variance Gaussian, constant dropped:
        0.5 ||x2_hat - f2(x2)||^2 averaged over the ``complete`` rows (0 when there are none).

        x2_hat is eq. 2's reconstruction from f1(x1) (``eps``: omega's draw, None = its mean);
        f1(x1) and the target f2(x2) are stop-gradient, so the gradient reaches phi_c only
        (eq. 1 minimises over phi_c). Rows that are not complete are zeroed with ``where``
        before the square, so whatever their x2 holds (even NaN) reaches neither the value nor the
        gradient (a where after the square would pass 0 * NaN back).
        """
        net = model.bind(params, model_state)
        h1 = jax.lax.stop_gradient(encode(net.enc1, x1, len1, deterministic=True))
        target = jax.lax.stop_gradient(encode(net.enc2, x2, len2, deterministic=True))
        x2_hat, _ = reconstruct(net, mc, h1, priors, eps)
        acc = jnp.promote_types(x2_hat.dtype, jnp.float32)  # bfloat16 steps: sum in float32
        diff = jnp.where(complete[:, None], x2_hat.astype(acc) - target.astype(acc), 0.0)
        per = 0.5 * jnp.sum(diff ** 2, -1)
        return per.sum() / jnp.maximum(complete.sum().astype(acc), 1.0)

    def meta_objective(params, model_state, priors, x1, len1, y, mem: Memory, keys, first_order,
                       x2, len2, complete):
        """The outer loss of one meta-update (eq. 4-7, Algorithm 1) and its parts; with
        ``recon_nll_weight > 0`` also eq. 1's term on the batch's ``complete`` rows (``x2``,
        ``len2``: the batch's modality 2)."""
        mx1, mx2, my, mw = mem.x1, mem.x2, mem.y, mem.weight
        meta_step = jnp.maximum(jnp.asarray(keys["meta_step"]), 0)
        decay = (0.1 ** (meta_step // mc.inner_lr_decay_every) if mc.inner_lr_decay_every
                 else 1.0)
        alphas = jnp.full((mc.inner_steps,), mc.inner_lr) * decay
        b = x1.shape[0]

        def noise(key, n):
            return None if mc.deterministic else draw_noise(key, n, k, dims)

        def inner_loss(p, key):  # D^m: modality 2 reconstructed for every sample
            logits, _, _, kl = forward(model.bind(p, model_state), mc, x1, None, None, priors,
                                       noise(key, b), len1)
            return task_loss(logits, y), kl.mean()

        inner_keys = jax.random.split(keys["inner"], mc.inner_steps)
        theta_star, (inner_losses, inner_kls) = adapt(
            inner_loss, params, theta_mask(params), alphas, inner_keys, first_order)
        net_star = model.bind(theta_star, model_state)
        ones = jnp.ones_like(mw, jnp.float32)
        if mc.outer_loss == "paper":
            outer, kl_f = 0.0, 0.0
            for key in jax.random.split(keys["outer"], mc.mc_samples):  # eq. 7, L samples
                logits, _, _, kl = forward(net_star, mc, mx1, mx2, ones, priors,
                                           noise(key, mw.shape[0]), mem.len1, mem.len2)
                outer = outer + task_loss(logits, my, mw) / mc.mc_samples
                kl_f = kl_f + losses.weighted_mean(kl, mw) / mc.mc_samples
            kl_total = inner_kls[0] + kl_f
            total = outer + mc.kl_weight * kl_total
            if mc.outer_incomplete_term:
                total = total + inner_losses[0]
        else:  # released: meta-train loss + image-only D^f pass + feature matching
            # the released clean pass (mode 'two'): real x2, no regulariser at either site
            clean, h_c, a_c, _ = forward(net_star, mc, mx1, mx2, ones, priors, None, mem.len1,
                                         mem.len2, regularize_on=False)
            noised, h_n, a_n, _ = forward(net_star, mc, mx1, None, None, priors, None, mem.len1)
            outer = task_loss(noised, my, mw)
            wf = mw.astype(jnp.float32)[:, None]
            match = (0.01 * ((h_c - h_n) ** 2 * wf).sum() / jnp.maximum(wf.sum() * h_c.shape[1], 1)
                     + 0.01 * ((a_c - a_n) ** 2 * wf).sum()
                     / jnp.maximum(wf.sum() * a_c.shape[1], 1))
            kl_total = inner_kls[0]
            total = inner_losses[0] + outer + match + mc.kl_weight * kl_total
        nll = jnp.zeros((), jnp.float32)
        if mc.recon_nll_weight > 0:  # a static switch: weight 0 compiles today's program
            # eq. 1 on the batch's complete samples, with the first inner step's omega draw:
            # x2_hat is the reconstruction that step's D^m pass used on those samples
            omega = noise(inner_keys[0], b)
            nll = recon_nll(params, model_state, priors, x1, len1, x2, len2, complete,
                            None if omega is None else omega.omega)
            total = total + mc.recon_nll_weight * nll
        return total, {"loss_inner": inner_losses[0], "loss_outer": outer, "kl": kl_total,
                       "recon_nll": nll}

    def meta(state: TrainState, batch: Batch, mem, keys) -> tuple[TrainState, dict]:
        """Phase 3: one meta-update of theta and psi."""
        keys = {**keys, "meta_step": state.step - meta_start}
        (loss, metrics), grads = jax.value_and_grad(meta_objective, has_aux=True)(
            state.params, state.model_state, state.extra["priors"], batch["inputs"][m1],
            batch["inputs"].get(length_key(m1)), batch["label"], mem, keys, mc.first_order,
            batch["inputs"][m2], batch["inputs"].get(length_key(m2)),
            batch["present"].all(-1))
        s1, s2, s3 = state.opt_state
        updates, n3 = tx3.update(grads, s3, state.params)
        new = state.replace(params=optax.apply_updates(state.params, updates),
                            opt_state=(s1, s2, n3))
        metrics.update(loss=loss, loss_pre_image=jnp.zeros(()), loss_pre_audio=jnp.zeros(()),
                       loss_pre_fusion=jnp.zeros(()), phase=jnp.asarray(3.0),
                       **norms(grads, state.params))
        return new, metrics

    def phase_step(update):
        """A phase's step: the batch's complete samples go into the memory, a D^f batch is drawn
        from it, then ``update`` (the phase's own parameter update) runs."""

        def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
            keys = step_keys(state, "memory", "dropout", "inner", "outer", "priors")
            batch = cast_inputs(batch, dtype)
            extra = memory_insert(state.extra, batch, spec.modalities, r1, r2)
            state = state.replace(extra=extra)
            mem = memory_batch(extra, keys["memory"], batch_size, dtype)
            new, metrics = update(state, batch, mem, keys)
            metrics["memory"] = extra["count"].astype(jnp.float32)
            return new.replace(step=state.step + 1), {m: metrics[m] for m in
                                                      (*METRICS, "grad_norm", "param_norm")}

        return step

    def enter_meta(state: TrainState) -> TrainState:
        """The priors M, from the memory as it stands when meta-training starts (after the last
        pretraining step's insert, before the first meta step's); key: fixed per seed."""
        return state.replace(extra=compute_priors(state.extra, state.params, state.model_state,
                                                  jax.random.fold_in(state.key, 7)))

    phases = (
        Phase("pretrain_unimodal", mc.phase1_steps,
              phase_step(pretrain(0, tx1, lambda l_img, l_snd, l_fus: l_img + l_snd))),
        Phase("pretrain_fusion", mc.phase2_steps,
              phase_step(pretrain(1, tx2, lambda l_img, l_snd, l_fus: l_fus))),
        Phase("meta", None, phase_step(meta),
              enter=None if mc.reconstruction == "direct" else enter_meta),
    )

    def predict(state: TrainState, batch: Batch) -> jax.Array:
        batch = cast_inputs(batch, dtype)
        net = model.bind(state.params, state.model_state)
        inputs = batch["inputs"]
        logits, _, _, _ = forward(net, mc, inputs[m1], inputs[m2], batch["present"][:, 1],
                                  state.extra["priors"], None, inputs.get(length_key(m1)),
                                  inputs.get(length_key(m2)))
        return logits.astype(jnp.float32)

    return Method(init=init, phases=phases, predict=predict)
