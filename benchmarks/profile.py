"""Where a method's step time goes: a ``jax.profiler`` trace of one bench case, summarised.

Runs the case's compiled training chunk (``mmjax.bench.compile_case``) a few times under
``jax.profiler.trace`` and reads the Perfetto trace back: device-op (kernel) time per step, the
number of device ops per step, the busy fraction (device-op time over wall time: far below 1 means
the step is bound by launch latency and host gaps, not by arithmetic; on a CPU it sums over XLA's
worker threads, so it can exceed 1), and the ops that take most time. Prints one JSON line; the
trace stays in ``--trace-dir`` for Perfetto / TensorBoard.

Usage: python benchmarks/profile.py METHOD [--shapes S] [--batch B] [--num-seeds N]
           [--steps-per-call K] [--set key=value ...] [--trace-dir DIR]
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import pathlib
import time

import jax

from mmjax import bench


def device_ops(trace_file: pathlib.Path) -> tuple[list[tuple[str, float]], list[str]]:
    """``(name, µs)`` of every XLA op (complete event) that ran on the device, and the names of
    all the trace's tracks.

    On GPUs the kernels are on "/device:GPU:k" tracks; XLA:CPU runs its ops (thunks) on the host,
    on its "tf_XLAEigen" worker threads, which is where they are read on a CPU-only host.
    """
    events = json.loads(gzip.open(trace_file).read())["traceEvents"]
    processes, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[e["pid"], e.get("tid")] = e["args"]["name"]
    device = {pid for pid, name in processes.items() if "/device:" in name}

    def on_device(e: dict) -> bool:
        if device:
            return e.get("pid") in device
        return threads.get((e.get("pid"), e.get("tid")), "").startswith("tf_XLAEigen")

    ops = [(e["name"], float(e["dur"])) for e in events
           if e.get("ph") == "X" and "dur" in e and on_device(e)
           and not e["name"].startswith("ThunkExecutor")]  # the executor wraps the ops
    return ops, sorted(processes.values())


def main() -> None:
    """Parses the command line, traces the case and prints the summary line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("method")
    p.add_argument("--shapes", default=None,
                   help="a bench.shapes() name (default: the paper suite's)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--num-seeds", type=int, default=1)
    p.add_argument("--steps-per-call", type=int, default=10)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--set", action="append", default=[], dest="overrides")
    p.add_argument("--trace-dir", default="/tmp/mmjax_trace")
    p.add_argument("--top", type=int, default=12)
    a = p.parse_args()
    shapes, batch = bench.PAPER_SUITE.get(a.method, bench.DEFAULT_CASE)
    shapes, batch = a.shapes or shapes, a.batch or batch
    config = bench.case_config(a.method, bench.shapes()[shapes].configs, tuple(a.overrides),
                               batch_size=batch, num_seeds=a.num_seeds,
                               steps_per_call=a.steps_per_call)
    compiled, states, args, *_ = bench.compile_case(config, bench.shapes()[shapes].spec)
    for _ in range(3):
        states, _ = jax.block_until_ready(compiled(states, *args))
    trace_dir = pathlib.Path(a.trace_dir) / f"{a.method}_{shapes}_b{batch}_s{a.num_seeds}"
    with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
        tic = time.perf_counter()
        for _ in range(a.calls):
            states, _ = jax.block_until_ready(compiled(states, *args))
        wall_us = (time.perf_counter() - tic) * 1e6
    steps = a.calls * a.steps_per_call
    newest = max(trace_dir.rglob("perfetto_trace.json.gz"), key=lambda f: f.stat().st_mtime)
    ops, tracks = device_ops(newest)
    per_name = collections.defaultdict(float)
    for name, us in ops:
        per_name[name] += us
    busy = sum(per_name.values())
    top = sorted(per_name.items(), key=lambda kv: -kv[1])[:a.top]
    print(json.dumps({
        "method": a.method, "shapes": shapes, "batch": batch, "num_seeds": a.num_seeds,
        "device_kind": jax.devices()[0].device_kind, "jax": jax.__version__,
        "wall_us_per_step": round(wall_us / steps, 1),
        "device_op_us_per_step": round(busy / steps, 1),
        "busy_fraction": round(busy / wall_us, 3) if wall_us else None,
        "device_ops_per_step": round(len(ops) / steps, 1),
        "top_ops_us_per_step": {n: round(us / steps, 1) for n, us in top},
        "tracks": tracks,
    }))


if __name__ == "__main__":
    main()
