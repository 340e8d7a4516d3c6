"""The method contract: a ``Method`` bundle of pure functions over an explicit ``TrainState``.

Every method and baseline is ``make(config, spec) -> Method``. ``init(key, batch)`` builds the
state; ``phases`` is the sequence of training phases, each a ``Phase`` with its own pure
``step(state, batch) -> (state, metrics)``, its length, and an optional ``enter(state) -> state``
run once when the phase starts (SMIL's priors, MMIN's copy of the teacher's encoders); and
``predict(state, batch)`` maps a batch with any ``present`` mask to outputs ``[B, C]``. All are pure
and jit-able; the runtime vmaps them over seeds, scans a phase's step over steps and shards the
batch. The host picks the phase from the step number (``schedule``), so each phase is its own
compiled program and no step branches on the step number: XLA:CPU runs convolutions inside a
conditional's branch several times slower, and vmapped over seeds a conditional computes every
branch.

Models are Flax NNX modules used through ``nnx.split``/``nnx.merge`` inside the traced function, so
``params`` is a plain pytree that optax (and SMIL's inner loop, RedCore's eta update, MLA's
projector) transform directly. The per-step key is ``fold_in(state.key, state.step)``, so resuming
needs no saved RNG state.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from typing import Any, Callable, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx

from mmjax.config import OptimConfig, TrainConfig, field_choices
from mmjax.errors import UserError

Batch = dict[str, Any]
Metrics = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training; a pytree (checkpointed as is).

    Attributes:
      step: int32 scalar, steps taken.
      params: trainable parameters (an ``nnx.State`` or any pytree).
      model_state: non-trainable model variables (BatchNorm statistics).
      opt_state: optax state of ``params``.
      key: root PRNG key of this replica; step keys are ``fold_in(key, step)``.
      extra: method-specific state (RedCore's eta, MLA's projector, SMIL's priors); None if unused.
    """

    step: jax.Array
    params: Any
    model_state: Any
    opt_state: Any
    key: jax.Array
    extra: Any = None


class Phase(NamedTuple):
    """One training phase: ``steps`` steps of ``step`` (``None``: until ``train.steps``), after
    ``enter`` has been applied once to the state at the phase's first step (``None``: nothing).
    A phase with ``steps=0`` is skipped, its ``enter`` too."""

    name: str
    steps: int | None
    step: Callable[[TrainState, Batch], tuple[TrainState, Metrics]]
    enter: Callable[[TrainState], TrainState] | None = None


class Method(NamedTuple):
    """A method as pure functions; see the module docstring."""

    init: Callable[[jax.Array, Batch], TrainState]
    phases: tuple[Phase, ...]
    predict: Callable[[TrainState, Batch], jax.Array]

    @property
    def train_step(self) -> Callable[[TrainState, Batch], tuple[TrainState, Metrics]]:
        """The step of a one-phase method (a multi-phase method has one per phase)."""
        if len(self.phases) != 1:
            raise ValueError(f"this method has {len(self.phases)} phases; use method.phases")
        return self.phases[0].step


def one_phase(step: Callable[[TrainState, Batch], tuple[TrainState, Metrics]]
              ) -> tuple[Phase, ...]:
    """The ``phases`` of a method trained by one step function throughout."""
    return (Phase("train", None, step),)


class Span(NamedTuple):
    """Where phase ``index`` of a method runs: steps ``[start, end)``."""

    index: int
    start: int
    end: int


def schedule(phases: tuple[Phase, ...], total_steps: int) -> tuple[Span, ...]:
    """The spans of the phases that run in ``total_steps`` steps, in order: each phase follows
    the previous one, the first with ``steps=None`` (or the last) runs to ``total_steps``, and
    phases that get no steps are left out."""
    spans, start = [], 0
    for index, phase in enumerate(phases):
        last = phase.steps is None or index == len(phases) - 1
        end = total_steps if last else min(start + phase.steps, total_steps)
        if end > start:
            spans.append(Span(index, start, end))
        start = end
        if last:
            break
    return tuple(spans)


