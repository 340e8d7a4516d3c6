"""Checkpoints through orbax's ``CheckpointManager``; the only module that imports orbax.

A checkpoint holds the (seed-stacked) ``TrainState``. Typed PRNG keys are stored as their raw
``key_data`` and re-wrapped on restore. Orbax writes into a temporary directory and renames it when
complete, so an interrupted save never leaves a checkpoint that looks finished.

A checkpoint can still be damaged afterwards (a truncated file, a copy gone wrong): ``restore``
then falls back to the newest readable one and reports each one it skipped, and ``set_aside``
moves the unreadable ones out of the way so that training can write those steps again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
from collections.abc import Callable

import jax
import orbax.checkpoint as ocp

from mmjax.errors import UserError

# Where ``set_aside`` moves unreadable checkpoints (a sibling of ``checkpoints/``).
UNREADABLE = "checkpoints-unreadable"


def _is_key(x) -> bool:
    """True for typed PRNG keys, concrete or abstract (``jax.ShapeDtypeStruct``)."""
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _to_storable(tree):
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _abstract_storable(x) -> jax.ShapeDtypeStruct:
    """The stored form's shape, dtype and sharding (works on concrete and abstract leaves).

    A key's raw data keeps the key's sharding (its extra trailing axis is not split): without
    one, orbax would restore it onto one local device, which a multi-host run cannot use.
    """
    sharding = getattr(x, "sharding", None)
    if _is_key(x):
        stored = jax.eval_shape(jax.random.key_data, x)
        return jax.ShapeDtypeStruct(stored.shape, stored.dtype, sharding=sharding)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


class Checkpointer:
    """Saves and restores training states under ``directory``.

    Args:
      directory: where checkpoints go (``WORKDIR/checkpoints``).
      keep: how many of the newest checkpoints to keep.
    """

    def __init__(self, directory: str | pathlib.Path, keep: int = 2):
        if keep < 1:
            raise UserError(f"train.keep_checkpoints must be >= 1, got {keep}")
        self.directory = pathlib.Path(directory).absolute()
        # Checked here because orbax would wait ~300 s on a barrier, then raise a TimeoutError.
        if os.path.lexists(self.directory) and not self.directory.is_dir():
            raise UserError(f"{self.directory} is not a directory (checkpoints go there); move "
                            "it away or use a new --workdir")
        self._options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
        self._manager = self._open()

    def _open(self) -> ocp.CheckpointManager:
        return ocp.CheckpointManager(self.directory, options=self._options)

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None."""
        return self._manager.latest_step()

    def steps(self) -> list[int]:
        """The steps of the complete checkpoints, oldest first."""
        return sorted(self._manager.all_steps())

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
        with _quiet():
            restored = self._manager.restore(step, args=ocp.args.StandardRestore(target))
        return jax.tree.map(
            lambda ref, x: jax.random.wrap_key_data(x) if _is_key(ref) else x, like, restored)

    def restore_raw(self, step: int) -> dict:
        """The checkpoint at ``step`` as stored: nested dicts of host arrays (``TrainState``'s
        fields as keys), for reading another run whose state structure is not known here."""
        with _quiet():
            raw = self._manager.restore(step, args=ocp.args.StandardRestore())
        return jax.tree.map(lambda x: jax.device_get(x), raw)

    def restore_readable(self, like, skipped: Callable[[int, str], None]):
        """``(step, state)`` of the newest checkpoint that restores, or ``(None, None)`` if there
        is none at all; ``skipped(step, reason)`` is called for each unreadable newer one.

        Raises:
          UserError: checkpoints exist but none of them is readable (one line naming each).
        """
        reasons = []
        for step in reversed(self.steps()):
            try:
                return step, self.restore(like, step)
            except Exception as e:  # orbax/tensorstore raise many types for a damaged file
                reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                reasons.append(f"{step} ({reason})")
                skipped(step, reason)
                # A failed restore can leave the manager's event loop closed: start afresh.
                with contextlib.suppress(Exception):
                    self._manager.close()
                self._manager = self._open()
        if reasons:
            raise UserError(f"no readable checkpoint in {self.directory}: "
                            f"{'; '.join(reasons)}")
        return None, None

    def set_aside(self, steps: list[int]) -> pathlib.Path:
        """Moves the checkpoints of ``steps`` into ``<workdir>/checkpoints-unreadable/`` (so that
        training can save those steps again) and returns that folder."""
        aside = self.directory.parent / UNREADABLE
        aside.mkdir(exist_ok=True)
        for step in steps:
            target = aside / str(step)
            n = 0
            while target.exists():  # an earlier one of the same step is kept as well
                n += 1
                target = aside / f"{step}.{n}"
            os.replace(self.directory / str(step), target)
        self._manager.close()
        self._manager = self._open()
        return aside

    def close(self) -> None:
        """Waits for pending writes and releases the manager."""
        self._manager.close()


@contextlib.contextmanager
def _quiet():
    """Silences orbax's absl warnings about a damaged checkpoint for a restore: the caller
    reports what failed in one line."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)
