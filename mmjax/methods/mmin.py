"""MMIN (missing modality imagination network) and CRA (cascaded residual autoencoder imputation).

**MMIN**: Zhao, Li, Jin, "Missing Modality Imagination Network for Emotion Recognition with
Uncertain Missing Modalities", ACL 2021; released code ``AIM3-RUC/MMIN`` (branch ``master``,
official-code-notes §6.2; ``models/mmin_model.py``, ``scripts/CAP_mmin.sh``); RedCore's main
comparator. The paper's text is not in papers/, so the citations below name the paper's sections
and the released code's lines rather than equation numbers. One ``mmjax train`` runs both stages
as two phases (``Method.phases``, ``teacher`` then ``student``), each its own compiled program
with its own step and optimiser (``tx1``, ``tx2``; ``opt_state = (tx1's, tx2's)``, each phase
advancing only its own)::

    stage 1 [0, teacher_steps): the full-modality teacher (released ``UttFusionModel``):
             L_T = CE(head_T([T_1(x_1); ...; T_M(x_M)]), y) on complete samples; only the
             teacher's parameters move.
    at step teacher_steps (stage 2's ``enter``): the student encoders E_m start from the
             teacher's T_m (released ``post_process``); the teacher is frozen from then on (eval
             mode, no gradient).
    stage 2 [teacher_steps, train.steps): every sample gets one of the 2^M - 2 non-empty,
             non-full patterns p uniformly at random (§3.1 "missing-condition training"; released
             ``multimodal_miss_dataset``: one of the 6 patterns of 3 modalities per item):
      §3.2 joint representation  h = [E_1(x_1 p_1); ...; E_M(x_M p_M)]  (missing inputs are
                                 zero, so their values and gradients never enter)
      §3.2 imagination (CRA)     (h', l) = CRA_f(h): cascaded residual AE + transition;
                                 l = the B bottleneck latents (``models.residual_ae``)
      §3.2 forward imagination   L_f = MSE(h', stop_grad(h_T)),
                                 h_T = [T_1(x_1 (1 - p_1)); ...]   (the missing modalities'
                                 teacher representations; released ``T_embds``)
      §3.2 backward imagination  (h'', _) = CRA_b(h'),  L_b = MSE(h'', stop_grad(h))
      §3.2 classifier            logits = C(l)   (``head_input="latents"``: paper Fig. 2 and
                                 released ``netC(self.latent)``)
      §3.3 joint objective       L = w_ce CE + w_f L_f + w_b L_b   (released 1, 4, 2)
    predict  stage 2's forward pass with the batch's own ``present`` mask.

``head_input="imagined"`` (not the paper) classifies the imagined joint representation instead:
``imagine(h, h', p)`` keeps every present modality's features bit for bit and replaces only the
missing modalities' slots by their imagination, then C reads that [B, D] vector (the RedCore
eq. (1) reading of "imagination").

"Released" (the configs' ``:released`` variant) = the defaults (released ``CAP_mmin.sh``:
widths, blocks, loss weights, classifier on the latents) plus ``student_clip`` 1.0 and
``teacher_clip`` 0.5 (the released ``clip_grad_norm_`` per network) and ``optim.beta1`` 0.5 (the
released ``opts`` default; its teacher script passes 0.9). tests/test_golden_mmin.py reproduces a
recording of the released ``MMINModel.optimize_parameters`` (tools/golden/record_mmin.py) with
them; not reproduced: the released LSTM / TextCNN encoders and the two-hidden-layer classifier
(128, 128; here ``MLPHead``), the teacher's pretraining script.

**AE** (``method.imagination=ae``; configs/mfeat/mmin_ae.py): the MMIN authors' released AE
variant (``models/mmin_AE_model.py``, ``scripts/CAP_mmin_AE.sh``), the "AE" row of MLA's Table 2
(which cites Bengio et al. 2006 and describes it no further): the forward and backward
imaginations are each one fully connected autoencoder (``models.fc_autoencoder``: no residual
sum, no transition, a ReLU output) and the classifier reads its one latent ``[B, layers[-1]]``;
teacher, losses, weights, clipping and Adam as above. tests/test_golden_mmin.py reproduces a
recording of the released ``MMINAEModel.optimize_parameters`` too.

**CRA** (registry name ``cra``): Tran, Liu, Zhou, Jin, "Missing Modalities Imputation via
Cascaded Residual Autoencoder", CVPR 2017, the imputation alone: no teacher, no back-translation.
The cascade (eq. 1, ``models.residual_ae``, no transition) imputes in input space: the flattened
inputs of all modalities with the missing ones zeroed, x~ = [x_1 p_1; ...], give
x^ = x~ + sum_k dZ_k, trained by eq. (2) L_rec = MSE(x^, x) on complete data with the same
simulated patterns as MMIN. The missing modalities' inputs are replaced by stop_grad(x^) (present
ones kept bit for bit) and the concat-fusion baseline's classifier (``MultimodalNet``) is trained
on the completed inputs with CE, all modalities marked present. Tran et al. train the imputer
first and the classifier after; here both train in one stage, the stop-gradient keeping them
apart. L = CE + mse_weight L_rec.

Our choices where the paper is silent: the per-modality encoders are the dataset's (MLP for
vectors, LeNet-5 / sound CNN on AV-MNIST) instead of IEMOCAP's LSTM/TextCNN; the classifier C is
the project's ``MLPHead`` (one hidden layer of ``model.hidden``) in place of the released
128-128 FcClassifier; the CE averages over samples with at least one modality; training data
that already lacks a modality keeps it missing (patterns are and-ed with ``present``), and the
teacher learns from the complete samples only.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from mmjax import losses
from mmjax.config import POSITIVE, ExperimentConfig, MethodConfig, ModelConfig, frozen
from mmjax.data import missing
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, TrainState, cast_inputs, Phase,
                                compute_dtype, make_optimizer, one_phase, step_keys)
from mmjax.methods.supervised import gradient_step, initializer
from mmjax.models.encoders import build_encoders, encode
from mmjax.models.fusion import MLPHead, MultimodalNet
from mmjax.models.fc_autoencoder import FcAutoencoder
from mmjax.models.residual_ae import CascadedResidualAE



@frozen
class MminConfig(MethodConfig):
    """MMIN's hyper-parameters; defaults are the released ``scripts/CAP_mmin.sh``'s.

    Attributes:
      imagination: ``cra`` (the paper, released ``mmin_model.py``: the cascaded residual AE) |
        ``ae`` (released ``mmin_AE_model.py``: one fully connected autoencoder,
        ``models.fc_autoencoder``; the classifier reads its one latent).
      ae_layers: one CRA block's (or the AE's) encoder widths (released ``CAP_mmin.sh``
        ``--AE_layers=256,128,64``; ``CAP_mmin_AE.sh`` passes 512,450,384,256).
      ae_blocks: B, CRA blocks (released ``--n_blocks=5``); unused by ``imagination=ae``.
      ce_weight: w_ce (released 1.0).
      mse_weight: w_f, forward imagination (released 4.0).
      cycle_weight: w_b, backward imagination / cycle (released 2.0).
      teacher_steps: stage-1 steps training the full-modality teacher (the released
        ``CAP_utt_fusion.sh`` run); the rest of ``train.steps`` train MMIN.
      head_input: ``latents`` (paper, released: C reads the B bottleneck latents) | ``imagined``
        (C reads the joint representation with only the missing slots imagined).
      teacher_clip: > 0 clips the gradient of each teacher network (each encoder, the head) to
        this norm separately, as released (``UttFusionModel``: 0.5); 0 = off.
      student_clip: the same for stage 2's networks (each encoder, the head, both CRAs;
        released ``MMINModel``: 1.0).
    """

    name: str = "mmin"
    imagination: Literal["cra", "ae"] = "cra"
    ae_layers: Annotated[tuple[int, ...], POSITIVE] = (256, 128, 64)
    ae_blocks: Annotated[int, POSITIVE] = 5
    ce_weight: float = 1.0
    mse_weight: float = 4.0
    cycle_weight: float = 2.0
    teacher_steps: int = 300
    head_input: Literal["latents", "imagined"] = "latents"
    teacher_clip: float = 0.0
    student_clip: float = 0.0


@frozen
class CraConfig(MethodConfig):
    """CRA imputation (Tran et al. 2017) with the concat-fusion classifier.

    Attributes:
      ae_layers: one block's encoder widths (MMIN's released CRA widths 256-128-64).
      ae_blocks: B, the number of residual autoencoders (MMIN's released 5).
      mse_weight: weight of the reconstruction loss L_rec (eq. 2).
    """

    name: str = "cra"
    ae_layers: Annotated[tuple[int, ...], POSITIVE] = (256, 128, 64)
    ae_blocks: Annotated[int, POSITIVE] = 5
    mse_weight: float = 1.0


# ----------------------------------------------------------------------------------------------
# Pure helpers.
# ----------------------------------------------------------------------------------------------


def sample_patterns(key: jax.Array, batch_size: int, num_modalities: int) -> jax.Array:
    """``bool[B, M]``: per sample one of the 2^M - 2 non-empty, non-full patterns, uniformly.

    Pattern k in [1, 2^M - 2] has modality m present iff bit m of k is set (MMIN §3.1; the
    released training set draws one of its 6 incomplete patterns per item).
    """
    k = jax.random.randint(key, (batch_size,), 1, 2 ** num_modalities - 1)
    return ((k[:, None] >> jnp.arange(num_modalities)[None, :]) & 1).astype(bool)


def slot_mask(present: jax.Array, dims: tuple[int, ...]) -> jax.Array:
    """``bool[B, sum(dims)]``: each modality's present bit repeated over its feature slot."""
    return jnp.repeat(present, np.asarray(dims), axis=1, total_repeat_length=sum(dims))


def imagine(h: jax.Array, h_prime: jax.Array, present: jax.Array,
            dims: tuple[int, ...]) -> jax.Array:
    """The imagined joint representation: ``h`` on present modalities' slots, ``h'`` elsewhere.

    Present features are returned bit for bit (a select, no arithmetic).
    """
    return jnp.where(slot_mask(present, dims), h, h_prime.astype(h.dtype))


def mse(a: jax.Array, b: jax.Array, weight: jax.Array) -> jax.Array:
    """PyTorch ``MSELoss`` over the samples with ``weight`` 1: mean of the per-sample means."""
    per = jnp.mean((a.astype(jnp.float32) - b.astype(jnp.float32)) ** 2, axis=-1)
    return losses.weighted_mean(per, weight)


def slot_mse(a: jax.Array, b: jax.Array, slots: jax.Array, weight: jax.Array) -> jax.Array:
    """``mse`` over the feature slots where ``slots`` (bool ``[B, D]``) is True: the forward
    imagination loss compares only the modalities the sample really has (a modality missing from
    the data has no teacher target, only the teacher's encoding of zeros). With every slot True
    (the released code's complete training data) it is ``mse``."""
    w = slots.astype(jnp.float32)
    sq = (a.astype(jnp.float32) - b.astype(jnp.float32)) ** 2
    per = jnp.sum(w * sq, -1) / jnp.maximum(w.sum(-1), 1.0)
    return losses.weighted_mean(per, weight)


def cycle_loss(h: jax.Array, h_cycle: jax.Array, weight: jax.Array) -> jax.Array:
    """MMIN §3.2 backward imagination: ``MSE(h'', stop_grad(h))`` (released ``feat.detach()``)."""
    return mse(jax.lax.stop_gradient(h), h_cycle, weight)


def network_of(path) -> tuple[str, ...]:
    """The released network a parameter belongs to, for per-network clipping: each encoder
    (``encoders/<m>``, ``teacher/encoders/<m>``), the teacher's head, and every other top-level
    module (``head``, ``imagination``, ``backward_ae``)."""
    names = tuple(str(getattr(k, "key", getattr(k, "name", ""))) for k in path)
    if names[0] == "teacher":
        return names[:3] if names[1] == "encoders" else names[:2]
    return names[:2] if names[0] == "encoders" else names[:1]


def clip_per_network(grads, max_norm: float):
    """PyTorch's ``clip_grad_norm_(net.parameters(), max_norm)`` for every ``network_of`` group
    separately: a group whose gradient norm n exceeds ``max_norm`` is scaled by
    ``max_norm / (n + 1e-6)`` (PyTorch's formula)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(grads)
    groups: dict[tuple, list[int]] = {}
    for i, (path, _) in enumerate(leaves):
        groups.setdefault(network_of(path), []).append(i)
    out = [g for _, g in leaves]
    for members in groups.values():
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(out[i].astype(jnp.float32))) for i in members))
        scale = jnp.minimum(1.0, max_norm / (norm + 1e-6))
        for i in members:
            out[i] = out[i] * scale.astype(out[i].dtype)
    return jax.tree_util.tree_unflatten(treedef, out)


def moving(tx: optax.GradientTransformation, teacher: bool) -> optax.GradientTransformation:
    """``tx`` (its state unchanged) whose updates move only the teacher (``teacher``: stage 1) or
    everything but the frozen teacher (stage 2); the other updates are zeros."""

    def update(grads, opt_state, params=None):
        updates, opt_state = tx.update(grads, opt_state, params)
        kept = updates["teacher"]
        if teacher:
            updates = jax.tree.map(jnp.zeros_like, updates)
            updates["teacher"] = kept
        else:
            updates = jax.tree.map(lambda u: u, updates)
            updates["teacher"] = jax.tree.map(jnp.zeros_like, kept)
        return updates, opt_state

    return optax.GradientTransformation(tx.init, update)


def _check_common(name: str, mc, spec: DatasetSpec) -> None:
    if spec.num_modalities < 2:
        raise UserError(f"{name} needs at least two modalities (it imagines missing ones)")
    if not mc.ae_layers:  # its widths' range is declared on the config class, not its length
        raise UserError("method.ae_layers must name at least one width")


# ----------------------------------------------------------------------------------------------
# MMIN.
# ----------------------------------------------------------------------------------------------


class Teacher(nnx.Module):
    """The full-modality teacher: encoders T_m and a head on ``[T_1(x_1); ...; T_M(x_M)]``."""

    def __init__(self, spec: DatasetSpec, model: ModelConfig, *, dtype=None, rngs: nnx.Rngs):
        self.modalities = tuple(spec.modalities)
        self.encoders = build_encoders(spec, model, dtype=dtype, rngs=rngs)
        dim = sum(self.encoders[m].out_dim for m in self.modalities)
        self.head = MLPHead(dim, model.hidden, spec.num_classes, model.dropout, dtype=dtype,
                            rngs=rngs)

    def features(self, inputs: dict, *, deterministic: bool, rngs=None) -> jax.Array:
        """``[B, D]``: the concatenated teacher features of ``inputs`` (as given; sequence
        lengths ``inputs["<m>_len"]`` reach sequence encoders)."""
        return jnp.concatenate([encode(self.encoders[m], inputs[m], inputs.get(length_key(m)),
                                       deterministic=deterministic, rngs=rngs)
                                for m in self.modalities], -1)


class MminNet(nnx.Module):
    """Teacher, student encoders, forward and backward imagination (CRAs or AEs), classifier."""

    def __init__(self, spec: DatasetSpec, model: ModelConfig, mc: MminConfig, *, dtype=None,
                 rngs: nnx.Rngs):
        self.modalities = tuple(spec.modalities)
        self.teacher = Teacher(spec, model, dtype=dtype, rngs=rngs)
        self.encoders = build_encoders(spec, model, dtype=dtype, rngs=rngs)
        self.dims = tuple(self.encoders[m].out_dim for m in self.modalities)
        dim = sum(self.dims)
        layers = tuple(mc.ae_layers)
        def autoencoder():
            if mc.imagination == "ae":
                return FcAutoencoder(dim, layers, dtype=dtype, rngs=rngs)
            return CascadedResidualAE(dim, layers, mc.ae_blocks, dim, dtype=dtype, rngs=rngs)

        self.imagination = autoencoder()
        self.backward_ae = autoencoder()
        self.head_input = mc.head_input
        head_dim = self.imagination.latent_dim if mc.head_input == "latents" else dim
        self.head = MLPHead(head_dim, model.hidden, spec.num_classes, model.dropout,
                            dtype=dtype, rngs=rngs)

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None) -> dict:
        """Stage 2's forward pass: ``h``, ``h_prime``, ``h_cycle``, ``imagined``, ``logits``."""
        x = missing.apply(inputs, present, self.modalities)
        h = jnp.concatenate([encode(self.encoders[m], x[m], x.get(length_key(m)),
                                    deterministic=deterministic, rngs=rngs)
                             for m in self.modalities], -1)
        h_prime, latents = self.imagination(h)
        h_cycle, _ = self.backward_ae(h_prime)
        imagined = imagine(h, h_prime, present, self.dims)
        feats = latents if self.head_input == "latents" else imagined
        logits = self.head(feats, deterministic=deterministic, rngs=rngs)
        return {"h": h, "h_prime": h_prime, "h_cycle": h_cycle, "imagined": imagined,
                "logits": logits}


def start_student(params, model_state):
    """Student encoders (params and BatchNorm statistics) := the teacher's (copies)."""
    params = jax.tree.map(lambda x: x, params)
    params["encoders"] = jax.tree.map(lambda x: x, params["teacher"]["encoders"])
    if "encoders" in model_state:
        model_state = jax.tree.map(lambda x: x, model_state)
        model_state["encoders"] = jax.tree.map(lambda x: x, model_state["teacher"]["encoders"])
    return params, model_state


def released(config: ExperimentConfig) -> ExperimentConfig:
    """Every switch of the released code (tests/test_golden_mmin.py): per-network gradient
    clipping (teacher 0.5, MMIN 1.0) and Adam beta1 0.5."""
    method = dataclasses.replace(config.method, teacher_clip=0.5, student_clip=1.0)
    return dataclasses.replace(config, method=method,
                               optim=dataclasses.replace(config.optim, beta1=0.5))


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """MMIN on the Method contract; see the module docstring."""
    mc = config.method
    _check_common("mmin", mc, spec)
    if not 1 <= mc.teacher_steps < config.train.steps:
        raise UserError(f"method.teacher_steps={mc.teacher_steps} must lie in [1, train.steps="
                        f"{config.train.steps})")
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: MminNet(spec, config.model, mc, dtype=dtype, rngs=rngs))
    tx1 = make_optimizer(config.optim, mc.teacher_steps)
    tx2 = make_optimizer(config.optim, config.train.steps - mc.teacher_steps)
    mods = spec.modalities

    def phase_step(index: int, tx, objective, clip: float):
        """The step of stage ``index + 1``: ``objective``'s gradient (each network's clipped to
        norm ``clip`` if > 0) through ``tx``, which advances only ``opt_state[index]``; stage 1
        moves the teacher only, stage 2 everything but the (frozen) teacher."""
        tx = moving(tx, teacher=index == 0)

        def clipped(grads, metrics):
            return clip_per_network(grads, clip), metrics

        def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
            keys = step_keys(state, "dropout", "pattern")
            batch = cast_inputs(batch, dtype)
            new_state, metrics = gradient_step(
                state, tx, lambda p: objective(p, state.model_state, batch, keys), slot=index,
                edit=clipped if clip > 0 else None)
            metrics["phase"] = jnp.float32(index + 1)
            return new_state, metrics

        return step

    def rngs(keys):
        return nnx.Rngs(dropout=keys["dropout"])

    def teacher_loss(p, model_state, batch, keys):
        present, label = batch["present"], batch["label"]
        zero = jnp.zeros((), jnp.float32)
        module, r = model.bind(p, model_state), rngs(keys)
        x = missing.apply(batch["inputs"], present, mods)
        logits = module.teacher.head(module.teacher.features(x, deterministic=False, rngs=r),
                                     deterministic=False, rngs=r)
        ce = losses.weighted_mean(losses.per_example(spec.task, logits, label), present.all(-1))
        return ce, ({"model_state": nnx.state(module, nnx.Not(nnx.Param))},
                    {"ce_teacher": ce, "ce": zero, "mse_forward": zero, "cycle": zero})

    def mmin_loss(p, model_state, batch, keys):
        present, label = batch["present"], batch["label"]
        zero = jnp.zeros((), jnp.float32)
        module = model.bind(p, model_state)
        sim = sample_patterns(keys["pattern"], present.shape[0], len(mods)) & present
        out = module(batch["inputs"], sim, deterministic=False, rngs=rngs(keys))
        # Teacher representations of the missing modalities (released A_reverse etc.).
        target = module.teacher.features(missing.apply(batch["inputs"], ~sim, mods),
                                         deterministic=True)
        weight = sim.any(-1)
        ce = losses.weighted_mean(losses.per_example(spec.task, out["logits"], label), weight)
        fwd = slot_mse(out["h_prime"], jax.lax.stop_gradient(target),
                       slot_mask(present, module.dims), weight)
        cyc = cycle_loss(out["h"], out["h_cycle"], weight)
        loss = mc.ce_weight * ce + mc.mse_weight * fwd + mc.cycle_weight * cyc
        return loss, ({"model_state": nnx.state(module, nnx.Not(nnx.Param))},
                      {"ce_teacher": zero, "ce": ce, "mse_forward": fwd, "cycle": cyc})

    def enter_student(state: TrainState) -> TrainState:
        """Stage 2 starts with the student encoders copied from the teacher's."""
        params, model_state = start_student(state.params, state.model_state)
        return state.replace(params=params, model_state=model_state)

    def predict(state: TrainState, batch: Batch) -> jax.Array:
        batch = cast_inputs(batch, dtype)
        module = model.bind(state.params, state.model_state)
        out = module(batch["inputs"], batch["present"], deterministic=True)
        return out["logits"].astype(jnp.float32)

    phases = (Phase("teacher", mc.teacher_steps,
                    phase_step(0, tx1, teacher_loss, mc.teacher_clip)),
              Phase("student", None, phase_step(1, tx2, mmin_loss, mc.student_clip),
                    enter_student))
    return Method(init=initializer(model, lambda p: (tx1.init(p), tx2.init(p))), phases=phases,
                  predict=predict)