def span_at(spans: tuple[Span, ...], step: int) -> Span:
    """The span that holds ``step`` (the host's choice of the phase to run next)."""
    for span in spans:
        if span.start <= step < span.end:
            return span
    raise ValueError(f"step {step} is outside every phase ({spans})")


class NNXModel:
    """An NNX module class turned into pure ``init``/``apply`` functions over (params, model_state).

    Args:
      build_fn: ``rngs -> nnx.Module``; called once abstractly here to get the graph definition,
        and for real in ``init``.
    """

    def __init__(self, build_fn: Callable[[nnx.Rngs], nnx.Module]):
        self.build_fn = build_fn
        self.graphdef = nnx.split(nnx.eval_shape(lambda: build_fn(nnx.Rngs(0))), nnx.Param, ...)[0]

    def init(self, key: jax.Array) -> tuple[Any, Any]:
        """Returns freshly initialised ``(params, model_state)``."""
        _, params, model_state = nnx.split(self.build_fn(nnx.Rngs(params=key)), nnx.Param, ...)
        return params, model_state

    def bind(self, params, model_state) -> nnx.Module:
        """The module with these parameters and state, merged from copies (calls may mutate
        BatchNorm statistics inside a trace)."""
        return nnx.merge(self.graphdef, params, model_state, copy=True)

    def apply(self, params, model_state, *args, train: bool, key: jax.Array | None = None,
              **kwargs):
        """Calls the module; returns ``(module output, new model_state)``.

        ``train`` turns dropout on (keyed by ``key``) and BatchNorm to batch statistics. The module
        is merged from copies because the call mutates BatchNorm statistics inside a trace.
        """
        module = self.bind(params, model_state)
        rngs = nnx.Rngs(dropout=key) if key is not None else None
        out = module(*args, deterministic=not train, rngs=rngs, **kwargs)
        return out, nnx.state(module, nnx.Not(nnx.Param))


def init_state(model: NNXModel, key: jax.Array, opt_init: Callable, extra: Any = None
               ) -> TrainState:
    """The step-0 state of one replica: parameters from one half of ``key`` (the other half is
    kept as the replica's root key, into which every step folds its number), ``opt_init(params)``
    as the optimiser state, and the method's ``extra``."""
    init_key, state_key = jax.random.split(key)
    params, model_state = model.init(init_key)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
                      opt_state=opt_init(params), key=state_key, extra=extra)


def apply_gradients(state: TrainState, tx: optax.GradientTransformation, grads,
                    **changes) -> TrainState:
    """``state`` after one ``tx`` update of its parameters with ``grads``: the step advances by
    one and ``changes`` (``model_state=``, ``extra=``) replace those fields."""
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                         opt_state=opt_state, **changes)


# A user's optimiser, set by ``mmjax.methods.make(..., tx=...)`` while its method is built: an
# optax transformation, or ``factory(optim_config, total_steps) -> transformation``.
USER_TX: contextvars.ContextVar = contextvars.ContextVar("user_tx", default=None)


# The config fields a run carries in its state instead of its compiled program (``"optim.lr"``),
# set by ``mmjax.train`` (``traced_hyperparameters``) while it builds the method of a run whose
# replicas differ in them: one program then trains every replica with its own value.
TRACED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "traced_hyperparameters", default=frozenset())
TRACED_LR = "optim.lr"


@contextlib.contextmanager
def traced_hyperparameters(names):
    """Within the block, ``make_optimizer`` (and any method reading ``TRACED``) keeps the fields
    ``names`` (e.g. ``{"optim.lr"}``) in the state, as data of the compiled program."""
    token = TRACED.set(frozenset(names))
    try:
        yield
    finally:
        TRACED.reset(token)


