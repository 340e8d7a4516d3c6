"""``mmjax bench``: compile time and steady step time of every method, as JSON lines.

Each case times the training program of a registered method at its config class's defaults on a
dataset's shared model and training settings (``mmjax.presets.method_experiment``: the registries
alone, no config file), with the batch size, seed count, steps per call and dtype given on the
command line and any ``--set`` overrides: ``train.make_train_chunk`` of the method's main phase
(``timed_phase``; the record names it), a ``lax.scan`` of ``steps_per_call`` steps over all seed
replicas with the state donated, fed random data of the shapes' spec (no dataset is built).
Compile time is measured with ``lower().compile()``; steady time over ``repeats`` calls of the
compiled executable (which cannot recompile) after three warm-up calls, each blocked on its result.
Compare numbers only between runs on the same device kind.

Shapes (``shapes()``, declared by the datasets' registry entries): the embedded datasets, and
specs at the papers' input widths (random data, no files needed) that take the shared settings of
a dataset with the same kind of encoder (``BenchShapes.configs`` names that dataset).
``--suite paper`` (``PAPER_SUITE``) times every registered method at its paper's shapes and batch
size. Every list option (batch,
seeds, steps per call, dtype) takes comma-separated values and the cases are their product, which
is how the scaling sweeps of benchmarks/README.md are made.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import pathlib
import time

import jax
import numpy as np

from mmjax import config as config_lib
from mmjax import methods, parallel, presets, train
from mmjax.config import ExperimentConfig
from mmjax.data import registry
from mmjax.data.base import Dataset, DatasetSpec, Split, length_key
from mmjax.data.registry import BenchShapes
from mmjax.errors import UserError
from mmjax.methods.base import schedule


def shapes() -> dict[str, BenchShapes]:
    """Every shape name ``--dataset`` takes -> its spec and the dataset whose shared settings its
    cases take, as the datasets' registry entries declare them
    (``mmjax.data.registry.Entry.bench``)."""
    return registry.bench_shapes()


# The paper shapes and batch size of each method (issue "Throughput"); any other registered method
# (the baselines) runs at DEFAULT_CASE.
PAPER_SUITE = {
    "smil": ("avmnist_offline", 64),
    "ume_mma": ("avmnist_offline", 64),
    "redcore": ("iemocap_sequences", 128),
    "mla": ("features512", 64),
    "raml": ("food_features", 128),
}
DEFAULT_CASE = ("avmnist_offline", 64)

# Dense peak FLOP/s by device kind (vendor data sheets, SXM parts), for the fraction of peak.
PEAK_FLOPS = {
    ("H100", "float32"): 67e12, ("H100", "bfloat16"): 989e12,
    ("H200", "float32"): 67e12, ("H200", "bfloat16"): 989e12,
}


def peak_flops(device_kind: str, dtype: str) -> float | None:
    """The device's dense peak FLOP/s for ``dtype`` if known (None on CPUs and unknown kinds)."""
    for (kind, kind_dtype), peak in PEAK_FLOPS.items():
        if kind in device_kind and kind_dtype == dtype:
            return peak
    return None


def steps_counted(steps_per_call: int, unroll: int) -> int:
    """How many training steps XLA's cost analysis counts in a chunk's compiled program.

    The cost analysis counts a while loop's body once, whatever its trip count: a rolled scan
    (``unroll=1``) is counted as one step, a scan unrolled ``u`` times as ``u`` steps plus the
    ``steps_per_call % u`` left over (unrolled after the loop), a fully unrolled one (``unroll=0``)
    as all ``steps_per_call``.
    """
    if not unroll or unroll >= steps_per_call:
        return steps_per_call
    return unroll + steps_per_call % unroll


