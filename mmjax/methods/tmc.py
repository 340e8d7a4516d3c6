"""TMC and ETMC: trusted multi-view classification, Dirichlet evidence fused by Dempster's rule.

Han et al., "Trusted Multi-View Classification", ICLR 2021 (TMC), and Han et al., "Trusted
Multi-View Classification with Dynamic Evidential Fusion", TPAMI 2022 (ETMC, the pseudo-view);
RAML's uncertainty baselines (papers/001, Tables I-III). Algorithm, K classes::

    evidence     e_m = softplus(g_m(E_m(x_m))) >= 0           per modality (TMC section 3.1;
                                                              the released code uses Softplus)
    Dirichlet    alpha_m = e_m + 1,  S_m = sum_k alpha_mk
    opinion      b_mk = e_mk / S_m,  u_m = K / S_m            subjective logic, sum_k b_k + u = 1
    combination  (reduced Dempster-Shafer, TMC Definition 3.1 "Dempster's combination rule for two
                 independent sets of masses"):
                 C   = sum_{i != j} b1_i b2_j                 the conflict
                 b_k = (b1_k b2_k + b1_k u2 + b2_k u1) / (1 - C)
                 u   = u1 u2 / (1 - C)
                 back to a Dirichlet: S = K / u, e = b S, alpha = e + 1. M opinions: folded
                 left, opinion_1 (+) opinion_2 (+) ... (the rule is associative and commutative)
    ETMC         adds a pseudo-view: e_P = softplus(g_P([f_1, ..., f_M])) from the concatenated
                 (zeroed where missing) features; its opinion joins the combination and the loss
    loss         L(alpha) = sum_k y_k (psi(S) - psi(alpha_k))                        (TMC Eq. L_ace)
                          + lambda_t KL(Dir(p | alpha~) || Dir(p | 1)),  alpha~ = y + (1 - y) alpha
                 lambda_t = min(1, t / annealing_steps)
                 total = sum_m mean_{present m} L(alpha_m) [+ L(alpha_P)] + mean L(alpha_fused)
    predict      log(alpha_fused / S_fused): the log of the fused Dirichlet's expected
                 probabilities (argmax = the fused evidence's argmax)

A missing modality drops its opinion: alpha_m = 1 (no evidence: b_m = 0, u_m = 1, the vacuous
opinion), which is the identity of the combination rule (b1 (+) vacuous = b1 exactly, tested), so
the fusion is over the present opinions only; its per-modality loss is masked out. The pseudo-view
is present when any modality is (its input is the zero-filled concatenation). A sample with no
modality gets the vacuous fused opinion (uniform prediction). ``present`` enters only as masks.

Released-code details kept (hanmenghan/TMC): Softplus evidence, the KL term on
``alpha~ = e (1 - y) + 1``, an annealing coefficient ``min(1, epoch / lambda_epochs)`` (here per
step: ``annealing_steps``, default a tenth of the run as 50 of 500 epochs in the released TMC),
and the sum of per-view and fused losses. Evidence heads: the repo's MLP head on each encoder.

The released coefficient is a staircase in epochs: TMC (``TMC ICLR/train.py``) passes the epoch
counted from 1 (so its first epoch already has 1 / lambda_epochs), ETMC (``ETMC TPAMI``) counts
from 0 and anneals over 10 of 500 epochs. ``annealing_epoch_steps`` = E > 0 holds lambda constant
within each epoch of E steps and ``annealing_offset`` = 1 counts epochs from 1:
``lambda_t = min(1, (t // E + offset) E / annealing_steps)`` (E = 1 without epochs).

"Released" (the configs' ``:released`` variant) = ``annealing_epoch_steps`` = one epoch,
``annealing_offset`` 1 (TMC) or 0 (ETMC), annealing over a tenth (TMC) or a fiftieth (ETMC) of the
run, Adam with ``weight_decay=1e-5``. tests/test_golden_tmc.py reproduces recordings of both
released training loops (tools/golden/record_tmc.py) with them: the combination, the losses and
the annealing are the released ones; the released networks (TMC: one linear layer per raw view;
ETMC: ResNet-18 encoders) are not.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax import losses
from mmjax.config import NON_NEGATIVE, ExperimentConfig, MethodConfig, ModelConfig, frozen
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, TrainState, cast_inputs, compute_dtype,
                                make_optimizer, one_phase, step_keys)
from mmjax.methods.supervised import gradient_step, initializer, predictor
from mmjax.models.encoders import build_encoders, encode, masked_features
from mmjax.models.fusion import MLPHead


@frozen
class TmcConfig(MethodConfig):
    """TMC's (and ETMC's) switches.

    Attributes:
      pseudo_view: add ETMC's pseudo-view (evidence from the concatenated features); registered
        as ``etmc`` with True.
      annealing_steps: steps over which the KL weight lambda_t grows linearly to 1; 0 = a tenth
        of ``train.steps`` (the released code anneals over 50 of 500 epochs).
      annealing_epoch_steps: 0 = lambda_t changes every step; E > 0 = once per epoch of E steps
        (the released staircase).
      annealing_offset: epochs (steps, with E = 0) added to the count: 1 = the released TMC,
        which counts epochs from 1.
    """

    name: str = "tmc"
    pseudo_view: bool = False
    annealing_steps: Annotated[int, NON_NEGATIVE] = 0
    annealing_epoch_steps: Annotated[int, NON_NEGATIVE] = 0
    annealing_offset: Annotated[int, NON_NEGATIVE] = 0


@frozen
class EtmcConfig(TmcConfig):
    """ETMC: TMC with the pseudo-view on (same switches)."""

    name: str = "etmc"
    pseudo_view: bool = True


# ----------------------------------------------------------------------------------------------
# The defining computations.
# ----------------------------------------------------------------------------------------------


def opinion(alpha: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Dirichlet ``alpha [..., K]`` -> subjective opinion ``(b [..., K], u [..., 1])``."""
    k = alpha.shape[-1]
    s = alpha.sum(-1, keepdims=True)
    return (alpha - 1.0) / s, k / s


