"""Checkpoints through orbax's ``CheckpointManager``; the only module that imports orbax.

A checkpoint holds the (seed-stacked) ``TrainState``. Typed PRNG keys are stored as their raw
``key_data`` and re-wrapped on restore. Orbax writes into a temporary directory and renames it when
complete, so an interrupted save never leaves a checkpoint that looks finished.
"""

from __future__ import annotations

import pathlib

import jax
import orbax.checkpoint as ocp


def _is_key(x) -> bool:
    """True for typed PRNG keys, concrete or abstract (``jax.ShapeDtypeStruct``)."""
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _to_storable(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _abstract_storable(x) -> jax.ShapeDtypeStruct:
    """The stored form's shape, dtype and sharding (works on concrete and abstract leaves)."""
    if _is_key(x):
        return jax.eval_shape(jax.random.key_data, x)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))


class Checkpointer:
    """Saves and restores training states under ``directory``.

    Args:
      directory: where checkpoints go (``WORKDIR/checkpoints``).
      keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory: str | pathlib.Path, keep: int = 2):
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self._manager = ocp.CheckpointManager(pathlib.Path(directory).absolute(), options=options)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self._manager.latest_step()

    def save(self, step: int, state) -> None:
        """Saves ``state`` as step ``step`` and waits until it is on disk."""
        self._manager.save(step, args=ocp.args.StandardSave(_to_storable(state)), force=True)
        self._manager.wait_until_finished()

    def restore(self, like, step: int | None = None):
        """Restores the checkpoint at ``step`` (default: newest) into the structure of ``like``.

        ``like`` is a state (or its ``jax.eval_shape``) with the target shardings; keys in it tell
        which stored leaves to re-wrap as typed keys.
        """
        step = self.latest_step() if step is None else step
        target = jax.tree.map(_abstract_storable, like)
        restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
        return jax.tree.map(
            lambda ref, x: jax.random.wrap_key_data(x) if _is_key(ref) else x, like, restored)

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self._manager.close()
