"""``mmjax bench``: compile time and steady step time of every method, as JSON lines.

Each case builds the exact program ``mmjax train`` runs (``train.make_train_chunk``: a ``lax.scan``
of ``steps_per_call`` steps, vmapped over seeds, state donated) on random data of the dataset's
shapes, so no dataset needs to be built. Compile time is measured with ``lower().compile()``;
steady time over ``repeats`` calls after three warm-up calls, each blocked on its result.
Compare numbers only between runs on the same device kind.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import numpy as np

from mmjax import methods, parallel, train
from mmjax.config import ExperimentConfig, TrainConfig
from mmjax.data.base import Dataset, DatasetSpec, Split
from mmjax.errors import UserError

# Shapes of the embedded datasets: benchmarking needs shapes, not data.
SPECS = {
    "avmnist_offline": DatasetSpec("avmnist_offline", ("image", "audio"),
                                   ((28, 28, 1), (20, 20, 1)), "classification", 10),
    "mfeat": DatasetSpec("mfeat", ("fac", "fou", "kar", "mor", "pix", "zer"),
                         ((216,), (76,), (64,), (6,), (240,), (47,)), "classification", 10),
}


# Unroll factor of the step scan per dataset, as in configs/common.py: the conv nets of
# avmnist_offline are ~6x faster unrolled on XLA:CPU, the MLPs of mfeat compile faster rolled.
UNROLL = {"avmnist_offline": 0, "mfeat": 1}


def random_dataset(spec: DatasetSpec, n: int, seed: int = 0) -> Dataset:
    """A dataset of ``n`` random examples of ``spec``'s shapes (complete, balanced labels)."""
    rng = np.random.default_rng(seed)
    inputs = {m: rng.standard_normal((n, *s), dtype=np.float32)
              for m, s in zip(spec.modalities, spec.shapes)}
    split = Split(inputs, np.ones((n, spec.num_modalities), bool),
                  (np.arange(n) % spec.num_classes).astype(np.int32))
    return Dataset(spec, {"train": split, "test": split})


def bench_case(config: ExperimentConfig, spec: DatasetSpec, repeats: int) -> dict:
    """Times one (method, shapes, batch, seeds) case; returns its JSON record."""
    t = config.train
    dataset = random_dataset(spec, n=max(4 * t.batch_size, 256))
    method = methods.make(config, spec)
    seeds = t.seed + np.arange(t.num_seeds)
    roots = jax.vmap(lambda s: jax.random.split(jax.random.key(s), 3))(seeds)
    masks = np.ones((t.num_seeds, *dataset.splits["train"].present.shape), bool)
    s = train.Setup(config, dataset, method, parallel.make_mesh(), roots[:, 0], roots[:, 1], masks)
    data, present = train.device_data(s)
    states = train.init_states(s, data)
    chunk = train.make_train_chunk(s)

    tic = time.perf_counter()
    compiled = chunk.lower(states, present, s.data_keys, data).compile()
    compile_s = time.perf_counter() - tic
    for _ in range(3):
        states, _ = jax.block_until_ready(compiled(states, present, s.data_keys, data))
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        states, _ = jax.block_until_ready(compiled(states, present, s.data_keys, data))
        times.append((time.perf_counter() - tic) / t.steps_per_call)
    us = np.asarray(times) * 1e6
    cost = (compiled.cost_analysis() or {})
    cost = cost[0] if isinstance(cost, list) else cost
    flops = float(cost.get("flops", float("nan"))) / t.steps_per_call
    memory = compiled.memory_analysis()
    peak = None
    if memory is not None:
        peak = int(memory.temp_size_in_bytes + memory.argument_size_in_bytes
                   + memory.output_size_in_bytes - memory.alias_size_in_bytes)
    median = float(np.median(us))
    return {
        "method": config.method.name, "dataset": spec.name, "batch": t.batch_size,
        "num_seeds": t.num_seeds, "steps_per_call": t.steps_per_call, "unroll": t.unroll,
        "dtype": t.dtype,
        "devices": jax.device_count(), "device_kind": jax.devices()[0].device_kind,
        "jax": jax.__version__, "compile_s": round(compile_s, 3),
        "us_per_step_median": round(median, 1), "us_per_step_p90": round(float(np.percentile(us, 90)), 1),
        "samples_per_s": round(t.batch_size * t.num_seeds / median * 1e6, 1),
        "flops_per_step": flops, "gflops_per_s": round(flops / median * 1e-3, 3),
        "peak_memory_bytes": peak,
    }


def run(names: list[str] | None = None, dataset: str = "avmnist_offline", batch_size: int = 64,
        num_seeds: int = 1, steps_per_call: int = 10, repeats: int = 20,
        dtype: str = "float32") -> list[dict]:
    """Benchmarks each method (default: every registered one); prints and returns the records."""
    if dataset not in SPECS:
        raise UserError(f"bench knows the shapes of {', '.join(SPECS)}, not {dataset!r}")
    names = names or sorted(methods.REGISTRY)
    for name in names:
        methods.entry(name)  # unknown names fail before any timing
    parallel.check_batch_size(batch_size, "--batch")
    records = []
    for name in names:
        train_cfg = TrainConfig(batch_size=batch_size, num_seeds=num_seeds,
                                steps_per_call=steps_per_call, unroll=UNROLL[dataset],
                                dtype=dtype)
        method_cfg = dataclasses.replace(methods.entry(name).config_class(), name=name)
        config = ExperimentConfig(method=method_cfg, train=train_cfg)
        record = bench_case(config, SPECS[dataset], repeats)
        print(json.dumps(record), flush=True)
        records.append(record)
    return records


def compare(records: list[dict], old_file: pathlib.Path) -> str:
    """Lines ``method: new/old`` of median µs/step against an earlier JSONL run (same cases)."""
    key = lambda r: (r["method"], r["dataset"], r["batch"], r["num_seeds"], r["dtype"])  # noqa: E731
    old = {key(r): r for r in map(json.loads, old_file.read_text().splitlines()) if r}
    lines = []
    for r in records:
        if key(r) in old:
            ratio = r["us_per_step_median"] / old[key(r)]["us_per_step_median"]
            lines.append(f"{r['method']}: {ratio:.3f}x of old median µs/step")
        else:
            lines.append(f"{r['method']}: no matching case in {old_file}")
    return "\n".join(lines)
