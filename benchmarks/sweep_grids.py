"""Wall time of a paper figure's grid: one ``mmjax sweep`` against one ``mmjax train`` per point.

Issue 24's two grids, each point × seed trained both ways, interleaved per round (one by one,
then the sweep), every trial with its own empty ``JAX_COMPILATION_CACHE_DIR`` (JAX's default
thresholds, as a user's first run has) and its own work folder:

- ``redcore_imb_mfeat``: RedCore's imbalanced missing rates on mfeat (views fou, kar, zer,
  ``missing.protocol=independent``): Table 2's six assignments of (0.8, 0.5, 0.2) × RedCore, Core
  (``method.regulate=false``), Red (``method.unimodal_ce=false``) at the halved widths of
  experiments/redcore/run.sh × 5 seeds: 90 trainings.
- ``smil_fig4_avmnist_offline``: SMIL's Figure 4 on AV-MNIST-offline (``missing.protocol=paired``,
  η = ``missing.paired_fraction`` 0.05, 0.1, 0.2) × SMIL, the lower bound, AE imputation × 5 seeds
  (2 unrolled steps per call, as experiments/smil/run.sh): 45 trainings.

Every config is ``:quick`` (100 steps; the AE's autoencoder phase included) unless ``--steps``.
Each trial prints one JSON line (also appended to ``--out``): the grid, the mode, the wall
seconds (compile, start-up and the final evaluations included), the trainings and processes, the
1-minute load average at its start and end; the sweep's line also says whether every point's
per-seed evaluation equals the one-by-one run's (``same_results``: every subset and metric,
exactly, as tests/test_sweep.py checks on a small grid), how many values differ and the largest
difference.

    nice .venv/bin/python benchmarks/sweep_grids.py --grid redcore_imb_mfeat \\
        --out benchmarks/results/cpu_sweep_grids.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = ("method.latent_dim=64", "method.xenc_layers=64,32,16")
# Table 2's six assignments of (l, m, s) = (0.8, 0.5, 0.2) to (fou, kar, zer).
RATES = ("[0.2,0.5,0.8]", "[0.5,0.2,0.8]", "[0.8,0.5,0.2]", "[0.8,0.2,0.5]", "[0.2,0.8,0.5]",
         "[0.5,0.8,0.2]")

# grid -> (shared overrides, [(name, config, overrides)], axis key, axis values)
GRIDS = {
    "redcore_imb_mfeat": (
        ("data.views=fou,kar,zer", "missing.protocol=independent"),
        [("redcore", "configs/mfeat/redcore.py", SMALL),
         ("core", "configs/mfeat/redcore.py", (*SMALL, "method.regulate=false")),
         ("red", "configs/mfeat/redcore.py", (*SMALL, "method.unimodal_ce=false"))],
        "missing.rates", RATES),
    "smil_fig4_avmnist_offline": (
        ("missing.protocol=paired", "train.steps_per_call=2"),
        [("smil", "configs/avmnist_offline/smil.py", ()),
         ("lower_bound", "configs/avmnist_offline/lower_bound.py", ("method.modality=image",)),
         ("ae_imputation", "configs/avmnist_offline/ae_imputation.py", ())],
        "missing.paired_fraction", ("0.05", "0.1", "0.2")),
}


def mmjax(*args: str, cache: pathlib.Path) -> None:
    """Runs ``python -m mmjax ARGS`` from the checkout with its own compile cache."""
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-m", "mmjax", *args], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def sets(*overrides: str) -> list[str]:
    """``--set`` flags for ``overrides``."""
    return [flag for o in overrides for flag in ("--set", o)]


def one_by_one(grid: str, seeds: int, steps: int | None, root: pathlib.Path) -> dict:
    """Every point × seed as its own ``mmjax train`` process, in a shell loop's order; returns
    {(name, axis value, seed): eval.json's per-seed values}."""
    shared, points, key, values = GRIDS[grid]
    extra = (f"train.steps={steps}",) if steps else ()
    results = {}
    for name, config, overrides in points:
        for value in values:
            for seed in range(seeds):
                workdir = root / name / value / f"seed{seed}"
                mmjax("train", "--config", f"{config}:quick", "--workdir", str(workdir),
                      *sets(*shared, *overrides, f"{key}={value}", f"train.seed={seed}", *extra),
                      cache=root / "jax-cache")
                evaluation = json.loads((workdir / "eval.json").read_text())
                results[name, value, seed] = per_seed(evaluation, 0)
    return results


def sweep(grid: str, seeds: int, steps: int | None, root: pathlib.Path) -> dict:
    """The whole grid as one ``mmjax sweep`` (its methods as a grid file, the axis as --grid);
    returns the same mapping as ``one_by_one``."""
    shared, points, key, values = GRIDS[grid]
    extra = (f"train.steps={steps}",) if steps else ()
    grid_file = root / "grid.txt"
    grid_file.write_text("".join(f"name={name} config={config}:quick {' '.join(overrides)}\n"
                                 for name, config, overrides in points))
    workdir = root / "sweep"
    mmjax("sweep", "--workdir", str(workdir), "--grid-file", str(grid_file),
          "--grid", f"{key}={','.join(values)}", "--seeds", str(seeds), *sets(*shared, *extra),
          cache=root / "jax-cache")
    results = {}
    for point in json.loads((workdir / "sweep.json").read_text())["points"]:
        v = point["values"]
        evaluation = json.loads((workdir / point["dir"] / "eval.json").read_text())
        results[v["name"], v[key], int(v["train.seed"])] = per_seed(evaluation,
                                                                    point["replicas"][0])
    return results


def per_seed(evaluation: dict, replica: int) -> dict:
    """{subset: {metric: value}} of one replica of an ``eval.json`` (``average`` included)."""
    seeds = evaluation["seeds"]
    rows = {**seeds["subsets"], "average": seeds["average"]}
    return {subset: {m: v[replica] for m, v in metrics.items()} for subset, metrics in rows.items()}


def compare(alone: dict, packed: dict) -> dict:
    """``same_results`` (every value equal) and, value by value, how many differ and by how much
    at most: vmapped replicas run batched matrix products whose float32 rounding differs from
    one replica's, which can flip a borderline test prediction after many steps."""
    if alone.keys() != packed.keys():  # a point missing from one side: nothing to pair
        return {"same_results": False}
    pairs = [(alone[k][s][m], packed[k][s][m]) for k in alone for s in alone[k]
             for m in alone[k][s]]
    differ = [abs(a - b) for a, b in pairs if a != b]
    return {"same_results": not differ, "values": len(pairs),
            "differing_values": len(differ), "max_abs_difference": max(differ, default=0.0)}


def main() -> None:
    """Runs ``--rounds`` interleaved rounds of the chosen grid; one JSON line per trial."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=sorted(GRIDS), required=True)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, help="train.steps of every point (default :quick's)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default="one_by_one,sweep",
                        help="comma-separated, in the order each round runs them")
    parser.add_argument("--out", type=pathlib.Path, help="also append the JSON lines here")
    parser.add_argument("--keep", type=pathlib.Path,
                        help="keep the work folders under this folder (default: deleted)")
    args = parser.parse_args()
    _, points, _, values = GRIDS[args.grid]
    runners = {"one_by_one": one_by_one, "sweep": sweep}
    for round_ in range(1, args.rounds + 1):
        results = {}
        for mode in args.modes.split(","):
            root = pathlib.Path(tempfile.mkdtemp(prefix=f"{args.grid}-{mode}-",
                                                 dir=args.keep))
            load = os.getloadavg()[0]
            start = time.perf_counter()
            results[mode] = runners[mode](args.grid, args.seeds, args.steps, root)
            record = {
                "grid": args.grid, "mode": mode, "round": round_,
                "seconds": round(time.perf_counter() - start, 1),
                "trainings": len(points) * len(values) * args.seeds,
                "processes": 1 if mode == "sweep" else len(results[mode]),
                "steps": args.steps or "quick", "load_1min_start": round(load, 2),
                "load_1min_end": round(os.getloadavg()[0], 2), "host": os.uname().nodename,
                "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            if len(results) == 2:
                record.update(compare(results["one_by_one"], results["sweep"]))
            line = json.dumps(record)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")
            if args.keep is None:
                shutil.rmtree(root)


if __name__ == "__main__":
    main()