def make_optimizer(config: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """The optax transformation an ``OptimConfig`` describes (clip -> decay -> optimiser), or
    the user's (``USER_TX``) in its place: every optimiser a method builds, every phase's.

    Under ``traced_hyperparameters({"optim.lr"})`` the peak learning rate is a leaf of the
    optimiser state (``optax.inject_hyperparams``: ``opt_state.hyperparams["learning_rate"]``,
    one per replica under the seed ``vmap``) and the schedule is rebuilt from it at each update,
    so replicas of other learning rates share one program; the schedule's values are the same
    float32 numbers as with the rate as a constant (tests/test_replicas.py)."""
    user = USER_TX.get()
    if user is not None:
        return user if isinstance(user, optax.GradientTransformation) else user(config,
                                                                                total_steps)
    # optim.name and optim.schedule are Literal switches of OptimConfig, so a bad one was
    # refused when the config was built (mmjax.config.frozen).
    build = functools.partial(_optimizer, config, total_steps)
    if TRACED_LR in TRACED.get():
        # float32 whatever the parameters (optax would take their dtype from the update's
        # params, which a caller may leave out).
        return optax.inject_hyperparams(build, hyperparam_dtype=jnp.float32)(
            learning_rate=config.lr)
    return build(config.lr)


def _optimizer(config: OptimConfig, total_steps: int, learning_rate
               ) -> optax.GradientTransformation:
    """``make_optimizer``'s chain at peak rate ``learning_rate`` (a float, or a traced scalar:
    the schedules are arithmetic on it)."""
    lr = learning_rate
    if config.schedule == "cosine":
        decay_steps = max(total_steps - config.warmup_steps, 1)
        schedule = optax.cosine_decay_schedule(lr, decay_steps)
    elif config.schedule == "step":
        schedule = optax.exponential_decay(lr, config.decay_steps, config.decay_rate,
                                           staircase=True)
    else:
        schedule = optax.constant_schedule(lr)
    if config.warmup_steps:
        warmup = optax.linear_schedule(0.0, lr, config.warmup_steps)
        schedule = optax.join_schedules([warmup, schedule], [config.warmup_steps])
    if config.name == "adam":
        parts = [optax.add_decayed_weights(config.weight_decay)] if config.weight_decay else []
        parts.append(optax.adam(schedule, b1=config.beta1))
    elif config.name == "adamw":
        parts = [optax.adamw(schedule, b1=config.beta1, weight_decay=config.weight_decay)]
    else:
        parts = [optax.add_decayed_weights(config.weight_decay)] if config.weight_decay else []
        parts.append(optax.sgd(schedule, momentum=config.momentum or None))
    if config.grad_clip:
        parts.insert(0, optax.clip_by_global_norm(config.grad_clip))
    return optax.chain(*parts)


def step_keys(state: TrainState, *purposes: str) -> dict[str, jax.Array]:
    """This step's keys, one per named purpose: ``split(fold_in(state.key, state.step))``."""
    keys = jax.random.split(jax.random.fold_in(state.key, state.step), len(purposes))
    return dict(zip(purposes, keys))


def norms(grads, params) -> Metrics:
    """``grad_norm`` and ``param_norm`` (global L2 norms) for the metrics dict."""
    return {"grad_norm": optax.tree.norm(grads), "param_norm": optax.tree.norm(params)}


def cast_inputs(batch: Batch, dtype) -> Batch:
    """Casts the batch's float inputs to the compute dtype (labels, masks, lengths untouched)."""
    if dtype is None:
        return batch
    inputs = {m: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
              for m, x in batch["inputs"].items()}
    return {**batch, "inputs": inputs}


def compute_dtype(name: str):
    """``"float32"`` -> None (layers keep float32), ``"bfloat16"`` -> ``jnp.bfloat16``.

    ``name`` is a ``train.dtype`` value. A config's is checked when the config is built; this
    function also takes a plain string (a method written outside mmjax), so it checks it against
    the same ``Literal``.
    """
    valid = field_choices(TrainConfig, "dtype")
    if name not in valid:
        raise UserError(f"train.dtype must be one of {', '.join(valid)}; got {name!r}")
    return None if name == "float32" else getattr(jnp, name)