# ----------------------------------------------------------------------------------------------
# CRA.
# ----------------------------------------------------------------------------------------------


class CraNet(nnx.Module):
    """The input-space cascade (Tran et al. eq. 1) and the concat-fusion classifier."""

    def __init__(self, spec: DatasetSpec, model: ModelConfig, mc: CraConfig, *, dtype=None,
                 rngs: nnx.Rngs):
        self.modalities = tuple(spec.modalities)
        self.shapes = tuple(tuple(s) for s in spec.shapes)
        self.dims = tuple(math.prod(s) for s in self.shapes)
        self.cra = CascadedResidualAE(sum(self.dims), tuple(mc.ae_layers), mc.ae_blocks,
                                      dtype=dtype, rngs=rngs)
        self.net = MultimodalNet(spec, model, fusion="concat", dtype=dtype, rngs=rngs)

    def impute(self, inputs: dict, present: jax.Array) -> tuple[jax.Array, jax.Array, dict]:
        """``(x, x_hat, completed)``: flat true inputs, the cascade's output, and the inputs with
        only the missing modalities replaced by ``stop_grad(x_hat)`` (present ones kept)."""
        x = jnp.concatenate([inputs[m].reshape(inputs[m].shape[0], -1)
                             for m in self.modalities], -1)
        x_tilde = jnp.where(slot_mask(present, self.dims), x, 0.0)
        x_hat, _ = self.cra(x_tilde)
        done = imagine(x, jax.lax.stop_gradient(x_hat), present, self.dims)
        parts = jnp.split(done, list(itertools.accumulate(self.dims))[:-1], -1)
        completed = {**inputs, **{m: part.reshape((-1, *shape))
                                  for m, part, shape in zip(self.modalities, parts, self.shapes)}}
        return x, x_hat, completed

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        """``(logits, x, x_hat)`` with the missing modalities imputed."""
        x, x_hat, completed = self.impute(inputs, present)
        logits, _ = self.net(completed, jnp.ones_like(present), deterministic=deterministic,
                             rngs=rngs)
        return logits, x, x_hat