def random_dataset(spec: DatasetSpec, n: int, seed: int = 0) -> Dataset:
    """A dataset of ``n`` random examples of ``spec``'s shapes (complete, balanced labels; each
    ``[T, D]`` sequence modality padded after a random length, given in ``inputs["<m>_len"]``)."""
    rng = np.random.default_rng(seed)
    inputs = {m: rng.standard_normal((n, *s), dtype=np.float32)
              for m, s in zip(spec.modalities, spec.shapes)}
    for m, axis in zip(spec.modalities, spec.time_axes):
        # A [T, D] modality with a time axis is a padded sequence (mmjax's layout for frames and
        # tokens): random valid lengths, zeros after them. Images and MFCC maps with a time axis
        # (for time-step masking) have no lengths.
        if axis is not None and len(spec.shape_of(m)) == 2:
            steps = spec.shape_of(m)[0]
            lengths = rng.integers(1, steps + 1, n).astype(np.int32)
            inputs[m] *= (np.arange(steps)[None, :] < lengths[:, None])[..., None]
            inputs[length_key(m)] = lengths
    split = Split(inputs, np.ones((n, spec.num_modalities), bool),
                  (np.arange(n) % spec.num_classes).astype(np.int32))
    return Dataset(spec, {"train": split, "test": split})


def timed_phase(config: ExperimentConfig, method) -> int:
    """The index of the phase a case times: the one that runs the most of ``train.steps`` (the
    later one on a tie), e.g. SMIL's meta-training, MMIN's student."""
    spans = schedule(method.phases, config.train.steps)
    return max(spans, key=lambda span: (span.end - span.start, span.index)).index


def compile_case(config: ExperimentConfig, spec: DatasetSpec):
    """The compiled training chunk of a case's main phase (``timed_phase``) on random data of
    ``spec``'s shapes, from states that have entered that phase.

    Returns ``(compiled, states, args, compile_s, phase_name, policy)``: call
    ``compiled(states, *args)``, which returns ``(states, metrics)`` (the states are donated).
    """
    dataset = random_dataset(spec, n=max(4 * config.train.batch_size, 256))
    s = train.make_setup(config, dataset)
    data, present = train.device_data(s)
    states = train.init_states(s, data)
    phase = timed_phase(config, s.method)
    enter = train.make_enter(s, phase)
    if enter is not None:
        states = enter(states)
    args = (present, s.data_keys, data)
    tic = time.perf_counter()
    compiled = train.make_train_chunk(s, phase).lower(states, *args).compile()
    return (compiled, states, args, time.perf_counter() - tic, s.method.phases[phase].name,
            s.policy)


def bench_case(config: ExperimentConfig, spec: DatasetSpec, repeats: int) -> dict:
    """Times one (method, shapes, batch, seeds) case; returns its JSON record."""
    t = config.train
    compiled, states, args, compile_s, phase, policy = compile_case(config, spec)
    for _ in range(3):
        states, _ = jax.block_until_ready(compiled(states, *args))
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        states, _ = jax.block_until_ready(compiled(states, *args))
        times.append((time.perf_counter() - tic) / t.steps_per_call)
    us = np.asarray(times) * 1e6
    cost = (compiled.cost_analysis() or {})
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get("flops", float("nan"))) / steps_counted(t.steps_per_call,
                                                                     policy.unroll)
    memory = compiled.memory_analysis()
    peak = None
    if memory is not None:
        peak = int(memory.temp_size_in_bytes + memory.argument_size_in_bytes
                   + memory.output_size_in_bytes - memory.alias_size_in_bytes)
    median = float(np.median(us))
    kind = jax.devices()[0].device_kind
    peak_device = peak_flops(kind, t.dtype)
    achieved = flops / median * 1e6
    return {
        "method": config.method.name, "phase": phase, "dataset": spec.name, "batch": t.batch_size,
        "num_seeds": t.num_seeds, "vmap_seeds": policy.vmap_seeds,
        "steps_per_call": t.steps_per_call, "unroll": policy.unroll,
        "dtype": t.dtype,
        "devices": jax.device_count(), "device_kind": kind,
        "jax": jax.__version__, "compile_s": round(compile_s, 3),
        "us_per_step_median": round(median, 1),
        "us_per_step_p90": round(float(np.percentile(us, 90)), 1),
        "samples_per_s": round(t.batch_size * t.num_seeds / median * 1e6, 1),
        "flops_per_step": flops, "gflops_per_s": round(achieved * 1e-9, 3),
        "fraction_of_peak": (round(achieved / (peak_device * jax.device_count()), 5)
                             if peak_device else None),
        "peak_memory_bytes": peak,
    }


