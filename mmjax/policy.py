"""Backend policy: the runtime settings that depend on XLA's backend, not on the experiment.

``train.unroll`` and ``train.vmap_seeds`` default to ``"auto"``, resolved here from
``jax.default_backend()`` and from whether the method's network convolves, by the rules measured
in benchmarks/README.md ("Backend policy"):

- XLA:CPU runs the convolutions of a rolled ``lax.scan`` body about 9x slower than unrolled ones,
  and vmapped over seed replicas (a grouped convolution with per-replica kernels) 2.2x slower than
  one copy of the step per replica: a network with convolutions on the CPU unrolls the scan fully
  and copies the step per replica.
- Without convolutions, or on a GPU/TPU, rolled and unrolled run at the same speed (the rolled
  loop compiles ~3x faster) and vmapped replicas batch well: rolled scan, vmapped replicas.

A config that sets either field to a value keeps that value, so a measured exception stays
possible without changing the rule.

XLA:CPU settings are process-wide and read once, when XLA starts, from ``XLA_FLAGS``: the
command line adds ``CPU_XLA_FLAGS`` to it (``with_cpu_flags``) before anything runs. They change
only how the CPU backend compiles (GPU/TPU programs are untouched). A library user who wants them
sets ``XLA_FLAGS`` before the first JAX computation; a user's own value of one of these flags
wins (``--xla_cpu_experimental_ynn_fusion_type=individual_dot`` is the pinned jaxlib's default).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

from mmjax.config import TrainConfig

AUTO = "auto"
# YNNPACK's dot fusion: XLA:CPU runs every dot with YNNPACK already, one at a time
# (``individual_dot``); ``dot`` also fuses the elementwise ops around it into the YNNPACK call.
# RAML's step 1.5x faster, SMIL's meta-update 8%, float32 accuracy unchanged (benchmarks/README.md,
# "YNNPACK's dot fusion").
CPU_XLA_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=dot",)


class Policy(NamedTuple):
    """The resolved runtime settings: ``unroll`` (0 = fully unrolled) and ``vmap_seeds``."""

    unroll: int
    vmap_seeds: bool


def _has_convolution(jaxpr) -> bool:
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            return True
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                inner = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
                if hasattr(inner, "eqns") and _has_convolution(inner):
                    return True
    return False


def convolves(predict, state: Any, batch: Any) -> bool:
    """Whether ``predict(state, batch)`` runs a convolution (traced abstractly, nothing runs)."""
    return _has_convolution(jax.make_jaxpr(predict)(state, batch).jaxpr)


def resolve(train: TrainConfig, has_convolution: bool, backend: str | None = None) -> Policy:
    """``train``'s ``unroll`` and ``vmap_seeds``, with ``"auto"`` replaced by the rule for
    ``backend`` (default: ``jax.default_backend()``) and a network that does or does not
    convolve."""
    cpu_convnet = (backend or jax.default_backend()) == "cpu" and has_convolution
    unroll = (0 if cpu_convnet else 1) if train.unroll == AUTO else train.unroll
    vmap_seeds = (not cpu_convnet) if train.vmap_seeds == AUTO else train.vmap_seeds
    return Policy(unroll, vmap_seeds)


def with_cpu_flags(xla_flags: str) -> str:
    """The ``XLA_FLAGS`` value ``xla_flags`` with each of ``CPU_XLA_FLAGS`` appended that it does
    not already set (a flag the user set keeps the user's value)."""
    given = xla_flags.split()
    names = {flag.split("=", 1)[0] for flag in given}
    return " ".join(given + [f for f in CPU_XLA_FLAGS if f.split("=", 1)[0] not in names])
