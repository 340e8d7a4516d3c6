"""Shared by the tests: a three-modality toy dataset spec, random complete batches, the CLI
run in-process, a method's phases stepped as the runtime steps them, and the check that one
compiled step serves every missing pattern.

Imported as ``from toy import TOY_SPEC, random_batch, run_cli, phase_stepper`` (pytest puts tests/
on the path).
"""

import jax
import jax.numpy as jnp
import numpy as np

from mmjax import cli
from mmjax.data import missing
from mmjax.methods.base import schedule, span_at
from mmjax.data.base import DatasetSpec

TOY_SPEC = DatasetSpec("toy", ("a", "b", "c"), ((5,), (3,), (4,)), "classification", 3)


def random_batch(key, spec=TOY_SPEC, n=8):
    """``n`` complete samples of ``spec``: standard-normal inputs, uniform labels."""
    keys = jax.random.split(key, len(spec.modalities) + 1)
    inputs = {m: jax.random.normal(k, (n, *s)) for m, s, k in zip(spec.modalities, spec.shapes,
                                                                   keys)}
    return {"inputs": inputs, "present": jnp.ones((n, spec.num_modalities), bool),
            "label": jax.random.randint(keys[-1], (n,), 0, spec.num_classes)}


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``mmjax.cli.main(argv)`` -> (exit code, stdout, stderr); argparse exits become codes."""
    capsys.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def phase_stepper(method, total_steps, traces=None):
    """``step(state, batch)`` as the runtime runs it: the phase of ``state.step`` (its own jitted
    step), after that phase's ``enter`` at its first step. ``traces`` (a list) records the name of
    the phase each trace of a step belongs to."""
    spans = schedule(method.phases, total_steps)

    def traced(phase):
        def f(state, batch):
            if traces is not None:
                traces.append(phase.name)
            return phase.step(state, batch)
        return jax.jit(f)

    steps = [traced(p) for p in method.phases]
    enters = [p.enter and jax.jit(p.enter) for p in method.phases]

    def step(state, batch):
        span = span_at(spans, int(state.step))
        if int(state.step) == span.start and enters[span.index] is not None:
            state = enters[span.index](state)
        return steps[span.index](state, batch)

    return step


def assert_one_program_per_phase(method, total_steps, batch, masks, phase_names):
    """Steps ``method`` as the runtime does (``phase_stepper``) from step 0, one step per mask of
    ``masks``, and predicts each: the losses stay finite, each phase of ``phase_names`` is traced
    once, and one compiled ``predict`` serves every mask."""
    traces = []
    step = phase_stepper(method, total_steps, traces)
    state = method.init(jax.random.key(1), batch)
    predict = jax.jit(method.predict)
    for mask in masks:
        b = {**batch, "present": jnp.broadcast_to(jnp.asarray(mask), batch["present"].shape)}
        state, metrics = step(state, b)
        predict(state, b)
        assert np.isfinite(float(metrics["loss"]))
    assert traces == list(phase_names) and predict._cache_size() == 1


def assert_one_program_for_every_mask(method, batch, modalities):
    """Steps and predicts ``method`` (one phase) under every non-empty pattern of ``modalities``:
    the losses stay finite and one compiled ``train_step`` and ``predict`` serve them all."""
    state = method.init(jax.random.key(1), batch)
    step, predict = jax.jit(method.train_step), jax.jit(method.predict)
    for mask in missing.all_subsets(modalities)[1]:
        b = {**batch, "present": jnp.broadcast_to(jnp.asarray(mask), batch["present"].shape)}
        state, metrics = step(state, b)
        predict(state, b)
        assert np.isfinite(float(metrics["loss"]))
    assert step._cache_size() == 1 and predict._cache_size() == 1