def combine_two(alpha1: jax.Array, alpha2: jax.Array) -> jax.Array:
    """Reduced Dempster-Shafer combination of two Dirichlet opinions (TMC Definition 3.1)."""
    k = alpha1.shape[-1]
    b1, u1 = opinion(alpha1)
    b2, u2 = opinion(alpha2)
    # Conflict C = sum_{i != j} b1_i b2_j = (sum b1)(sum b2) - sum_k b1_k b2_k.
    conflict = (b1.sum(-1, keepdims=True) * b2.sum(-1, keepdims=True)
                - (b1 * b2).sum(-1, keepdims=True))
    scale = 1.0 / (1.0 - conflict)
    b = (b1 * b2 + b1 * u2 + b2 * u1) * scale
    u = u1 * u2 * scale
    s = k / u
    return b * s + 1.0


def combine(alphas: jax.Array, present: jax.Array) -> jax.Array:
    """Combines ``alphas [B, V, K]`` over the views where ``present [B, V]``; missing = vacuous."""
    alphas = jnp.where(present[..., None], alphas, 1.0)
    fused = alphas[:, 0]
    for v in range(1, alphas.shape[1]):
        fused = combine_two(fused, alphas[:, v])
    return fused


def edl_loss(alpha: jax.Array, label: jax.Array, annealing: jax.Array) -> jax.Array:
    """Per-example TMC loss ``[B]``: the adjusted cross-entropy plus the annealed KL to Dir(1)."""
    k = alpha.shape[-1]
    y = jax.nn.one_hot(label, k, dtype=alpha.dtype)
    s = alpha.sum(-1)
    ace = (y * (jax.scipy.special.digamma(s)[:, None] - jax.scipy.special.digamma(alpha))).sum(-1)
    alpha_tilde = y + (1.0 - y) * alpha  # the evidence of the true class removed
    return ace + annealing * kl_to_uniform(alpha_tilde)


def kl_to_uniform(alpha: jax.Array) -> jax.Array:
    """``KL(Dir(alpha) || Dir(1))`` per row (``[B, K] -> [B]``)."""
    k = alpha.shape[-1]
    s = alpha.sum(-1)
    gammaln, digamma = jax.scipy.special.gammaln, jax.scipy.special.digamma
    log_norm = gammaln(s) - gammaln(alpha).sum(-1) - gammaln(jnp.asarray(k, alpha.dtype))
    return log_norm + ((alpha - 1.0) * (digamma(alpha) - digamma(s)[:, None])).sum(-1)


# ----------------------------------------------------------------------------------------------
# The network and the method.
# ----------------------------------------------------------------------------------------------


