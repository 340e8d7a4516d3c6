"""The first baselines: lower/upper bound, concat, sum and late fusion, augmentation, multi-task.

All are supervised training (``supervised.make_supervised``) of a ``MultimodalNet``
(mmjax/models/fusion.py) with the task loss; they differ in the fusion rule, in which samples
count, and in what the training step does to ``present``:

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

from typing import Annotated, Callable

import jax

from mmjax import losses
from mmjax.config import FRACTION, ExperimentConfig, MethodConfig, frozen
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods.base import Batch, Method
from mmjax.methods.supervised import (LossFn, any_present, augment_batch, fused_loss, fusion_net,
                                      make_supervised)


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
    dropout_p: Annotated[float, FRACTION] = 0.3


@frozen
class MultiTaskConfig(MethodConfig):
    """Concat fusion plus one linear head per modality, trained jointly.

    Attributes:
      unimodal_weight: weight w of the unimodal losses.
    """

    name: str = "multi_task"
    unimodal_weight: float = 1.0


# ----------------------------------------------------------------------------------------------
# Loss rules (``fused_loss`` and the training step are in supervised.py).
# ----------------------------------------------------------------------------------------------


def _all_present(batch: Batch) -> jax.Array:
    return batch["present"].all(-1)


def multi_task_loss(weight: float) -> LossFn:
    """``L_fused + w * sum_m L_m``, each unimodal loss averaged over samples where m is present."""

    def loss_fn(outputs, aux, batch, spec):
        fused = losses.weighted_mean(losses.per_example(spec.task, outputs, batch["label"]),
                                     any_present(batch))
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


def make_fusion(fusion: str) -> Callable[[ExperimentConfig, DatasetSpec], Method]:
    """``make`` for plain ``concat``/``sum``/``late`` fusion trained on every sample."""

    def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
        return make_supervised(config, spec, fusion_net(config, spec, fusion=fusion),
                               fused_loss(any_present))

    return make


def make_upper_bound(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Concat fusion trained on complete samples only."""
    losses.check_pos_weight(config.method.pos_weight, spec.task, spec.name)
    return make_supervised(config, spec, fusion_net(config, spec, fusion="concat"),
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
    net = fusion_net(config, spec, fusion="concat", modalities=(modality,))
    return make_supervised(config, spec, net, fused_loss(lambda b: b["present"][:, column],
                                                         config.method.pos_weight))


def make_augmentation(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Concat fusion with modality dropout on every training batch."""
    p = config.method.dropout_p
    return make_supervised(
        config, spec, fusion_net(config, spec, fusion="concat"), fused_loss(any_present),
        prepare_fn=lambda batch, key: augment_batch(batch, key, p, spec.modalities))


def make_multi_task(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Concat fusion with a unimodal head per modality, all losses summed."""
    net = fusion_net(config, spec, fusion="concat", unimodal_heads=True)
    return make_supervised(config, spec, net, multi_task_loss(config.method.unimodal_weight))
