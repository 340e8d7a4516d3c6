"""Missing detection: uni-modal heads with an extra "missing" class; a head detecting it is ignored.

The baseline of UME-MMA's Table 1 (Li et al., 2023, papers/003, section 4.2 (3)): "Inspired by
out-of-distribution (OOD) detection, we assign a new category to identify whether a modality is
missing. During inference, if a uni-modal head predicts that a certain modality is missing, we rely
on the prediction from the remaining modality. Otherwise, we ensemble the results from both."
The paper gives no more detail; this is our reading, for any number M of modalities::

    model      z_m = g_m(f_m(x_m)) in R^{C+1}: encoder + linear head per modality, C = "missing"
    training   present' = augmentation_dropout(present, p)   (the missing examples to learn from;
               the zero substitute, as at test time); x' = x zero-filled where not present'
               t_bm = y_b if present'[b, m] else C
               L = sum_m mean_b CE(z_bm, t_bm)                (every sample, from scratch)
    predict    d_bm = argmax z_bm != C                        (head m says "I have an input")
               out_b = sum_m d_bm z_bm[:C] / sum_m d_bm       (mean of the first C logits of the
                                                               heads that detect their modality)
               if no head detects its modality: out_b = mean over all heads of z_bm[:C]

``present`` is never read at test time: like UME-MMA the model only sees (zero-filled) inputs.
Averaging logits follows the late-fusion baselines. The augmentation defaults to UME-MMA's
(p = 0.3 per modality, never all): the paper does not say how the "missing" class is trained, and
without dropped inputs in training a complete training set would hold no "missing" examples.
Classification only.
"""

from __future__ import annotations

from typing import Annotated, Literal

import jax
import jax.numpy as jnp

from mmjax import losses
from mmjax.config import FRACTION, ExperimentConfig, MethodConfig, frozen
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods.base import Method
from mmjax.methods.supervised import augment_batch, fusion_net, make_supervised


@frozen
class MissingDetectionConfig(MethodConfig):
    """Missing detection's switches.

    Attributes:
      dropout_p: augmentation that creates the "missing" training examples: probability of
        dropping each modality, never all (UME-MMA's 0.3; the paper does not say).
      dropout_mode: ``one`` or ``independent``; see ``missing.augmentation_dropout``.
    """

    name: str = "missing_detection"
    dropout_p: Annotated[float, FRACTION] = 0.3
    dropout_mode: Literal["one", "independent"] = "one"


def detect_and_fuse(logits: jax.Array) -> jax.Array:
    """The defining rule: ``[B, M, C+1]`` head logits -> ``[B, C]`` fused logits.

    Heads whose argmax is the last ("missing") class are left out of the mean of the first C
    logits; if every head says "missing", all heads are averaged.
    """
    num_classes = logits.shape[-1] - 1
    detected = logits.argmax(-1) != num_classes  # [B, M]
    weights = jnp.where(detected.any(1, keepdims=True), detected, True).astype(logits.dtype)
    fused = jnp.einsum("bmc,bm->bc", logits[..., :num_classes], weights)
    return fused / weights.sum(1, keepdims=True)


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Missing detection on the Method contract; see the module docstring."""
    mc = config.method
    if spec.task != "classification":
        raise UserError(f"missing_detection needs a classification dataset, {spec.name} is "
                        f"{spec.task}")
    modalities, num_classes = spec.modalities, spec.num_classes

    def head_logits(aux) -> jax.Array:
        return jnp.stack([aux[f"{m}/logits"] for m in modalities], 1)  # [B, M, C+1]

    def loss_fn(outputs, aux, batch, spec):
        del outputs, spec
        present = batch["present"]
        targets = jnp.where(present, batch["label"][:, None], num_classes)  # [B, M]
        valid = present.any(-1)
        logits = head_logits(aux)
        metrics = {}
        for c, m in enumerate(modalities):
            per = losses.per_example("classification", logits[:, c], targets[:, c])
            metrics[f"loss_{m}"] = losses.weighted_mean(per, valid)
        detected = logits.argmax(-1) != num_classes
        metrics["detect_accuracy"] = (detected == present).mean(dtype=jnp.float32)
        return sum(metrics[f"loss_{m}"] for m in modalities), metrics

    # UME-MMA's late-fusion model (encoder + linear head per modality), C + 1 classes.
    model = fusion_net(config, spec, fusion="ensemble", num_classes=num_classes + 1)
    return make_supervised(
        config, spec, model, loss_fn,
        prepare_fn=lambda batch, key: augment_batch(batch, key, mc.dropout_p, modalities,
                                                    mc.dropout_mode),
        readout_fn=lambda outputs, aux, batch: detect_and_fuse(
            head_logits(aux).astype(jnp.float32)))