class EvidenceNet(nnx.Module):
    """Encoders, one evidence head per modality, (ETMC) the pseudo-view's head, and the fusion.

    Returns ``(log expected probabilities of the fused opinion [B, K], aux)``; ``aux["alphas"]``
    holds every view's Dirichlet ``[B, V, K]`` (V = M, +1 for the pseudo-view, last) and
    ``aux["fused_alpha"]`` the combination over the present views.
    """

    def __init__(self, spec: DatasetSpec, config: ModelConfig, *, pseudo_view: bool, dtype=None,
                 rngs: nnx.Rngs):
        self.modalities = tuple(spec.modalities)
        self.pseudo_view = pseudo_view
        self.encoders = build_encoders(spec, config, dtype=dtype, rngs=rngs)
        k = spec.num_classes
        self.heads = nnx.Dict({m: MLPHead(self.encoders[m].out_dim, config.hidden, k,
                                          config.dropout, dtype=dtype, rngs=rngs)
                               for m in self.modalities})
        total = sum(self.encoders[m].out_dim for m in self.modalities)
        self.pseudo = (MLPHead(total, config.hidden, k, config.dropout, dtype=dtype, rngs=rngs)
                       if pseudo_view else None)

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        """Every view's ``alpha = softplus(logits) + 1`` and their combination."""
        aux, logits, feats = {}, [], []
        for c, m in enumerate(self.modalities):
            f = encode(self.encoders[m], inputs[m], inputs.get(length_key(m)),
                       deterministic=deterministic, rngs=rngs)
            aux[f"{m}/features"] = f
            feats.append(masked_features(f, present[:, c]))
            logits.append(self.heads[m](f, deterministic=deterministic, rngs=rngs))
        if self.pseudo is not None:
            logits.append(self.pseudo(jnp.concatenate(feats, -1), deterministic=deterministic,
                                      rngs=rngs))
        alphas = jax.nn.softplus(jnp.stack(logits, 1).astype(jnp.float32)) + 1.0
        fused = combine(alphas, view_mask(present, self.pseudo_view))
        aux["alphas"], aux["fused_alpha"] = alphas, fused
        return jnp.log(fused / fused.sum(-1, keepdims=True)), aux


def view_mask(present: jax.Array, pseudo_view: bool) -> jax.Array:
    """``present [B, M]`` -> the views' mask ``[B, V]`` (the pseudo-view: any modality present)."""
    if pseudo_view:
        return jnp.concatenate([present, present.any(-1, keepdims=True)], -1)
    return present


def released(config: ExperimentConfig, epoch_steps: int) -> ExperimentConfig:
    """Every switch of the released code (tests/test_golden_tmc.py), with ``epoch_steps`` steps
    per epoch: the KL weight anneals as a staircase of epochs over a tenth of the run (TMC,
    epochs counted from 1) or a fiftieth (ETMC, from 0); Adam weight decay 1e-5."""
    etmc = config.method.name == "etmc"
    method = dataclasses.replace(
        config.method, annealing_steps=max(config.train.steps // (50 if etmc else 10), 1),
        annealing_epoch_steps=epoch_steps, annealing_offset=0 if etmc else 1)
    return dataclasses.replace(config, method=method,
                               optim=dataclasses.replace(config.optim, weight_decay=1e-5))


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """TMC (or ETMC with ``pseudo_view``) on the Method contract; see the module docstring."""
    mc = config.method
    if spec.task != "classification":
        raise UserError(f"{mc.name} needs a classification dataset, {spec.name} is {spec.task}")
    annealing_steps = mc.annealing_steps or max(config.train.steps // 10, 1)
    unit = mc.annealing_epoch_steps or 1
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: EvidenceNet(spec, config.model, pseudo_view=mc.pseudo_view,
                                              dtype=dtype, rngs=rngs))
    names = spec.modalities + (("pseudo",) if mc.pseudo_view else ())
    tx = make_optimizer(config.optim, config.train.steps)

    def loss_fn(alphas, fused, batch, lam):
        label = batch["label"]
        mask = view_mask(batch["present"], mc.pseudo_view)
        metrics = {}
        for v, name in enumerate(names):
            metrics[f"loss_{name}"] = losses.weighted_mean(edl_loss(alphas[:, v], label, lam),
                                                           mask[:, v])
        metrics["loss_fused"] = losses.weighted_mean(edl_loss(fused, label, lam),
                                                     batch["present"].any(-1))
        metrics["uncertainty_fused"] = (alphas.shape[-1] / fused.sum(-1)).mean()
        metrics["kl_weight"] = lam
        return sum(metrics[f"loss_{n}"] for n in names) + metrics["loss_fused"], metrics

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        keys = step_keys(state, "dropout")
        batch = cast_inputs(batch, dtype)
        # lambda_t = min(1, t / annealing_steps), t the step, or the released epoch staircase.
        t = ((state.step // unit + mc.annealing_offset) * unit).astype(jnp.float32)
        lam = jnp.minimum(1.0, t / annealing_steps)

        def objective(params):
            (_, aux), model_state = model.apply(params, state.model_state, batch["inputs"],
                                                batch["present"], train=True,
                                                key=keys["dropout"])
            loss, metrics = loss_fn(aux["alphas"], aux["fused_alpha"], batch, lam)
            return loss, ({"model_state": model_state}, metrics)

        return gradient_step(state, tx, objective)

    return Method(init=initializer(model, tx.init), phases=one_phase(train_step),
                  predict=predictor(model, dtype))
