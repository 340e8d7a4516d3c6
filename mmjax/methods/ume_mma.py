"""UME-MMA: uni-modal ensemble with missing-modality adaptation; and the naive late-fusion baseline.

Li et al., "What Makes for Robust Multi-Modal Models in the Face of Missing Modalities?", 2023
(papers/003), section 3.3 and appendix B.1. No code was released; the paper is the specification.

Algorithm (one ``mmjax train`` runs both phases, ``Method.phases`` ``unimodal`` then ``adapt``:
each phase is its own compiled program with its own step and optimiser, ``opt_state = (tx1's,
tx2's)``, each phase advancing only its own element)::

    model      o(x) = (1/M) sum_m g_m(f_m(x_m))     every modality, a missing one fed its zero
                                                    input; ``present`` is never read (unaware)
    phase 1    steps [0, phase1_steps):  L1 = sum_m mean_{b: present[b, m]} CE(g_m(f_m(x_bm)), y_b)
               each uni-modal model (encoder f_m + linear head g_m) trained alone on the samples
               that have modality m; the terms share no parameters, so each model gets exactly its
               own uni-modal gradient. Optimiser: ``config.optim``.
    phase 2    steps [phase1_steps, train.steps):  present' = augmentation_dropout(present, p),
               x' = x zero-filled where not present';  L2 = mean_b CE(o(x'), y_b)
               the late-fusion model fine-tuned end to end from the phase-1 parameters with a
               second optimiser: ``config.optim`` at ``phase2_lr``, its own state and schedule.
    predict    o(x) on the zero-filled batch.

Symbols -> paper: f_m, g_m: the "uni-modal models" of Figure 2 and section 3.3, bullet 1 (first
phase). o: "averaging the outputs of these pre-trained uni-modal models" (Figure 2, section 3.3).
augmentation_dropout: section 3.3, bullet 2 ("randomly dropping one modality with a certain
probability ... never drop both ... a probability for feeding complete data"), p = 0.3 (section
4.3, Table 5); implemented by ``mmjax.data.missing.augmentation_dropout`` (mode "one"). Zero
substitute and unawareness: section 3.3 "Discussion" and section 4.1 "Experimental Settings".
phase2_lr: appendix B.1.1 ("During the second phase of UME-MMA, we set the learning rate to
1e-4"; B.1.2 uses 1e-5 for pre-trained ViTs). Samples missing a modality in the training set:
section 3.3 "Flexibility" and section 4.2 (absent from that modality's phase-1 loss, and "treated
as data generated through missing-modality augmentation" in phase 2: augmentation never restores a
missing modality). Ablation switches: Table 4 (``pretrain``, ``augment``, ``freeze_encoders``) and
Table 5 (``dropout_p``).

Where the paper is silent (our choices): the phase-2 length (the paper gives 10 epochs for the
uni-modal training only; the configs add half as many steps again for phase 2); the phase-2
optimiser (the phase-1 optimiser rebuilt at ``phase2_lr`` with fresh state; its state depends only
on parameter shapes, so creating it at init and leaving it untouched through phase 1 equals creating
it at the boundary); the loss of phase 2 (cross-entropy of the averaged logits, as the naive
late-fusion baseline); BatchNorm statistics (sound CNN) in phase 1 are batch statistics over the
whole batch, zero-filled missing samples included, as in the ``lower_bound`` baseline. A global-norm
``optim.grad_clip`` would couple the uni-modal models in phase 1 (keep it 0 for the paper's method).

The naive baseline (Table 1, "end-to-end multi-modal late-fusion learning from scratch") is the
same ensemble model trained on L2 from step 0 without augmentation; it equals ``ume_mma`` with
``pretrain=False, augment=False`` (tested).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import jax
import jax.numpy as jnp

from mmjax import losses
from mmjax.config import FRACTION, POSITIVE, ExperimentConfig, MethodConfig, frozen
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, Phase, TrainState, cast_inputs,
                                compute_dtype, make_optimizer, step_keys)
from mmjax.methods.supervised import (any_present, augment_batch, fused_loss, fusion_net,
                                      gradient_step, initializer, make_supervised, predictor)


@frozen
class UmeMmaConfig(MethodConfig):
    """UME-MMA's switches; the defaults are the paper's method.

    Attributes:
      phase1_steps: steps of phase 1 (uni-modal training); the remaining ``train.steps -
        phase1_steps`` are phase 2. ``phase1_steps == train.steps`` gives the plain uni-modal
        ensemble (no adaptation).
      phase2_lr: phase-2 learning rate (paper: 1e-4 for the CNNs, appendix B.1.1).
      dropout_p: missing-modality augmentation, probability of dropping each modality (paper:
        0.3; Table 5 sweeps 0..0.5).
      dropout_mode: ``one`` (paper: at most one modality dropped per sample) or ``independent``
        (classic modality dropout keeping one); see ``missing.augmentation_dropout``.
      pretrain: False = Table 4 "Only Missing-Aug": no phase 1, the ensemble trained jointly from
        scratch for ``train.steps`` steps at ``optim.lr`` (phase1_steps and phase2_lr unused).
      augment: False = Table 4 "Only Pre-Training": phase 2 without augmentation (= dropout_p 0).
      freeze_encoders: Table 4 "UME-MMA (Freeze Encs)": phase 2 trains only the linear heads;
        encoder parameters and BatchNorm statistics stay bit-identical to the phase-1 result.
    """

    name: str = "ume_mma"
    phase1_steps: int = 600
    phase2_lr: Annotated[float, POSITIVE] = 1e-4
    dropout_p: Annotated[float, FRACTION] = 0.3
    dropout_mode: Literal["one", "independent"] = "one"
    pretrain: bool = True
    augment: bool = True
    freeze_encoders: bool = False


def ensemble_net(config: ExperimentConfig, spec: DatasetSpec, num_classes: int | None = None
                 ) -> NNXModel:
    """The late-fusion model: encoder + linear head per modality, outputs averaged over all."""
    return fusion_net(config, spec, fusion="ensemble", num_classes=num_classes)


def is_encoder(path) -> bool:
    """Whether a parameter path (``jax.tree_util`` keys) lies in an encoder of ``MultimodalNet``."""
    return bool(path) and getattr(path[0], "key", None) == "encoders"


def _keep_encoders(old, new):
    """``new`` with every encoder leaf replaced by ``old``'s (bit-identical)."""
    return jax.tree_util.tree_map_with_path(
        lambda path, a, b: a if is_encoder(path) else b, old, new)