def make_cra(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """CRA imputation + concat fusion on the Method contract; see the module docstring."""
    mc = config.method
    _check_common("cra", mc, spec)
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: CraNet(spec, config.model, mc, dtype=dtype, rngs=rngs))
    tx = make_optimizer(config.optim, config.train.steps)
    mods = spec.modalities

    def objective(params, state: TrainState, batch: Batch, keys: dict):
        present = batch["present"]
        sim = sample_patterns(keys["pattern"], present.shape[0], len(mods)) & present
        # The true inputs of simulated-missing modalities are the targets; the network never
        # reads them (``x_tilde`` zeroes them).
        (logits, x, x_hat), model_state = model.apply(params, state.model_state,
                                                      batch["inputs"], sim, train=True,
                                                      key=keys["dropout"])
        weight = sim.any(-1)
        ce = losses.weighted_mean(losses.per_example(spec.task, logits, batch["label"]), weight)
        # Tran et al. eq. (2): reconstruct the complete input (complete samples only).
        rec = mse(x_hat, x, present.all(-1))
        loss = ce + mc.mse_weight * rec
        return loss, ({"model_state": model_state}, {"ce": ce, "mse_rec": rec})

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        keys = step_keys(state, "dropout", "pattern")
        batch = cast_inputs(batch, dtype)
        return gradient_step(state, tx, lambda p: objective(p, state, batch, keys))

    def predict(state: TrainState, batch: Batch) -> jax.Array:
        batch = cast_inputs(batch, dtype)
        (logits, _, _), _ = model.apply(state.params, state.model_state, batch["inputs"],
                                        batch["present"], train=False)
        return logits.astype(jnp.float32)

    return Method(init=initializer(model, tx.init), phases=one_phase(train_step),
                  predict=predict)
