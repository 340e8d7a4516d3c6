"""Tests of the benchmark harness (``mmjax.bench``): what it measures, not how fast anything is.

Compilation happens before the first timed call and never during the steady loop; every timed call
is blocked on its result; the paper suite maps each method to its paper's shapes and batch; list
options expand to their product; bfloat16 compute keeps the parameters in float32.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import bench, train
from mmjax.errors import UserError

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"  # jax._src.dispatch


@pytest.mark.slow
def test_compile_is_separate_and_every_timed_call_blocks(monkeypatch):
    """Events in order: XLA compiles happen only before the first blocked call (``lower().compile()``
    and the one-off init programs), then exactly 3 warm-up + ``repeats`` blocked calls with no
    compile between them."""
    events = []

    def on_duration(name, secs, **kwargs):
        if name == COMPILE_EVENT:
            events.append("compile")

    jax.monitoring.register_event_duration_secs_listener(on_duration)
    real_block = jax.block_until_ready

    def block(x):
        events.append("block")
        return real_block(x)

    monkeypatch.setattr(jax, "block_until_ready", block)
    shapes = bench.shapes()["mfeat"]
    config = bench.case_config("late", shapes.configs,
                               batch_size=16, steps_per_call=2)
    events.clear()
    try:
        record = bench.bench_case(config, shapes.spec, repeats=4)
    finally:
        jax.monitoring.unregister_event_duration_listener(on_duration)
    first_block = events.index("block")
    assert "compile" in events[:first_block]
    assert events[first_block:] == ["block"] * (3 + 4)
    assert record["compile_s"] > 0 and record["us_per_step_median"] > 0
    assert record["fraction_of_peak"] is None  # the CPU has no known peak


def test_paper_suite_uses_each_papers_shapes_and_batch():
    plan = dict((m, (s, b)) for m, s, b in bench.cases(["ume_mma", "concat"], "mfeat", [32],
                                                          suite="paper"))
    assert plan == {"ume_mma": ("avmnist_offline", 64), "concat": bench.DEFAULT_CASE}
    assert bench.PAPER_SUITE["redcore"] == ("iemocap_sequences", 128)
    assert bench.shapes()["iemocap_utterance"].spec.shapes == ((130,), (342,), (1024,))
    assert bench.shapes()["iemocap_sequences"].spec.shapes == ((50, 130), (50, 342), (50, 1024))
    assert bench.shapes()["features512"].spec.shapes == ((512,),) * 3
    with pytest.raises(UserError, match="unknown bench suite"):
        bench.cases(None, "mfeat", [64], suite="nope")
    with pytest.raises(UserError, match="shapes"):
        bench.cases(["concat"], "nope", [64])


def test_cases_come_from_the_registries():
    """A case is the method's config-class defaults on the shared settings of the dataset its
    shapes name (no config file), with ``--set`` overrides and the command line's train settings;
    every registered method has one at the mfeat and AV-MNIST shapes."""
    from mmjax import methods, presets

    for shape_name in ("mfeat", "avmnist_offline"):
        dataset = bench.shapes()[shape_name].configs
        for name, found in methods.REGISTRY.items():
            config = bench.case_config(name, dataset, batch_size=32, num_seeds=2)
            assert type(config.method) is found.config_class
            assert config.method == found.config_class(name=name)
            assert (config.train.batch_size, config.train.num_seeds) == (32, 2)
            expected = presets.method_experiment(dataset, name)
            assert dataclasses.replace(config, train=expected.train) == expected
    config = bench.case_config("mla", "mfeat", ("optim.name=sgd", "model.feature_dim=128"))
    assert (config.optim.name, config.model.feature_dim) == ("sgd", 128)
    with pytest.raises(UserError, match="unknown method 'nope'"):
        bench.case_config("nope", "mfeat")


@pytest.mark.slow
def test_list_options_expand_to_their_product(capsys):
    records = bench.run(["late"], "mfeat", batch_sizes=(8, 16), num_seeds=(1, 2),
                        steps_per_call=(1,), repeats=1)
    got = [(r["batch"], r["num_seeds"], r["steps_per_call"]) for r in records]
    assert got == [(8, 1, 1), (8, 2, 1), (16, 1, 1), (16, 2, 1)]
    assert len(capsys.readouterr().out.splitlines()) == 4  # one JSON line per case, as measured


@pytest.mark.slow
def test_flops_per_step_of_a_rolled_loop_do_not_depend_on_steps_per_call():
    """XLA counts a rolled loop's body once: with ``unroll=1`` the per-step FLOPs of 1 and 4 steps
    per call agree (dividing by the steps per call, as before, made them 4x apart)."""
    shapes = bench.shapes()["mfeat"]
    flops = []
    for steps in (1, 4):
        config = bench.case_config("concat", shapes.configs,
                                   batch_size=16, num_seeds=1, steps_per_call=steps, unroll=1)
        flops.append(bench.bench_case(config, shapes.spec, repeats=1)["flops_per_step"])
    assert flops[1] == pytest.approx(flops[0], rel=0.02)
    assert [bench.steps_counted(10, u) for u in (0, 1, 3, 4, 5, 20)] == [10, 1, 4, 6, 5, 10]


def test_random_sequences_are_padded_after_their_lengths():
    """[T, D] sequences get lengths and padding; AV-MNIST's MFCC map, which has a time axis for
    time-step masking but no lengths, is left whole."""
    avmnist = bench.random_dataset(bench.shapes()["avmnist_offline"].spec, 8).splits["train"]
    assert set(avmnist.inputs) == {"image", "audio"} and np.abs(avmnist.inputs["audio"]).min() > 0
    spec = bench.shapes()["iemocap_sequences"].spec
    inputs = bench.random_dataset(spec, 16).splits["train"].inputs
    for m in spec.modalities:
        lengths = inputs[f"{m}_len"]
        assert lengths.min() >= 1 and lengths.max() <= 50
        valid = np.abs(inputs[m]).sum(-1) > 0  # [N, T]
        np.testing.assert_array_equal(valid, np.arange(50)[None, :] < lengths[:, None])


def test_peak_flops_lookup():
    assert bench.peak_flops("NVIDIA H100 80GB HBM3", "bfloat16") == 989e12
    assert bench.peak_flops("cpu", "float32") is None


def test_bfloat16_compute_keeps_float32_params():
    """``train.dtype=bfloat16``: the compiled step computes in bf16, the parameters and optimiser
    state stay float32 before and after the step."""
    shapes = bench.shapes()["mfeat"]
    config = bench.case_config("concat", shapes.configs,
                               batch_size=16, steps_per_call=1, dtype="bfloat16")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, num_seeds=1))
    s = train.make_setup(config, bench.random_dataset(shapes.spec, 64))
    data, present = train.device_data(s)
    states = train.init_states(s, data)
    chunk = train.make_train_chunk(s)
    assert "bf16" in chunk.lower(states, present, s.data_keys, data).as_text()
    states, _ = chunk(states, present, s.data_keys, data)
    floats = [x for x in jax.tree.leaves((states.params, states.opt_state))
              if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(x.dtype == jnp.float32 for x in floats)
