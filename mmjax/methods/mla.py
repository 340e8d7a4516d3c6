"""MLA: multimodal learning with alternating unimodal adaptation, and its shared encoder block.

Zhang, Latham, Yao, "Multimodal Representation Learning by Alternating Unimodal Adaptation", ICLR
2024 (papers/002); released code ``Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-
Adaptation`` (official-code-notes §3).

Algorithm (Algorithm 1 of the paper), paper iteration t::

    model      f_m = g o h_m: one encoder h_m per modality (output width s) and ONE shared linear
               head g (s -> C, parameters phi = (W, b)).
    iteration t  m_t = t mod M                                                      (eq. 1)
               L_t = mean_{b: present[b, m_t]} CE(g(h_{m_t}(x_{b, m_t})), y_b)       (eq. 2)
               only theta_{m_t} (encoder m_t) and phi are updated; the other encoders keep their
               parameters, optimiser state and BatchNorm statistics.
               hbar = mean_{b: present[b, m_t]} h_{m_t}(x_b)   (batch-mean feature, [s])
               P_t = P_{t-1} - P_{t-1} hbar hbar^T P_{t-1} / (alpha + hbar^T P_{t-1} hbar)  (eq. 3)
               grad_W <- P_t grad_W  for t > 0 (W stored [s, C], so P_t acts on the input side)
                                                                                      (eq. 4)
    predict    p_m = softmax(f_m(x_m)),  e_m = -p_m^T log p_m                          (eq. 6)
               lambda_m = exp(max_k e_k - e_m) / sum_v exp(max_k e_k - e_v)            (eq. 7)
               yhat = sum_m lambda_m f_m(x_m)  (logits, as the released code fuses)    (eq. 5)
               missing modalities get lambda = 0 (the softmax runs over present ones; the max too).

One training step is one ROUND of M paper iterations: step s runs t = M s, M s + 1, ...,
M s + M - 1, i.e. the unimodal updates of modalities 0, 1, ..., M - 1 in this order, each a full
iteration (its own forward pass with the parameters the previous one left, its own eq. 3 update of
P, its own optimiser update), all on the step's batch. This is the released code's loop (per batch,
``CE(fc_out(m)).backward(); optimizer.step()`` for m = a, v[, t]; notes §3.2). The paper's eq. 1
alternates one modality per iteration and feeds each iteration from D_{m_t}; it does not say whether
consecutive iterations share a batch, and the released code has them share it. The alternation is
static (a Python loop unrolled in the trace): no conditional or switch, nothing branches on
``state.step``, one program for every step and every mask. So ``train.steps`` counts rounds: T
steps are M T paper iterations, T updates of every encoder and M T of the head and of P. The
optimiser's schedule lengths (``optim.warmup_steps``, ``optim.decay_steps``, cosine's total) and
``alpha_epoch_steps`` stay in training steps (``round_optim``; the optimiser counts M T updates).
(Before this contract a step was ONE paper iteration, m_t = step mod M picked by a switch.)
Eq. 3-4 are ``head_gradient_projection``, an optax gradient transformation whose state is P (and a
count of updates); it is chained before the optimiser.

Paper vs released code (config switches; defaults are the paper):

- ``head_projection``: ``paper`` = eq. 3-4 with the scalar RLS denominator; ``none`` = no
  modification, which is what the released code runs (its ``GSPlugin`` only fires for a parameter
  named ``module.weight`` that the shared head does not have; notes §3.3). The released branch, if
  it ran, would divide element-wise by a d x d matrix and Frobenius-normalise P: not RLS, not here.
- ``entropy``: ``per_sample`` = eq. 6 over the classes of each test sample; ``per_batch`` = the
  released ``calculate_entropy``: softmax over the *batch* axis and one entropy summed over the
  whole [B, C] block per modality (so predictions depend on the batch; notes §3.4). Per-batch
  entropy runs over the samples that have the modality.
- ``fusion``: ``dynamic`` (eq. 5-7) or ``average`` (the mean of the present modalities' logits;
  Table 3's "no DF" rows, whose numbers equal late fusion's), or ``fixed``: the released
  ``valid``'s fixed weights without ``--dynamic`` (``av_alpha`` = 0.55 as ``main()`` passes it:
  0.55 f_a + 0.45 f_v; three modalities 0.35, 0.25, 0.40), ``fusion_weights`` to override them.
  With missing modalities the present ones' weights are renormalised (the released code never
  tests with a modality missing; our choice).
- the optimiser: released SGD(momentum 0.9, ``weight_decay=1e-4``, lr 1e-3, StepLR(70 epochs,
  0.1)); ``optim.weight_decay`` is added to the gradient of the parameters that the update
  moves (encoder m_t and the head), as PyTorch >= 2 skips parameters whose ``.grad`` is None.

"Released" (the configs' ``:released`` variant) = ``head_projection=none``, ``fusion=fixed``
(the README's plain "MLA" command; its "MLA (dynamic fusion)" command is ``fusion=dynamic``,
``entropy=per_batch``), ``optim.weight_decay=1e-4`` with SGD momentum 0.9. The round (M unimodal
updates of one batch, in modality order, one optimiser update each) is the released loop in every
mode. tests/test_golden_mla.py reproduces a recording of the released ``train_epoch`` and ``valid``
(tools/golden/record_mla.py).

Choices where the paper is silent: alpha is a constant (``alpha``; the released code uses
``0.1 ** (1 + i / len(loader))`` within each epoch, available as ``alpha_epoch_steps`` > 0); P is
not updated and the gradient not projected at t = 0 (eq. 4's first case; the code skips it too);
the head bias gradient is never projected (P is s x s; the code does the same); P is symmetrised
after each update (exact arithmetic keeps it symmetric, float32 drifts). With SGD momentum the
encoders not trained at iteration t would still move with their stale momentum (PyTorch < 2 as
released); here they are held still, eq. 2's "optimization is solely on" f_{m_t}. Each unimodal
update of a round gets its own dropout key (``step_keys(state, *modalities)``).

Encoders: the dataset's encoder of ``config.model`` (``mlp``: two FC layers hidden -> feature_dim;
LeNet-5 / sound CNN for AV-MNIST) followed by a projection FC to the shared width s
(``head_dim``) and a ReLU, so features are three FC layers of width 128 (appendix A.3.2) when
hidden = feature_dim = s = 128, and every modality lands in the head's s-dimensional input space.
``ProjectedEncoders`` (mmjax/models/projected.py) is shared with the QMF and OGM-GE baselines
(mmjax/methods/qmf.py, ogm_ge.py) so that they use the same backbones, as in the paper's
comparison.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mmjax import losses
from mmjax.config import POSITIVE, ExperimentConfig, MethodConfig, ModelConfig, OptimConfig, frozen
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, TrainState, cast_inputs, compute_dtype,
                                make_optimizer, one_phase, step_keys)
from mmjax.methods.supervised import initializer, predictor
from mmjax.models.projected import ProjectedEncoders, encoder_modality, path_names


@frozen
class MlaConfig(MethodConfig):
    """MLA's switches; the defaults are the paper's method.

    Attributes:
      head_dim: s, the width of every encoder's output and of the shared head's input.
      head_projection: ``paper`` (eq. 3-4, RLS projector on the head gradient) or ``none``
        (the released code's effective behaviour).
      alpha: alpha of eq. 3 (keeps the denominator away from zero).
      alpha_epoch_steps: > 0 uses the released schedule ``alpha ** (1 + (t mod E) / E)`` with
        E = this many steps per epoch (0.1 -> 0.01 over each epoch); 0 keeps alpha constant.
      fusion: ``dynamic`` (eq. 5-7), ``average`` (mean of present modalities' logits) or
        ``fixed`` (released ``valid`` without ``--dynamic``: ``fusion_weights``).
      fusion_weights: the ``fixed`` weights per modality; empty = the released ones (two
        modalities: av_alpha 0.55, 0.45; three: 0.35, 0.25, 0.40).
      entropy: ``per_sample`` (eq. 6, paper) or ``per_batch`` (released code).
    """

    name: str = "mla"
    head_dim: Annotated[int, POSITIVE] = 128
    head_projection: Literal["paper", "none"] = "paper"
    alpha: Annotated[float, POSITIVE] = 0.1
    alpha_epoch_steps: int = 0
    fusion: Literal["dynamic", "average", "fixed"] = "dynamic"
    fusion_weights: tuple[float, ...] = ()
    entropy: Literal["per_sample", "per_batch"] = "per_sample"


# The released fixed fusion weights (main.py: ``main(av_alpha=0.55)``; ``valid``'s a/v/t_alpha).
RELEASED_FUSION_WEIGHTS = {2: (0.55, 0.45), 3: (0.35, 0.25, 0.40)}


# ----------------------------------------------------------------------------------------------
# Networks.
# ----------------------------------------------------------------------------------------------


class SharedHeadNet(nnx.Module):
    """MLA's model: ``ProjectedEncoders`` and one shared ``Linear(s, C)`` head ``g``."""

    def __init__(self, spec: DatasetSpec, config: ModelConfig, head_dim: int, *, dtype=None,
                 rngs: nnx.Rngs):
        self.enc = ProjectedEncoders(spec, config, head_dim, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(head_dim, spec.num_classes, dtype=dtype, rngs=rngs)

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None, only: str | None = None):
        """``only=m``: ``(f_m(x_m) [B, C], h_m(x_m) [B, s])``; else every modality stacked:
        ``(logits [B, M, C], features [B, M, s])``. ``present`` is not read here."""
        del present
        names = (only,) if only is not None else self.enc.names
        feats = [self.enc.encode(m, inputs, deterministic=deterministic, rngs=rngs)
                 for m in names]
        logits = [self.head(h) for h in feats]
        if only is not None:
            return logits[0], feats[0]
        return jnp.stack(logits, 1), jnp.stack(feats, 1)


# ----------------------------------------------------------------------------------------------
# Eq. 3-4: the head-gradient projection as an optax transformation.
# ----------------------------------------------------------------------------------------------


class ProjectionState(NamedTuple):
    """State of ``head_gradient_projection``: the projector ``P`` [s, s] and the step count."""

    P: jax.Array
    count: jax.Array


def rls_step(P: jax.Array, h: jax.Array, alpha) -> jax.Array:
    """Eq. 3: ``P - P h h^T P / (alpha + h^T P h)`` (recursive least squares), symmetrised.

    ``h = 0`` leaves ``P`` unchanged (a batch with no sample of the modality stores nothing).
    """
    Ph = P @ h
    hP = h @ P
    new = P - jnp.outer(Ph, hP) / (alpha + h @ Ph)
    return 0.5 * (new + new.T)


def alpha_at(alpha: float, epoch_steps: int, count: jax.Array) -> jax.Array:
    """Alpha at update ``count``: constant, or the released ``alpha ** (1 + (t mod E) / E)``."""
    if epoch_steps <= 0:
        return jnp.asarray(alpha, jnp.float32)
    frac = (count % epoch_steps).astype(jnp.float32) / epoch_steps
    return jnp.asarray(alpha, jnp.float32) ** (1.0 + frac)


def head_gradient_projection(dim: int, is_head_kernel: Callable[[tuple], bool], *,
                             alpha: float = 0.1, alpha_epoch_steps: int = 0,
                             updates_per_step: int = 1
                             ) -> optax.GradientTransformationExtraArgs:
    """Eq. 3-4 as a gradient transformation; ``update(grads, state, params, *, feature)``.

    Each call first updates ``P`` with ``feature`` (the batch-mean feature h-bar of the modality
    whose loss produced ``grads``; eq. 3), then left-multiplies the head kernel's gradient
    (``[s, C]``, the leaf where ``is_head_kernel(path)``) by the new ``P`` (eq. 4). The first call
    (t = 0) does neither. Every other leaf passes through unchanged. ``alpha_epoch_steps`` counts
    training steps of ``updates_per_step`` calls each (MLA: M, one round), so alpha is the same
    for every update of one step, as the released code's per-batch alpha.
    """

    def init(params):
        del params
        return ProjectionState(P=jnp.eye(dim, dtype=jnp.float32), count=jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, *, feature, **extra):
        del params, extra
        first = state.count == 0
        a = alpha_at(alpha, alpha_epoch_steps, state.count // updates_per_step)
        P = jnp.where(first, state.P, rls_step(state.P, feature.astype(jnp.float32), a))

        def project(path, g):
            if not is_head_kernel(path):
                return g
            return jnp.where(first, g, (P @ g.astype(jnp.float32)).astype(g.dtype))

        new = jax.tree_util.tree_map_with_path(project, updates)
        return new, ProjectionState(P=P, count=state.count + 1)

    return optax.GradientTransformationExtraArgs(init, update)


# ----------------------------------------------------------------------------------------------
# Eq. 5-7: test-time dynamic fusion.
# ----------------------------------------------------------------------------------------------


def entropies(logits: jax.Array, present: jax.Array, mode: str = "per_sample") -> jax.Array:
    """Eq. 6: ``e[b, m]`` for logits ``[B, M, C]``.

    ``per_sample``: ``-sum_c p log p`` with ``p = softmax`` over classes (paper).
    ``per_batch``: the released code: ``p = softmax`` over the batch axis (of the samples that
    have modality m), ``e_m = -sum_{b, c} p log p``, the same for every sample.
    """
    logits = logits.astype(jnp.float32)
    if mode == "per_sample":
        logp = jax.nn.log_softmax(logits, -1)
        return -(jnp.exp(logp) * logp).sum(-1)
    if mode == "per_batch":
        mask = present[:, :, None]
        masked = jnp.where(mask, logits, -jnp.inf)
        logp = jax.nn.log_softmax(masked, axis=0)
        plogp = jnp.where(mask, jnp.exp(logp) * logp, 0.0)
        e = -plogp.sum((0, 2))  # [M]
        return jnp.broadcast_to(e[None], present.shape)
    raise UserError(f"unknown method.entropy {mode!r}; use per_sample or per_batch")


def fusion_weights(e: jax.Array, present: jax.Array) -> jax.Array:
    """Eq. 7: ``lambda[b, m] = softmax_m(max_k e[b, k] - e[b, m])`` over the present modalities.

    Missing modalities take no part in the max and get weight exactly 0; a sample with no
    modality gets all-zero weights.
    """
    e_max = jnp.max(jnp.where(present, e, -jnp.inf), -1, keepdims=True)
    z = jnp.where(present, e_max - e, -jnp.inf)
    z = z - jnp.max(jnp.where(present, z, 0.0), -1, keepdims=True)  # stable; z <= 0 anyway
    w = jnp.where(present, jnp.exp(z), 0.0)
    return w / jnp.maximum(w.sum(-1, keepdims=True), 1e-30)


def fuse(logits: jax.Array, present: jax.Array, fusion: str = "dynamic",
         entropy: str = "per_sample", weights: tuple[float, ...] = ()) -> jax.Array:
    """Eq. 5: ``sum_m lambda_m f_m`` (``dynamic``), the mean over present modalities
    (``average``) or fixed ``weights`` renormalised over the present ones (``fixed``);
    ``logits [B, M, C]``, ``present bool[B, M]`` -> ``[B, C]``."""
    if fusion == "dynamic":
        w = fusion_weights(entropies(logits, present, entropy), present)
    elif fusion in ("average", "fixed"):
        p = present.astype(jnp.float32)
        if fusion == "fixed":
            fixed = weights or RELEASED_FUSION_WEIGHTS[logits.shape[1]]
            p = p * jnp.asarray(fixed, jnp.float32)[None]
        w = p / jnp.where(p.sum(-1, keepdims=True) > 0, p.sum(-1, keepdims=True), 1.0)
    else:
        raise UserError(f"unknown method.fusion {fusion!r}; use dynamic, average or fixed")
    return jnp.einsum("bmc,bm->bc", logits.astype(jnp.float32), w)


# ----------------------------------------------------------------------------------------------
# Eq. 2: only encoder m_t moves.
# ----------------------------------------------------------------------------------------------


def hold_other_encoders(active: str, modalities: tuple[str, ...], old, new):
    """``new`` with the leaves of the encoders of modalities other than ``active`` (a modality
    name, static) replaced by ``old``'s (works on params and on optimiser states alike)."""

    def pick(path, a, b):
        m = encoder_modality(path)
        if m is None or m not in modalities or m == active:
            return b
        return a

    return jax.tree_util.tree_map_with_path(pick, old, new)


def check_config(config: ExperimentConfig, spec: DatasetSpec) -> None:
    """``UserError`` for switches that cannot run."""
    mc = config.method
    if mc.fusion == "fixed":
        n = len(mc.fusion_weights) or spec.num_modalities
        if n != spec.num_modalities or (not mc.fusion_weights
                                        and n not in RELEASED_FUSION_WEIGHTS):
            raise UserError(f"method.fusion=fixed needs method.fusion_weights with one weight per "
                            f"modality ({spec.num_modalities}); the released ones exist for 2 "
                            f"or 3 modalities only")
    if spec.task != "classification":
        raise UserError(f"mla needs a classification dataset (entropy of class probabilities), "
                        f"{spec.name} is {spec.task}")


def _is_head_kernel(path) -> bool:
    return path_names(path)[-2:] == ("head", "kernel")


def make_net(config: ExperimentConfig, spec: DatasetSpec) -> NNXModel:
    """MLA's ``SharedHeadNet`` as pure init/apply functions."""
    dtype = compute_dtype(config.train.dtype)
    s = config.method.head_dim
    return NNXModel(lambda rngs: SharedHeadNet(spec, config.model, s, dtype=dtype, rngs=rngs))


def round_optim(optim: OptimConfig, updates_per_step: int) -> OptimConfig:
    """``optim`` with its schedule lengths (``warmup_steps``, ``decay_steps``) counted in
    optimiser updates, ``updates_per_step`` of which make one training step: the config's
    lengths stay in training steps (rounds), and a staircase decay never falls inside a round."""
    return dataclasses.replace(optim, warmup_steps=optim.warmup_steps * updates_per_step,
                               decay_steps=optim.decay_steps * updates_per_step)


def released(config: ExperimentConfig) -> ExperimentConfig:
    """Every switch of the released code (tests/test_golden_mla.py): no head projection, fixed
    fusion weights, SGD weight decay 1e-4."""
    return dataclasses.replace(
        config, method=dataclasses.replace(config.method, head_projection="none", fusion="fixed"),
        optim=dataclasses.replace(config.optim, weight_decay=1e-4))


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """MLA on the Method contract; see the module docstring."""
    check_config(config, spec)
    mc = config.method
    modalities = spec.modalities
    M = len(modalities)
    dtype = compute_dtype(config.train.dtype)
    model = make_net(config, spec)
    parts = []
    if mc.head_projection == "paper":
        parts.append(head_gradient_projection(mc.head_dim, _is_head_kernel, alpha=mc.alpha,
                                              alpha_epoch_steps=mc.alpha_epoch_steps,
                                              updates_per_step=M))
    parts.append(make_optimizer(round_optim(config.optim, M), M * config.train.steps))
    tx = optax.chain(*parts)

    def unimodal_update(c: int, state: TrainState, batch: Batch, key: jax.Array):
        """Paper iteration t with m_t = c (a Python int: static): eq. 2's loss of modality c on
        ``batch``, eq. 3-4 on its batch-mean feature, one optimiser update of encoder c and the
        head (the other encoders, their optimiser state and statistics held). ``state.step`` is
        left to the caller."""
        m = modalities[c]
        w = batch["present"][:, c]

        def objective(params):
            (logits, feats), new_ms = model.apply(params, state.model_state, batch["inputs"],
                                                  batch["present"], train=True, key=key, only=m)
            per = losses.per_example(spec.task, logits, batch["label"])
            return losses.weighted_mean(per, w), (new_ms, logits, feats)

        (loss, (model_state, logits, feats)), grads = jax.value_and_grad(
            objective, has_aux=True)(state.params)
        wf = w.astype(jnp.float32)
        hbar = (feats.astype(jnp.float32) * wf[:, None]).sum(0) / jnp.maximum(wf.sum(), 1.0)
        correct = (logits.argmax(-1) == batch["label"]).astype(jnp.float32)
        acc = (correct * wf).sum() / jnp.maximum(wf.sum(), 1.0)
        if mc.head_projection == "paper":
            updates, opt_state = tx.update(grads, state.opt_state, state.params, feature=hbar)
        else:
            updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # Eq. 2: only encoder m_t and the head move; momentum must not move the others.
        params = hold_other_encoders(m, modalities, state.params, params)
        opt_state = hold_other_encoders(m, modalities, state.opt_state, opt_state)
        new_state = state.replace(params=params, model_state=model_state, opt_state=opt_state)
        return new_state, loss, acc, optax.tree.norm(grads)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        """One round: paper iterations t = M s, ..., M s + M - 1 (s = ``state.step``), i.e. the
        unimodal updates of modalities 0, 1, ..., M - 1 in turn, all on this step's batch."""
        keys = step_keys(state, *modalities)  # one dropout key per unimodal update
        batch = cast_inputs(batch, dtype)
        start = state
        metrics, grad_sq = {}, 0.0
        for c, m in enumerate(modalities):  # static: eq. 1's m_t = t mod M, unrolled
            state, loss, acc, gnorm = unimodal_update(c, state, batch, keys[m])
            metrics[f"loss_{m}"] = loss
            metrics[f"train_acc_{m}"] = acc
            grad_sq = grad_sq + gnorm ** 2
        metrics["loss"] = sum(metrics[f"loss_{m}"] for m in modalities) / M
        metrics["grad_norm"] = jnp.sqrt(grad_sq)
        metrics["param_norm"] = optax.tree.norm(start.params)
        if mc.head_projection == "paper":
            metrics["projector_trace"] = jnp.trace(state.opt_state[0].P)
        return state.replace(step=start.step + 1), metrics

    def readout(logits, feats, batch):
        del feats
        return fuse(logits, batch["present"], mc.fusion, mc.entropy, mc.fusion_weights)

    return Method(init=initializer(model, tx.init), phases=one_phase(train_step),
                  predict=predictor(model, dtype, readout))


def make_embed(config: ExperimentConfig, spec: DatasetSpec):
    """``embed(state, batch) -> h [B, M, s]``: every modality's features in the head's input
    space (the modality-gap analysis, section 3.3.3)."""
    model = make_net(config, spec)
    dtype = compute_dtype(config.train.dtype)

    def embed(state: TrainState, batch: Batch) -> jax.Array:
        batch = cast_inputs(batch, dtype)
        (_, feats), _ = model.apply(state.params, state.model_state, batch["inputs"],
                                    batch["present"], train=False)
        return feats.astype(jnp.float32)

    return embed
