"""The training step and the pieces several methods share: the base layer of the method modules.

A method module (a paper's, or ``baselines.py``) imports from here, ``base.py`` and ``models/``,
never from another paper's module.

- ``gradient_step``: one training step, written once for every method that takes one gradient
  of one objective per step: ``value_and_grad`` -> an optional change of the gradient -> one
  optimiser update (of ``opt_state`` or one phase's slot of it) -> the ``loss``, the objective's
  metrics and the gradient and parameter norms; ``phase_step``: that step as one phase of a
  method with an optimiser per phase (AE imputation, CCA / DCCA / DCCAE).
- ``make_supervised``: a one-phase ``Method`` training a model on a loss rule (the baselines,
  FiLM, gated fusion, missing detection, UME-MMA's naive baseline); ``initializer`` and
  ``predictor`` are its ``init`` and ``predict``, used by other methods too.
- loss rules and batch changes: ``fused_loss``, ``augment_batch`` (UME-MMA's modality dropout);
  ``fusion_net``: ``MultimodalNet`` as pure functions.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from mmjax import losses
from mmjax.config import ExperimentConfig
from mmjax.data import missing
from mmjax.data.base import DatasetSpec
from mmjax.methods.base import (Batch, Method, Metrics, NNXModel, TrainState, apply_gradients,
                                cast_inputs, compute_dtype, init_state, make_optimizer, norms,
                                one_phase, step_keys)
from mmjax.models.fusion import MultimodalNet

# An objective: params -> (loss, (changes, metrics)); ``changes`` are the TrainState fields the
# step sets besides ``step``, ``params`` and ``opt_state`` (``model_state=``, ``extra=``).
Objective = Callable[[Any], tuple[jax.Array, tuple[dict, Metrics]]]
# A change of the gradient before the update: (grads, metrics) -> (grads, metrics).
GradEdit = Callable[[Any, Metrics], tuple[Any, Metrics]]


def gradient_step(state: TrainState, tx: optax.GradientTransformation, objective: Objective, *,
                  slot: int | None = None, edit: GradEdit | None = None
                  ) -> tuple[TrainState, Metrics]:
    """One step down ``objective``'s gradient at ``state.params``.

    Args:
      state: the replica's state; the step advances by one.
      tx: the optimiser.
      objective: ``params -> (loss, (changes, metrics))``; ``changes`` (a dict) replaces those
        fields of the state (``model_state=``, ``extra=``).
      slot: None: ``tx``'s state is ``state.opt_state``; an index: ``tx``'s state is
        ``state.opt_state[slot]`` (a multi-phase method's per-phase optimiser, ``opt_state`` a
        tuple), and the other slots are left as they are.
      edit: ``(grads, metrics) -> (grads, metrics)``, a change of the gradient (clipping,
        OGM-GE's modulation) before the update; the norms are those of the changed gradient.

    Returns:
      ``(new state, {"loss", **metrics, "grad_norm", "param_norm"})``.
    """
    (loss, (changes, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(
        state.params)
    if edit is not None:
        grads, metrics = edit(grads, metrics)
    if slot is None:
        new_state = apply_gradients(state, tx, grads, **changes)
    else:
        updates, opt = tx.update(grads, state.opt_state[slot], state.params)
        opt_state = tuple(opt if i == slot else s for i, s in enumerate(state.opt_state))
        new_state = state.replace(step=state.step + 1,
                                  params=optax.apply_updates(state.params, updates),
                                  opt_state=opt_state, **changes)
    return new_state, {"loss": loss, **metrics, **norms(grads, state.params)}


def phase_step(index: int, tx: optax.GradientTransformation, objective: Callable, dtype
               ) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
    """Phase ``index + 1``'s step of a method with one optimiser per phase (``opt_state`` a
    tuple): the batch cast to ``dtype``, ``objective(params, state, batch, keys)``'s gradient
    (``keys``: the step's ``dropout`` key) through ``tx``, which advances only
    ``opt_state[index]``; the metrics gain ``phase`` = index + 1."""

    def step(state: TrainState, batch: Batch) -> tuple[TrainState, Metrics]:
        keys = step_keys(state, "dropout")
        batch = cast_inputs(batch, dtype)
        new_state, metrics = gradient_step(
            state, tx, lambda p: objective(p, state, batch, keys), slot=index)
        metrics["phase"] = jnp.float32(index + 1)
        return new_state, metrics

    return step


def initializer(model: NNXModel, opt_init: Callable, extra: Any = None
                ) -> Callable[[jax.Array, Batch], TrainState]:
    """``init(key, batch)``: ``init_state(model, key, opt_init, extra)``; the batch is not read
    (shapes come from the spec)."""

    def init(key: jax.Array, batch: Batch) -> TrainState:
        del batch
        return init_state(model, key, opt_init, extra)

    return init


def predictor(model: NNXModel, dtype, readout: Callable | None = None
              ) -> Callable[[TrainState, Batch], jax.Array]:
    """``predict(state, batch)`` of a model returning ``(outputs, aux)``: in inference mode on
    the batch cast to ``dtype``, ``outputs`` or ``readout(outputs, aux, batch)``, as float32."""

    def predict(state: TrainState, batch: Batch) -> jax.Array:
        batch = cast_inputs(batch, dtype)
        (outputs, aux), _ = model.apply(state.params, state.model_state, batch["inputs"],
                                        batch["present"], train=False)
        if readout is not None:
            outputs = readout(outputs, aux, batch)
        return outputs.astype(jnp.float32)

    return predict


# A loss rule: (outputs, aux, batch, spec) -> (loss, metrics).
LossFn = Callable[[jax.Array, dict, Batch, DatasetSpec], tuple[jax.Array, dict]]


def make_supervised(config: ExperimentConfig, spec: DatasetSpec, model: NNXModel,
                    loss_fn: LossFn, *,
                    prepare_fn: Callable[[Batch, jax.Array], Batch] | None = None,
                    readout_fn: Callable[[jax.Array, dict, Batch], jax.Array] | None = None
                    ) -> Method:
    """A ``Method`` that trains ``model`` by gradient descent on ``loss_fn``.

    Args:
      config: the experiment (optimiser, steps, dtype).
      spec: the dataset.
      model: the network as pure init/apply functions, returning ``(outputs, aux)``.
      loss_fn: maps the model's ``(outputs, aux)`` and the batch to ``(loss, metrics)``.
      prepare_fn: optional per-step change to the training batch (e.g. modality dropout), given
        the batch and a key.
      readout_fn: maps the model's ``(outputs, aux)`` and the batch to predictions (default:
        ``outputs``).
    """
    tx = make_optimizer(config.optim, config.train.steps)
    dtype = compute_dtype(config.train.dtype)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        keys = step_keys(state, "prepare", "dropout")
        if prepare_fn is not None:
            batch = prepare_fn(batch, keys["prepare"])
        batch = cast_inputs(batch, dtype)

        def objective(params):
            (outputs, aux), model_state = model.apply(
                params, state.model_state, batch["inputs"], batch["present"], train=True,
                key=keys["dropout"])
            loss, metrics = loss_fn(outputs, aux, batch, spec)
            return loss, ({"model_state": model_state}, metrics)

        return gradient_step(state, tx, objective)

    return Method(init=initializer(model, tx.init), phases=one_phase(train_step),
                  predict=predictor(model, dtype, readout_fn))


def fusion_net(config: ExperimentConfig, spec: DatasetSpec, *, num_classes: int | None = None,
               **kwargs) -> NNXModel:
    """``MultimodalNet(spec, config.model, **kwargs)`` (mmjax/models/fusion.py) as pure
    functions, in the config's compute dtype; ``num_classes`` replaces the dataset's (missing
    detection's extra "missing" class)."""
    if num_classes is not None:
        spec = dataclasses.replace(spec, num_classes=num_classes)
    dtype = compute_dtype(config.train.dtype)
    return NNXModel(lambda rngs: MultimodalNet(spec, config.model, dtype=dtype, rngs=rngs,
                                               **kwargs))


# ----------------------------------------------------------------------------------------------
# Loss rules and batch changes.
# ----------------------------------------------------------------------------------------------


def fused_loss(weight_fn: Callable[[Batch], jax.Array], pos_weight: float = 1.0) -> LossFn:
    """Task loss of the fused output, averaged over the samples ``weight_fn`` selects
    (``pos_weight``: see ``losses.per_example``)."""

    def loss_fn(outputs, aux, batch, spec):
        del aux
        values = losses.per_example(spec.task, outputs, batch["label"], pos_weight)
        return losses.weighted_mean(values, weight_fn(batch)), {}

    return loss_fn


def any_present(batch: Batch) -> jax.Array:
    """The samples with at least one modality, ``bool[B]`` (who counts in most losses)."""
    return batch["present"].any(-1)


def augment_batch(batch: Batch, key: jax.Array, p, modalities: tuple[str, ...],
                  mode: str = "one") -> Batch:
    """Missing-modality augmentation: drop modalities (never all) and zero-fill them.

    ``p`` may be traced; ``p = 0`` returns the batch's mask unchanged (and its inputs, whose
    missing entries are already zero). ``mode`` as in ``missing.augmentation_dropout``.
    """
    present = missing.augmentation_dropout(key, batch["present"], p, mode=mode)
    return {**batch, "present": present,
            "inputs": missing.apply(batch["inputs"], present, modalities)}
