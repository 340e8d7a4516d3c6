"""The device-resident batch pipeline: a split lives on the device, each step gathers its batch.

A split is put on the device once (replicated over the mesh). Inside the jitted step the batch
indices come from a permutation of the split that depends only on (data key, epoch), so a resumed
run sees the same order, and no host work happens per step. Missing inputs are zero-filled after
the gather, so whatever ``present`` says, the model sees the batch contract of DESIGN §2.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.config import MissingConfig
from mmjax.data import missing
from mmjax.data.base import Split
from mmjax.errors import UserError


def to_arrays(split: Split) -> dict:
    """The split as a pytree of numpy arrays ``{"inputs": {...}, "present", "label"}``."""
    return {"inputs": dict(split.inputs), "present": split.present, "label": split.label}


def batch_indices(key: jax.Array, step: jax.Array, num_examples: int,
                  batch_size: int) -> jax.Array:
    """The example indices of training step ``step``: ``int32[batch_size]``.

    Epoch ``e = step // steps_per_epoch`` visits ``permutation(fold_in(key, e))`` in order; the
    last ``num_examples % batch_size`` examples of each permutation are skipped (drop remainder).
    """
    steps_per_epoch = num_examples // batch_size
    epoch, offset = jnp.divmod(step, steps_per_epoch)
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
    return jax.lax.dynamic_slice_in_dim(perm, offset * batch_size, batch_size)


def batch_positions(step: jax.Array, num_examples: int, batch_size: int) -> jax.Array:
    """The positions in its epoch's shuffled order of training step ``step``'s samples:
    ``int32[batch_size]``, the mask rows of ``missing.mask_rows=position``."""
    offset = step % (num_examples // batch_size)
    return offset * batch_size + jnp.arange(batch_size, dtype=jnp.int32)


def gather(data: dict, present: jax.Array, indices: jax.Array,
           modalities: tuple[str, ...], rows: jax.Array | None = None) -> dict:
    """Gathers a batch from device-resident ``data`` and zero-fills its missing inputs.

    Args:
      data: ``to_arrays`` of a split (on device).
      present: ``bool[N, M]`` mask to use instead of ``data["present"]`` (training masks).
      indices: ``int[B]``.
      modalities: the dataset's modality order (the columns of ``present``).
      rows: ``int[B]``, the rows of ``present`` to use instead of ``indices``
        (``missing.mask_rows=position``); they are ANDed with the samples' own
        ``data["present"]``, which ``train_mask`` then has not applied.
    """
    mask = present[indices] if rows is None else present[rows] & data["present"][indices]
    inputs = {m: x[indices] for m, x in data["inputs"].items()}
    return {"inputs": missing.apply(inputs, mask, modalities), "present": mask,
            "label": data["label"][indices]}


def train_mask(config: MissingConfig, key: jax.Array, split: Split) -> np.ndarray:
    """The training set's ``present`` mask under ``config``'s protocol, ANDed with the dataset's.

    Sampled once per seed at start-up; the protocol functions are in ``mmjax.data.missing``.
    With ``mask_rows=position`` the dataset's own mask is ANDed per batch instead (``gather``):
    a row belongs to no sample.
    """
    n, num_modalities = split.present.shape
    check_missing_config(config, num_modalities)
    if config.protocol == "none":
        mask = np.ones_like(split.present)
    elif config.protocol == "independent":
        mask = missing.independent(key, n, config.rates, exact=config.exact,
                                   forbid_empty=config.forbid_empty)
    elif config.protocol == "at_least_one":
        mask = missing.at_least_one(key, n, num_modalities, config.rate)
    else:
        mask = missing.paired_fraction(key, n, num_modalities, config.paired_fraction)
    mask = np.asarray(mask) & (split.present if config.mask_rows == "sample" else True)
    if not mask.any(1).all():
        raise UserError("missing protocol left a training sample with no modality; "
                        "set missing.forbid_empty=true or lower the rates")
    return mask


def check_missing_config(config: MissingConfig, num_modalities: int) -> None:
    """Raises ``UserError`` on a wrong number of rates or a rate outside [0, 1] (an unknown
    ``protocol`` never gets here: ``MissingConfig`` refuses it when it is built)."""
    if config.protocol == "independent" and len(config.rates) != num_modalities:
        raise UserError(f"missing.rates needs one rate per modality ({num_modalities}), "
                        f"got {len(config.rates)}")
    for i, r in enumerate(config.rates):
        missing.check_rate(f"missing.rates[{i}]", r)
    missing.check_rate("missing.rate", config.rate)
    missing.check_rate("missing.paired_fraction", config.paired_fraction)
