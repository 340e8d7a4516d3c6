"""Data parallelism: a 1-D ``"data"`` mesh over every visible device, and multi-host start-up.

The batch axis is sharded over ``"data"`` with ``NamedSharding``; parameters, optimiser state and
the device-resident dataset are replicated. ``jax.jit`` inserts the gradient all-reduce, so the
method code is the same on one device and on many (no ``pmap``).
"""

from __future__ import annotations

import jax
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from mmjax.errors import UserError


def maybe_initialize_distributed(enabled: bool) -> None:
    """Calls ``jax.distributed.initialize()`` (multi-host) when asked; must run before other JAX."""
    if enabled:
        jax.distributed.initialize()


def make_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh named ``"data"`` over all devices.

    Axis type Auto: sharding is propagated by XLA from the batch constraint, which is all 1-D data
    parallelism needs.
    """
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    """The sharding of anything every device holds whole (params, the dataset)."""
    return NamedSharding(mesh, P())


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """The sharding of a batch: leading axis split over ``"data"``."""
    return NamedSharding(mesh, P("data"))


def check_batch_size(batch_size: int, what: str = "train.batch_size") -> None:
    """Raises ``UserError`` unless ``batch_size`` divides evenly over the devices."""
    n = jax.device_count()
    if batch_size <= 0 or batch_size % n:
        raise UserError(f"{what}={batch_size} must be a positive multiple of the {n} devices")