def check_config(config: ExperimentConfig) -> None:
    """``UserError`` for switches that cannot run."""
    mc = config.method
    if mc.pretrain and not 0 <= mc.phase1_steps <= config.train.steps:
        raise UserError(f"method.phase1_steps={mc.phase1_steps} must lie in [0, train.steps="
                        f"{config.train.steps}]")
    if mc.freeze_encoders and not mc.pretrain:
        raise UserError("method.freeze_encoders=True needs method.pretrain=True (frozen random "
                        "encoders)")


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """UME-MMA on the Method contract; see the module docstring."""
    check_config(config)
    mc = config.method
    modalities = spec.modalities
    phase1_steps = mc.phase1_steps if mc.pretrain else 0
    p = mc.dropout_p if mc.augment else 0.0
    lr2 = mc.phase2_lr if mc.pretrain else config.optim.lr
    tx1 = make_optimizer(config.optim, max(phase1_steps, 1))
    tx2 = make_optimizer(dataclasses.replace(config.optim, lr=lr2),
                         max(config.train.steps - phase1_steps, 1))
    dtype = compute_dtype(config.train.dtype)
    model = ensemble_net(config, spec)

    def phase_step(index: int):
        """Phase ``index + 1``'s step: phase 1 the sum of the uni-modal losses on the batch as
        it is, phase 2 the fused loss on the augmented batch; ``tx1`` / ``tx2`` advance only
        ``opt_state[index]``."""
        tx = (tx1, tx2)[index]
        # Phase 1 sees the batch as it is (p = 0 changes nothing); phase 2 the augmented batch.
        rate = 0.0 if index == 0 else p

        def step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
            keys = step_keys(state, "prepare", "dropout")
            batch = augment_batch(batch, keys["prepare"], rate, modalities, mc.dropout_mode)
            batch = cast_inputs(batch, dtype)
            present, label = batch["present"], batch["label"]

            def objective(params):
                (fused, aux), model_state = model.apply(params, state.model_state,
                                                        batch["inputs"], present, train=True,
                                                        key=keys["dropout"])
                metrics = {}
                for c, m in enumerate(modalities):
                    per = losses.per_example(spec.task, aux[f"{m}/logits"], label)
                    metrics[f"loss_{m}"] = losses.weighted_mean(per, present[:, c])
                metrics["loss_fused"] = losses.weighted_mean(
                    losses.per_example(spec.task, fused, label), present.any(-1))
                if index == 0:
                    loss = sum(metrics[f"loss_{m}"] for m in modalities)
                else:
                    loss = metrics["loss_fused"]
                return loss, ({"model_state": model_state}, metrics)

            new_state, metrics = gradient_step(state, tx, objective, slot=index)
            if mc.freeze_encoders and index == 1:
                # Only the encoders have model state (BatchNorm statistics).
                new_state = new_state.replace(
                    params=_keep_encoders(state.params, new_state.params),
                    model_state=state.model_state)
            metrics["phase"] = jnp.float32(index + 1)
            return new_state, metrics

        return step

    phases = (Phase("unimodal", phase1_steps, phase_step(0)),
              Phase("adapt", None, phase_step(1)))
    return Method(init=initializer(model, lambda p: (tx1.init(p), tx2.init(p))), phases=phases,
                  predict=predictor(model, dtype))


def make_naive(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Naive baseline: the ensemble trained end to end from scratch, no augmentation (Table 1)."""
    return make_supervised(config, spec, ensemble_net(config, spec), fused_loss(any_present))
