"""The first baselines: lower/upper bound, concat, sum and late fusion, augmentation, multi-task.

All are supervised training of a ``MultimodalNet`` (mmjax/models/fusion.py) with the task loss;
they differ in the fusion rule, in which samples count, and in what the training step does to
``present``:

| name          | model                               | training                                        |
|---------------|-------------------------------------|-------------------------------------------------|
| lower_bound   | one modality's encoder + head       | samples where that modality is present          |
| upper_bound   | concat fusion                       | complete samples only ("no missing")            |
| concat        | concat (intermediate) fusion        | every sample, missing features zeroed           |
| sum           | projected features summed           | every sample                                    |
| late          | mean of unimodal logits             | every sample; the mean runs over present ones   |
| augmentation  | concat fusion                       | + modality dropout, p per modality, never all   |
| multi_task    | concat fusion + unimodal heads      | L = L_fused + w * sum_m mean_{present m} L_m     |

Modality dropout is UME-MMA's augmentation (section 3.3): each present modality of a training
sample is dropped with probability ``dropout_p``, never all of a sample's modalities, and the
dropped input is zero-filled exactly as a missing one.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from mmjax import losses
from mmjax.config import ExperimentConfig, MethodConfig, frozen
from mmjax.data import missing
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, TrainState, apply_gradients, cast_inputs,
                                compute_dtype, init_state, make_optimizer, norms, one_phase,
                                step_keys)
from mmjax.models.fusion import MultimodalNet


@frozen
class UpperBoundConfig(MethodConfig):
    """Upper bound: concat fusion trained on the complete samples.

    Attributes:
      pos_weight: multi-label tasks: weight of the positive labels in the binary cross-entropy
        (``losses.per_example``; SMIL's MM-IMDb loss uses 2.0); 1.0 elsewhere.
    """

    name: str = "upper_bound"
    pos_weight: float = 1.0


@frozen
class LowerBoundConfig(MethodConfig):
    """Lower bound: a model of one modality only.

    Attributes:
      modality: the modality used; empty = the dataset's first.
      pos_weight: as ``UpperBoundConfig.pos_weight``.
    """

    name: str = "lower_bound"
    modality: str = ""
    pos_weight: float = 1.0


@frozen
class AugmentationConfig(MethodConfig):
    """Concat fusion trained with modality dropout.

    Attributes:
      dropout_p: probability of dropping each present modality of a training sample (UME-MMA's
        default is 0.3); a sample never loses all its modalities.
    """

    name: str = "augmentation"
    dropout_p: float = 0.3


@frozen
class MultiTaskConfig(MethodConfig):
    """Concat fusion plus one linear head per modality, trained jointly.

    Attributes:
      unimodal_weight: weight w of the unimodal losses.
    """

    name: str = "multi_task"
    unimodal_weight: float = 1.0


# A loss rule: (outputs, aux, batch, spec) -> (loss, metrics).
LossFn = Callable[[jax.Array, dict, Batch, DatasetSpec], tuple[jax.Array, dict]]


def make_supervised(config: ExperimentConfig, spec: DatasetSpec, model: NNXModel,
                    loss_fn: LossFn, *,
                    prepare_fn: Callable[[Batch, jax.Array], Batch] | None = None,
                    readout_fn: Callable[[jax.Array, dict], jax.Array] | None = None) -> Method:
    """A ``Method`` that trains ``model`` by gradient descent on ``loss_fn``.

    Args:
      config: the experiment (optimiser, steps, dtype).
      spec: the dataset.
      model: the network as pure init/apply functions.
      loss_fn: maps the model's ``(outputs, aux)`` and the batch to ``(loss, metrics)``.
      prepare_fn: optional per-step change to the training batch (e.g. modality dropout), given
        the batch and a key.
      readout_fn: maps the model's ``(outputs, aux)`` to predictions (default: ``outputs``).
    """
    tx = make_optimizer(config.optim, config.train.steps)
    dtype = compute_dtype(config.train.dtype)

    def init(key: jax.Array, batch: Batch) -> TrainState:
        del batch  # shapes come from the spec
        return init_state(model, key, tx.init)

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
            return loss, (model_state, metrics)

        (loss, (model_state, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params)
        new_state = apply_gradients(state, tx, grads, model_state=model_state)
        return new_state, {"loss": loss, **metrics, **norms(grads, state.params)}

    def predict(state: TrainState, batch: Batch) -> jax.Array:
        batch = cast_inputs(batch, dtype)
        (outputs, aux), _ = model.apply(state.params, state.model_state, batch["inputs"],
                                        batch["present"], train=False)
        if readout_fn is not None:
            outputs = readout_fn(outputs, aux)
        return outputs.astype(jnp.float32)

    return Method(init=init, phases=one_phase(train_step), predict=predict)


# ----------------------------------------------------------------------------------------------
# Loss rules.
# ----------------------------------------------------------------------------------------------


def fused_loss(weight_fn: Callable[[Batch], jax.Array], pos_weight: float = 1.0) -> LossFn:
    """Task loss of the fused output, averaged over the samples ``weight_fn`` selects
    (``pos_weight``: see ``losses.per_example``)."""

    def loss_fn(outputs, aux, batch, spec):
        del aux
        values = losses.per_example(spec.task, outputs, batch["label"], pos_weight)
        return losses.weighted_mean(values, weight_fn(batch)), {}

    return loss_fn


def _any_present(batch: Batch) -> jax.Array:
    return batch["present"].any(-1)


def _all_present(batch: Batch) -> jax.Array:
    return batch["present"].all(-1)


def multi_task_loss(weight: float) -> LossFn:
    """``L_fused + w * sum_m L_m``, each unimodal loss averaged over samples where m is present."""

    def loss_fn(outputs, aux, batch, spec):
        fused = losses.weighted_mean(losses.per_example(spec.task, outputs, batch["label"]),
                                     _any_present(batch))
        metrics = {"loss_fused": fused}
        total = fused
        for c, m in enumerate(spec.modalities):
            per = losses.per_example(spec.task, aux[f"{m}/logits"], batch["label"])
            metrics[f"loss_{m}"] = losses.weighted_mean(per, batch["present"][:, c])
            total = total + weight * metrics[f"loss_{m}"]
        return total, metrics

    return loss_fn


# ----------------------------------------------------------------------------------------------
# make() for each baseline.
# ----------------------------------------------------------------------------------------------


def _net(config: ExperimentConfig, spec: DatasetSpec, **kwargs) -> NNXModel:
    dtype = compute_dtype(config.train.dtype)
    return NNXModel(lambda rngs: MultimodalNet(spec, config.model, dtype=dtype, rngs=rngs,
                                               **kwargs))


def make_fusion(fusion: str) -> Callable[[ExperimentConfig, DatasetSpec], Method]:
    """``make`` for plain ``concat``/``sum``/``late`` fusion trained on every sample."""

    def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
        return make_supervised(config, spec, _net(config, spec, fusion=fusion),
                               fused_loss(_any_present))

    return make


def make_upper_bound(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Concat fusion trained on complete samples only."""
    losses.check_pos_weight(config.method.pos_weight, spec.task, spec.name)
    return make_supervised(config, spec, _net(config, spec, fusion="concat"),
                           fused_loss(_all_present, config.method.pos_weight))


def make_lower_bound(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """One modality's encoder and head, trained where that modality is present."""
    modality = config.method.modality or spec.modalities[0]
    if modality not in spec.modalities:
        raise UserError(
            f"method.modality {modality!r} is not a modality of {spec.name} {spec.modalities}"
        )
    losses.check_pos_weight(config.method.pos_weight, spec.task, spec.name)
    column = spec.modalities.index(modality)
    net = _net(config, spec, fusion="concat", modalities=(modality,))
    return make_supervised(config, spec, net, fused_loss(lambda b: b["present"][:, column],
                                                         config.method.pos_weight))


def augment_batch(batch: Batch, key: jax.Array, p, modalities: tuple[str, ...],
                  mode: str = "one") -> Batch:
    """Missing-modality augmentation: drop modalities (never all) and zero-fill them.

    ``p`` may be traced; ``p = 0`` returns the batch's mask unchanged (and its inputs, whose
    missing entries are already zero). ``mode`` as in ``missing.augmentation_dropout``.
    """
    present = missing.augmentation_dropout(key, batch["present"], p, mode=mode)
    return {**batch, "present": present,
            "inputs": missing.apply(batch["inputs"], present, modalities)}


def check_dropout(p: float, mode: str = "one") -> None:
    """``UserError`` unless ``method.dropout_p`` is a rate and ``method.dropout_mode`` exists."""
    missing.check_rate("method.dropout_p", p)
    if mode not in ("one", "independent"):
        raise UserError(f"method.dropout_mode must be 'one' or 'independent', got {mode!r}")


def make_augmentation(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Concat fusion with modality dropout on every training batch."""
    p = config.method.dropout_p
    check_dropout(p)
    return make_supervised(
        config, spec, _net(config, spec, fusion="concat"), fused_loss(_any_present),
        prepare_fn=lambda batch, key: augment_batch(batch, key, p, spec.modalities))


def make_multi_task(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Concat fusion with a unimodal head per modality, all losses summed."""
    net = _net(config, spec, fusion="concat", unimodal_heads=True)
    return make_supervised(config, spec, net, multi_task_loss(config.method.unimodal_weight))
