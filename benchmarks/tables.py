"""Markdown tables (and optionally a plot) of ``mmjax bench`` JSON lines.

    .venv/bin/python benchmarks/tables.py benchmarks/results/cpu_sweeps.jsonl [--plot out.png]

One table per (method, shapes); each row is a case, with the settings that vary in the file as
leading columns. ``seed-steps/s`` is steps per second times the number of seed replicas (the
throughput measure of the seed sweep); ``--plot`` draws samples/s against batch size and
seed-steps/s against the seed count, one line per (method, shapes).
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib

SETTINGS = ("batch", "num_seeds", "steps_per_call", "dtype", "devices")
HEADERS = {"batch": "batch", "num_seeds": "seeds", "steps_per_call": "steps/call",
           "dtype": "dtype", "devices": "devices"}


def load(path: pathlib.Path) -> list[dict]:
    """The records of a JSONL file (blank lines skipped)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def seed_steps_per_s(r: dict) -> float:
    """Seed replicas times steps per second."""
    return r["num_seeds"] / r["us_per_step_median"] * 1e6


def table(records: list[dict]) -> str:
    """One markdown table; the settings that differ between ``records`` lead each row."""
    varying = [k for k in SETTINGS if len({r[k] for r in records}) > 1]
    head = [HEADERS[k] for k in varying] + [
        "compile s", "µs/step median", "µs/step p90", "samples/s", "seed-steps/s", "MFLOP/step",
        "GFLOP/s", "peak memory MiB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        memory = r["peak_memory_bytes"]
        cells = [str(r[k]) for k in varying] + [
            f"{r['compile_s']:.1f}", f"{r['us_per_step_median']:,.0f}",
            f"{r['us_per_step_p90']:,.0f}", f"{r['samples_per_s']:,.0f}",
            f"{seed_steps_per_s(r):,.0f}", f"{r['flops_per_step'] / 1e6:,.1f}",
            f"{r['gflops_per_s']:.1f}", "-" if memory is None else f"{memory / 2**20:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grouped(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Records by (method, shapes), in file order."""
    groups = collections.defaultdict(list)
    for r in records:
        groups[(r["method"], r["dataset"])].append(r)
    return groups


def plot(records: list[dict], out: pathlib.Path) -> None:
    """samples/s vs batch and seed-steps/s vs seeds (log-log), from the single-setting sweeps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for (method, shapes), rs in grouped(records).items():
        by_batch = [r for r in rs if r["num_seeds"] == 1 and r["dtype"] == "float32"
                    and r["devices"] == 1 and r["steps_per_call"] == rs[0]["steps_per_call"]]
        if len({r["batch"] for r in by_batch}) > 2:
            by_batch = sorted({r["batch"]: r for r in by_batch}.values(), key=lambda r: r["batch"])
            left.plot([r["batch"] for r in by_batch], [r["samples_per_s"] for r in by_batch],
                      "o-", label=f"{method} @ {shapes}")
        by_seeds = [r for r in rs if len({x["num_seeds"] for x in rs}) > 2 and r["batch"] == 64
                    and r["dtype"] == "float32" and r["devices"] == 1]
        if by_seeds:
            by_seeds = sorted({r["num_seeds"]: r for r in by_seeds}.values(),
                              key=lambda r: r["num_seeds"])
            right.plot([r["num_seeds"] for r in by_seeds], [seed_steps_per_s(r) for r in by_seeds],
                       "o-", label=f"{method} @ {shapes}")
    for ax, x, y in ((left, "batch size", "samples/s"), (right, "train.num_seeds", "seed-steps/s")):
        ax.set(xscale="log", yscale="log", xlabel=x, ylabel=y)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    device = records[0]["device_kind"]
    fig.suptitle(f"mmjax bench on {device} ({records[0]['jax']})")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    """Prints the tables of the given JSONL file; writes the plot if asked."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jsonl", type=pathlib.Path)
    parser.add_argument("--plot", type=pathlib.Path, help="write a PNG of the sweeps")
    args = parser.parse_args()
    records = load(args.jsonl)
    for (method, shapes), rs in grouped(records).items():
        print(f"### {method} @ {shapes}\n\n{table(rs)}\n")
    if args.plot:
        plot(records, args.plot)


if __name__ == "__main__":
    main()
