"""Tests of which training-mask row a batch sample gets (``missing.mask_rows``).

``sample`` (default): a sample keeps its own row for the whole run. ``position``: the released
RedCore code indexes its mask matrix by batch position while the loader shuffles, so a sample
gets another row every epoch and each epoch's per-modality counts stay the mask's exact counts.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import sweep
from mmjax.config import DataConfig, ExperimentConfig, MethodConfig, MissingConfig
from mmjax.data import missing, pipeline
from mmjax.data.base import Split

N, B, MODALITIES = 64, 16, ("a", "b")


def _data(present: np.ndarray) -> dict:
    """A split of ``N`` samples whose only input is the sample index (to read back who is who)."""
    x = np.arange(N, dtype=np.float32)[:, None]
    return pipeline.to_arrays(Split({"a": x + 1, "b": x + 1}, present, np.zeros(N, np.int32)))


def _epoch_masks(present: np.ndarray, key: jax.Array, epoch: int, by_position: bool,
                 data_present: np.ndarray | None = None) -> np.ndarray:
    """``bool[N, M]``: the mask each sample trained with in ``epoch`` (every sample is visited
    once: ``B`` divides ``N``), from ``pipeline.batch_indices`` and ``pipeline.gather``."""
    data = _data(np.ones((N, 2), bool) if data_present is None else data_present)
    seen = np.zeros((N, 2), bool)
    steps = N // B
    for step in range(epoch * steps, (epoch + 1) * steps):
        step = jnp.int32(step)
        indices = pipeline.batch_indices(key, step, N, B)
        rows = pipeline.batch_positions(step, N, B) if by_position else None
        batch = pipeline.gather(data, jnp.asarray(present), indices, MODALITIES, rows)
        seen[np.asarray(indices)] = np.asarray(batch["present"])
    return seen


def test_positions_are_the_batch_slots_of_the_epoch():
    """Step k of an epoch covers positions kB .. kB + B - 1; the next epoch starts again at 0."""
    assert pipeline.batch_positions(jnp.int32(0), N, B).tolist() == list(range(B))
    assert pipeline.batch_positions(jnp.int32(2), N, B).tolist() == list(range(2 * B, 3 * B))
    assert pipeline.batch_positions(jnp.int32(N // B), N, B).tolist() == list(range(B))
    assert pipeline.batch_positions(jnp.int32(0), N, B).dtype == jnp.int32


def test_sample_rows_stay_position_rows_change_every_epoch_with_exact_counts(key):
    """``sample``: every epoch trains each sample with its own row. ``position``: the rows go to
    whoever sits at their position, so the epochs' masks differ, and each epoch's per-modality
    counts are exactly the mask's (the released code's exact rates)."""
    mask_key, data_key = jax.random.split(key)
    present = np.asarray(missing.independent(mask_key, N, (0.5, 0.25), exact=True,
                                             forbid_empty=False))
    for epoch in (0, 1):
        assert (_epoch_masks(present, data_key, epoch, False) == present).all()
    first, second = (_epoch_masks(present, data_key, e, True) for e in (0, 1))
    for epoch_mask in (first, second):
        np.testing.assert_array_equal(epoch_mask.sum(0), present.sum(0))  # 32 and 48 present
    assert (first != second).any(axis=1).sum() > N // 4  # most samples get another row
    # Whoever sits at position p trains with row p: position 0 of epoch 0 is perm[0].
    perm0 = np.asarray(pipeline.batch_indices(data_key, jnp.int32(0), N, B))
    np.testing.assert_array_equal(first[perm0], present[:B])


def test_position_rows_keep_the_datasets_own_missing_entries(key):
    """A modality the dataset lacks for a sample stays missing whatever row the sample gets:
    ``train_mask`` leaves the dataset's mask out in ``position`` mode and ``gather`` ANDs it."""
    own = np.ones((N, 2), bool)
    own[:8, 1] = False  # samples 0-7 have no "b" in the dataset
    split = Split({"a": np.zeros((N, 1), np.float32), "b": np.zeros((N, 1), np.float32)}, own,
                  np.zeros(N, np.int32))
    config = MissingConfig(protocol="independent", rates=(0.0, 0.0), mask_rows="position")
    rows = pipeline.train_mask(config, key, split)
    assert rows.all()  # no row carries sample 0-7's gap
    sample_rows = pipeline.train_mask(MissingConfig(protocol="independent", rates=(0.0, 0.0)),
                                      key, split)
    np.testing.assert_array_equal(sample_rows, own)
    for epoch in (0, 1):
        seen = _epoch_masks(rows, key, epoch, True, data_present=own)
        np.testing.assert_array_equal(seen, own)


@pytest.mark.parametrize("field,value,same_program", [
    ("rates", (0.2, 0.7), True), ("forbid_empty", False, True), ("mask_rows", "position", False)])
def test_mask_rows_is_part_of_the_program_other_missing_fields_are_not(field, value,
                                                                       same_program):
    """``mmjax sweep`` packs points that differ only in the missing section, except in
    ``mask_rows``, which changes the compiled step."""
    base = ExperimentConfig(data=DataConfig(name="mfeat"), method=MethodConfig(name="concat"),
                            missing=MissingConfig(protocol="independent", rates=(0.5, 0.5)))
    other = dataclasses.replace(base, missing=dataclasses.replace(base.missing, **{field: value}))
    assert (sweep.program_key(base) == sweep.program_key(other)) == same_program
