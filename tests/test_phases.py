"""The phase runtime: the host runs each phase's own program for exactly its steps, applies each
``enter`` once at its phase's first step, never crosses a phase inside one call, and a run
stopped at or between phase boundaries resumes to exactly the uninterrupted result."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import bench, methods, parallel, train
from mmjax.checkpoint import Checkpointer
from mmjax.config import DataConfig, ExperimentConfig, MethodConfig, ModelConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods.base import Method, Phase, Span, schedule, span_at

SPEC = DatasetSpec("mfeat", ("fac", "mor"), ((216,), (6,)), "classification", 10)


def test_schedule_places_phases_one_after_another():
    step = lambda s, b: (s, {})  # noqa: E731
    phases = (Phase("a", 3, step), Phase("skipped", 0, step), Phase("b", 4, step),
              Phase("rest", None, step), Phase("never", 5, step))
    assert schedule(phases, 20) == (Span(0, 0, 3), Span(2, 3, 7), Span(3, 7, 20))
    assert schedule(phases, 5) == (Span(0, 0, 3), Span(2, 3, 5))  # clipped to train.steps
    # The last phase runs to the end whatever its own length.
    assert schedule((Phase("a", 3, step), Phase("b", 2, step)), 9) == (Span(0, 0, 3),
                                                                       Span(1, 3, 9))
    assert span_at(schedule(phases, 20), 7) == Span(3, 7, 20)
    with pytest.raises(ValueError):
        span_at(schedule(phases, 20), 20)


def _phased(config: ExperimentConfig) -> Method:
    """concat trained in three phases, each recording its index in the metrics and counting, in
    ``extra``, the steps it ran and the ``enter`` calls it saw."""
    base = methods.make(config, SPEC)

    def init(key, batch):
        state = base.init(key, batch)
        return state.replace(extra={"steps": jnp.zeros(3, jnp.int32),
                                    "entered": jnp.zeros(3, jnp.int32)})

    def step_of(i):
        def step(state, batch):
            new, metrics = base.train_step(state, batch)
            extra = {**state.extra, "steps": state.extra["steps"].at[i].add(1)}
            return new.replace(extra=extra), {**metrics, "phase": jnp.float32(i)}
        return step

    def enter_of(i):
        def enter(state):
            # A fresh optimiser state, as a phase with its own optimiser starts.
            return state.replace(opt_state=jax.tree.map(jnp.zeros_like, state.opt_state),
                                 extra={**state.extra,
                                        "entered": state.extra["entered"].at[i].add(1)})
        return enter

    phases = (Phase("one", 5, step_of(0)), Phase("two", 3, step_of(1), enter_of(1)),
              Phase("three", None, step_of(2), enter_of(2)))
    return Method(init, phases, base.predict)


def _setup(steps: int, **train_kwargs) -> train.Setup:
    t = TrainConfig(**{"steps": steps, "batch_size": 16, "steps_per_call": 2, "unroll": 1,
                       "log_every": 2, "checkpoint_every": 2, "num_seeds": 2, **train_kwargs})
    config = ExperimentConfig(data=DataConfig(name="mfeat"), method=MethodConfig(name="concat"),
                              train=t, model=ModelConfig(hidden=16, feature_dim=8))
    dataset = bench.random_dataset(SPEC, 64)
    roots = jax.vmap(lambda s: jax.random.split(jax.random.key(s), 3))(np.arange(2))
    masks = np.ones((2, 64, SPEC.num_modalities), bool)
    return train.Setup(config, dataset, _phased(config), parallel.make_mesh(), roots[:, 0],
                       roots[:, 1], masks)


def _leaves(states):
    return [np.asarray(x) for x in jax.tree.leaves(jax.tree.map(
        lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
        states))]


@pytest.mark.slow
def test_each_phase_runs_its_steps_and_enters_once(tmp_path):
    """Phases of 5, 3 and the rest (4) steps with 2 steps per call: the calls split at steps 5
    and 8 (never crossing a phase), each phase's step ran exactly its steps, each enter once."""
    states = train.run(_setup(12), tmp_path)
    assert states.extra["steps"].tolist() == [[5, 3, 4]] * 2
    assert states.extra["entered"].tolist() == [[0, 1, 1]] * 2
    assert states.step.tolist() == [12, 12]


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [5, 6, 8, 10], ids=lambda s: f"stop{s}")
def test_resume_is_exact_across_phase_boundaries(tmp_path, stop_at):
    """A run stopped at a phase's last step (5, 8: between phases, before the next ``enter``) or
    mid-phase (6, 10) and resumed equals the uninterrupted run, parameters and optimiser state
    included; the enters still ran once each."""
    whole = _leaves(train.run(_setup(12), tmp_path / "whole"))
    # The first run ends at ``stop_at`` (its checkpoint is written there, as when a signal stops
    # it); the second, the same run to 12 steps, resumes from it.
    train.run(_setup(stop_at, checkpoint_every=100), tmp_path / "split")
    ckpt = Checkpointer(tmp_path / "split" / "checkpoints")
    assert ckpt.latest_step() == stop_at
    ckpt.close()
    resumed = train.run(_setup(12), tmp_path / "split")
    assert resumed.extra["entered"].tolist() == [[0, 1, 1]] * 2
    for a, b in zip(whole, _leaves(resumed)):
        np.testing.assert_array_equal(a, b)


def test_a_call_never_crosses_a_phase():
    """With 4 steps per call the calls are 4, 1 | 3 | 4: each ends at its phase's end and the
    next returns to the 4-step grid (logging and checkpoint steps stay reachable)."""
    programs = train.Programs(_setup(12, steps_per_call=4, log_every=4, checkpoint_every=4))
    calls, step = [], 0
    while step < 12:
        span, length = programs.next_call(step)
        calls.append((span.index, length))
        step += length
    assert calls == [(0, 4), (0, 1), (1, 3), (2, 4)]
