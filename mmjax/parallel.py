"""Data parallelism: a 1-D ``"data"`` mesh over every visible device, and multi-host start-up.

The batch axis is sharded over ``"data"`` with ``NamedSharding``; parameters, optimiser state and
the device-resident dataset are replicated. ``jax.jit`` inserts the gradient all-reduce, so the
method code is the same on one device and on many (no ``pmap``).

Multi-host (``train.distributed``): every process runs the same command; the mesh spans the
devices of all processes, each process holds the whole (small) training set, and the batch of
each step is split over every device of every process. Processes find each other through
``jax.distributed.initialize``: on a cluster JAX detects (Slurm, Open MPI, Kubernetes, Cloud TPU)
nothing needs setting; elsewhere set ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` in each process's environment. On the CPU the
cross-process collectives are gloo's (``jax_cpu_collectives_implementation``, JAX's default).
"""

from __future__ import annotations

import os
import signal
import threading

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from mmjax.errors import UserError


def maybe_initialize_distributed(enabled: bool) -> None:
    """Calls ``jax.distributed.initialize()`` (multi-host) when asked; must run before other JAX.

    ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` are passed on when set (JAX itself reads only
    ``JAX_COORDINATOR_ADDRESS``), so that processes started by hand find each other. A second call
    (``train`` run twice in one process) is a no-op.
    """
    if not enabled or jax.distributed.is_initialized():
        return
    counts = {}
    for name, var in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
        if os.environ.get(var):
            try:
                counts[name] = int(os.environ[var])
            except ValueError:
                raise UserError(f"{var}={os.environ[var]!r} is not an integer") from None
    # JAX's preemption notifier installs its own SIGTERM handler in C++, which would swallow a
    # SIGTERM before the training loop (mmjax.train syncs its own stop flag over processes).
    main = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    jax.distributed.initialize(**counts)
    for sig, handler in handlers.items():
        if main and handler is not None:
            signal.signal(sig, handler)


def any_process(value: int) -> int:
    """The largest of ``value`` over all processes (``value`` itself with one process): every
    process calls it at the same point, e.g. to agree that one of them was asked to stop."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(np.max(multihost_utils.process_allgather(np.int32(value))))


def sync_processes(name: str) -> None:
    """Waits until every process has reached the barrier ``name`` (no-op with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def make_mesh() -> jax.sharding.Mesh:
    """A 1-D mesh named ``"data"`` over all devices.

    Axis type Auto: sharding is propagated by XLA from the batch constraint, which is all 1-D data
    parallelism needs.
    """
    return jax.make_mesh((jax.device_count(),), ("data",), axis_types=(AxisType.Auto,))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    """The sharding of anything every device holds whole (params, the dataset)."""
    return NamedSharding(mesh, P())


def replicate(tree, mesh: jax.sharding.Mesh):
    """``jax.device_put(tree, replicated(mesh))`` that also places typed PRNG keys of a
    multi-host run: ``device_put`` refuses a key array spread over other processes' devices, but
    moves its raw ``key_data``."""
    sharding = replicated(mesh)

    def put(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.device_put(jax.random.key_data(x), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(x, sharding)

    return jax.tree.map(put, tree)


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """The sharding of a batch: leading axis split over ``"data"``."""
    return NamedSharding(mesh, P("data"))


def check_batch_size(batch_size: int, what: str = "train.batch_size") -> None:
    """Raises ``UserError`` unless ``batch_size`` divides evenly over the devices."""
    n = jax.device_count()
    if batch_size <= 0 or batch_size % n:
        raise UserError(f"{what}={batch_size} must be a positive multiple of the {n} devices")
