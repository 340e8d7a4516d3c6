"""Replica and data parallelism: a ``("replica", "data")`` mesh over every visible device, and
multi-host start-up.

A run trains ``S`` replicas (seeds, and the points ``mmjax sweep`` packs) as one program vmapped
over a leading replica axis. ``make_mesh(S)`` gives that axis ``R = gcd(S, devices)`` devices
and the batch the other ``devices / R`` (``"data"``): every leaf of the seed-stacked states, the
replicas' training masks and keys are split over ``"replica"`` (``replica_sharding``; each
device holds ``S / R`` replicas whole), and each step's batch is split over ``"data"``
(``batch_sharding``; the vmap names ``"replica"`` as its ``spmd_axis_name``, so a batch is
``[replica, data]``-sharded inside the step). The device-resident dataset is replicated. With 8
replicas on 8 devices each device trains one replica and no gradient crosses devices; with 1
replica it is plain data parallelism, the gradient all-reduced over ``"data"`` by ``jax.jit``,
so the method code is the same on one device and on many (no ``pmap``).

Multi-host (``train.distributed``): every process runs the same command; the mesh spans the
devices of all processes, each process holds the whole (small) training set; the replica axis
comes first in the device order, so the processes share out the replicas (with as many replicas
as devices, each process trains its own), and what is left over splits each step's batch.
Processes find each other through
``jax.distributed.initialize``: on a cluster JAX detects (Slurm, Open MPI, Kubernetes, Cloud TPU)
nothing needs setting; elsewhere set ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0),
``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` in each process's environment. On the CPU the
cross-process collectives are gloo's (``jax_cpu_collectives_implementation``, JAX's default).
"""

from __future__ import annotations

import math
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


REPLICA, DATA = "replica", "data"  # the mesh's axes


def replica_devices(num_replicas: int) -> int:
    """How many devices the replica axis spans for ``num_replicas`` replicas: the largest count
    that divides both (so every device holds as many whole replicas)."""
    return math.gcd(max(num_replicas, 1), jax.device_count())


def make_mesh(num_replicas: int = 1) -> jax.sharding.Mesh:
    """The ``("replica", "data")`` mesh over all devices for ``num_replicas`` replicas:
    ``replica_devices(num_replicas)`` by the rest (``(1, devices)``: data parallelism only).

    Axis types Auto: XLA propagates the shardings from the states' and the batch's, which is all
    this layout needs.
    """
    r = replica_devices(num_replicas)
    return jax.make_mesh((r, jax.device_count() // r), (REPLICA, DATA),
                         axis_types=(AxisType.Auto, AxisType.Auto))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
    """The sharding of anything every device holds whole (the dataset, metrics, predictions)."""
    return NamedSharding(mesh, P())


def replica_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """The sharding of seed-stacked arrays (states, masks, keys): leading axis over
    ``"replica"``, each device holding its replicas whole."""
    return NamedSharding(mesh, P(REPLICA))


def put(tree, sharding: NamedSharding):
    """``jax.device_put(tree, sharding)`` that also places typed PRNG keys of a multi-host run:
    ``device_put`` refuses a key array spread over other processes' devices, but moves its raw
    ``key_data``."""

    def one(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.device_put(jax.random.key_data(x), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(x, sharding)

    return jax.tree.map(one, tree)


def replicate(tree, mesh: jax.sharding.Mesh):
    """``tree`` held whole by every device (``put`` with ``replicated``)."""
    return put(tree, replicated(mesh))


def place_replicas(tree, mesh: jax.sharding.Mesh):
    """Seed-stacked ``tree`` split over the replica axis (``put`` with ``replica_sharding``)."""
    return put(tree, replica_sharding(mesh))


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """The sharding of a batch: leading axis split over ``"data"``."""
    return NamedSharding(mesh, P(DATA))


def replica_batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
    """The sharding of a batch with a leading replica axis (``[S, B, ...]``: each replica's
    own test inputs): over ``"replica"``, then ``"data"``."""
    return NamedSharding(mesh, P(REPLICA, DATA))


def check_batch_size(batch_size: int, what: str = "train.batch_size",
                     num_replicas: int = 1) -> None:
    """Raises ``UserError`` unless ``batch_size`` divides evenly over the ``"data"`` axis of
    ``make_mesh(num_replicas)``."""
    n = jax.device_count() // replica_devices(num_replicas)
    if batch_size <= 0 or batch_size % n:
        where = (f"the {n} devices" if n == jax.device_count() else
                 f"the {n} devices of the data axis ({jax.device_count()} devices, "
                 f"{replica_devices(num_replicas)} for {num_replicas} replicas)")
        raise UserError(f"{what}={batch_size} must be a positive multiple of {where}")
