"""``mmjax bench``: compile time and steady step time of every method, as JSON lines.

Each case times the training program of ``configs/<dataset>/<method>.py`` (its model, optimiser,
unroll and seed settings) with the batch size, seed count, steps per call and dtype given on the
command line: ``train.make_train_chunk``, a ``lax.scan`` of ``steps_per_call`` steps over all
seed replicas with the state donated, fed random data of the dataset's shapes (no dataset is
built). Compile time is measured with ``lower().compile()``; steady time over ``repeats`` calls
after three warm-up calls, each blocked on its result. Compare numbers only between runs on the
same device kind.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time

import jax
import numpy as np

from mmjax import config as config_lib
from mmjax import methods, parallel, train
from mmjax.config import ExperimentConfig
from mmjax.data import avmnist_offline, mfeat
from mmjax.data.base import Dataset, DatasetSpec, Split
from mmjax.errors import UserError

# Shapes of the embedded datasets: benchmarking needs shapes, not data.
SPECS = {"avmnist_offline": avmnist_offline.spec(), "mfeat": mfeat.spec()}


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
    s = train.make_setup(config, dataset)
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
        "num_seeds": t.num_seeds, "vmap_seeds": t.vmap_seeds, "steps_per_call": t.steps_per_call,
        "unroll": t.unroll,
        "dtype": t.dtype,
        "devices": jax.device_count(), "device_kind": jax.devices()[0].device_kind,
        "jax": jax.__version__, "compile_s": round(compile_s, 3),
        "us_per_step_median": round(median, 1), "us_per_step_p90": round(float(np.percentile(us, 90)), 1),
        "samples_per_s": round(t.batch_size * t.num_seeds / median * 1e6, 1),
        "flops_per_step": flops, "gflops_per_s": round(flops / median * 1e-3, 3),
        "peak_memory_bytes": peak,
    }


def case_config(name: str, dataset: str, configs_dir: pathlib.Path, **train_settings):
    """The config of ``configs/<dataset>/<name>.py`` with ``train_settings`` replaced."""
    file = configs_dir / dataset / f"{name}.py"
    if not file.is_file():
        raise UserError(f"bench needs {file} (the config whose program it times)")
    config = config_lib.load(str(file))
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train_settings))


def run(names: list[str] | None = None, dataset: str = "avmnist_offline", batch_size: int = 64,
        num_seeds: int = 1, steps_per_call: int = 10, repeats: int = 20,
        dtype: str = "float32", configs_dir: str = "configs") -> list[dict]:
    """Benchmarks each method (default: every registered one); prints and returns the records."""
    if dataset not in SPECS:
        raise UserError(f"bench knows the shapes of {', '.join(SPECS)}, not {dataset!r}")
    names = names or sorted(methods.REGISTRY)
    parallel.check_batch_size(batch_size, "--batch")
    settings = dict(batch_size=batch_size, num_seeds=num_seeds, steps_per_call=steps_per_call,
                    dtype=dtype)
    for name in names:
        methods.entry(name)  # unknown names fail before any timing
    configs = [case_config(n, dataset, pathlib.Path(configs_dir), **settings) for n in names]
    records = []
    for config in configs:
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
