"""Task losses per example, and the masked mean every method uses to ignore missing samples."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from mmjax.errors import UserError


def check_pos_weight(pos_weight: float, task: str, dataset: str) -> None:
    """``UserError`` unless ``method.pos_weight`` is positive, and 1.0 on a task without labels
    to weigh (only multi-label tasks have positive labels)."""
    if not pos_weight > 0:
        raise UserError(f"method.pos_weight must be positive, got {pos_weight}")
    if pos_weight != 1.0 and task != "multilabel":
        raise UserError(f"method.pos_weight weighs the positive labels of a multi-label task; "
                        f"{dataset} is {task} (leave it at 1.0)")


def per_example(task: str, outputs: jax.Array, label: jax.Array,
                pos_weight: float = 1.0) -> jax.Array:
    """The task loss of each example, ``[B]``, computed in float32.

    - ``classification``: softmax cross-entropy with integer labels.
    - ``multilabel``: binary cross-entropy averaged over labels, positives weighted by
      ``pos_weight`` (SMIL uses 2.0 on MM-IMDb):
      ``-(w * y * log s(x) + (1 - y) * log(1 - s(x)))``.
    - ``regression``: absolute error of ``outputs[:, 0]`` (the L1 loss of the MOSI/MOSEI papers).
    """
    outputs = outputs.astype(jnp.float32)
    if task == "classification":
        return optax.softmax_cross_entropy_with_integer_labels(outputs, label)
    if task == "multilabel":
        log_p, log_not_p = jax.nn.log_sigmoid(outputs), jax.nn.log_sigmoid(-outputs)
        return -(pos_weight * label * log_p + (1.0 - label) * log_not_p).mean(-1)
    if task == "regression":
        return jnp.abs(outputs[:, 0] - label)
    raise ValueError(f"unknown task {task!r}")


def weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """``sum(w * v) / max(sum(w), 1)``: a mean over the samples with weight 1 (0 if there are none).

    The floor of 1 keeps a batch in which no sample qualifies (e.g. a modality missing everywhere)
    at loss 0 with zero gradient instead of NaN.
    """
    weights = weights.astype(values.dtype)
    return (values * weights).sum() / jnp.maximum(weights.sum(), 1.0)