def case_config(name: str, dataset: str, overrides: tuple[str, ...] = (),
                **train_settings) -> ExperimentConfig:
    """The experiment of method ``name`` at its config class's defaults on ``dataset``'s shared
    settings (``presets.method_experiment``), with ``overrides`` (``--set`` syntax) applied and
    ``train_settings`` replaced."""
    return with_settings(presets.method_experiment(dataset, name), overrides, **train_settings)


def with_settings(config: ExperimentConfig, overrides: tuple[str, ...] = (),
                  **train_settings) -> ExperimentConfig:
    """``config`` with ``overrides`` (``--set`` syntax) applied and ``train_settings`` replaced:
    what every case gets; also for timing a config file's program (``config.load``)."""
    config = config_lib.override(config, list(overrides))
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train_settings))


def cases(names: list[str] | None, dataset: str, batch_sizes: list[int],
          suite: str | None = None) -> list[tuple[str, str, int]]:
    """``(method, shapes, batch)`` of every case before the seed/steps/dtype product.

    ``suite="paper"``: every registered method (or ``names``) at ``PAPER_SUITE``'s shapes and batch
    size; otherwise each name at ``dataset`` and every batch size.
    """
    for name in names or ():
        methods.entry(name)  # unknown names fail before any timing
    names = names or sorted(methods.REGISTRY)
    if suite == "paper":
        return [(n, *PAPER_SUITE.get(n, DEFAULT_CASE)) for n in names]
    if suite is not None:
        raise UserError(f"unknown bench suite {suite!r}; the suite is: paper")
    known = shapes()
    if dataset not in known:
        raise UserError(f"bench knows the shapes {', '.join(known)}, not {dataset!r}")
    return [(n, dataset, b) for n in names for b in batch_sizes]


def run(names: list[str] | None = None, dataset: str = "avmnist_offline",
        batch_sizes: tuple[int, ...] = (64,), num_seeds: tuple[int, ...] = (1,),
        steps_per_call: tuple[int, ...] = (10,), dtypes: tuple[str, ...] = ("float32",),
        repeats: int = 20, suite: str | None = None,
        overrides: tuple[str, ...] = ()) -> list[dict]:
    """Benchmarks every case (see ``cases``) at every seed count, steps per call and dtype, with
    ``overrides`` (``key=value``, e.g. ``method.phase1_steps=0``) applied to every config; prints
    each record as a JSON line as soon as it is measured and returns them all."""
    plan = cases(names, dataset, list(batch_sizes), suite)
    settings = list(itertools.product(num_seeds, steps_per_call, dtypes))
    known = shapes()
    configs = []  # every config is loaded and checked before the first (slow) case runs
    for name, shape_name, batch in plan:
        parallel.check_batch_size(batch, "--batch")
        for seeds, steps, dtype in settings:
            config = case_config(name, known[shape_name].configs, overrides, batch_size=batch,
                                 num_seeds=seeds, steps_per_call=steps, dtype=dtype)
            configs.append((config, known[shape_name].spec))
    records = []
    for config, spec in configs:
        record = bench_case(config, spec, repeats)
        print(json.dumps(record), flush=True)
        records.append(record)
    return records


def compare(records: list[dict], old_file: pathlib.Path) -> str:
    """Lines ``method: new/old`` of median µs/step against an earlier JSONL run (same cases)."""
    key = lambda r: (r["method"], r["dataset"], r["batch"], r["num_seeds"],  # noqa: E731
                     r["steps_per_call"], r["dtype"], r["devices"])
    old = {key(r): r for r in map(json.loads, old_file.read_text().splitlines()) if r}
    lines = []
    for r in records:
        if key(r) in old:
            ratio = r["us_per_step_median"] / old[key(r)]["us_per_step_median"]
            lines.append(f"{case_name(r)}: {ratio:.3f}x of old median µs/step")
        else:
            lines.append(f"{case_name(r)}: no matching case in {old_file}")
    return "\n".join(lines)


def case_name(record: dict) -> str:
    """A short label of a record's case, e.g. ``concat@mfeat b64 s1 k10 float32 d1``."""
    r = record
    return (f"{r['method']}@{r['dataset']} b{r['batch']} s{r['num_seeds']} k{r['steps_per_call']} "
            f"{r['dtype']} d{r['devices']}")
