"""Adds the test-time evaluations of MLA's sweeps (sweeps/mfeat.txt, sweeps/avmnist.txt) to
their slot folders.

  python experiments/mla/slot_eval.py [SWEEP_DIR]     (default runs/mla/sweep_mfeat)

``mmjax sweep`` trains each line's 5 seeds, and packs the lines of one program (a method's
Table 1 and Table 2 lines) into one run under ``packed-runs/``; a slot folder then holds its
``eval.json`` but no checkpoint (on AV-MNIST-offline each seed is its own run, in its slot
folder ``<line>/train.seed-k``, the run ``sweep.json`` names). Two cells of MLA's tables are evaluations of a trained model
that training's ``eval.json`` does not hold, so this script restores each run's checkpoint (the
run ``sweep.json`` names for the slot), evaluates every replica, and writes each slot's share
(``evaluate.select_replicas``) into the slot folder:

- Table 3's DF ✗ cells: slots ``mla`` and ``mla_nohgm`` with ``method.fusion=average`` (the
  fusion acts in ``predict`` only, as in ``reeval.py``): ``eval_avg.json``;
- Table 2's test missing rate: every slot trained under ``missing.protocol=at_least_one`` at
  rate r, evaluated with ``eval.missing_rates=[r]`` (the ``missing-rate`` protocol; replica k's
  test mask from its own seed, so a packed slot gets the masks its run alone would):
  ``eval-missing-rate-test.json``, the file ``mmjax eval --protocol missing-rate`` writes.

A slot that already holds the file is skipped. Each run's own evaluation, restricted to a
slot's replicas, is first checked against the slot's ``eval.json`` (the replica indices).
"""

import json
import pathlib
import sys

from mmjax import cli, evaluate, train
from mmjax import config as config_lib

DF_OFF = {"mla": "eval_avg", "mla_nohgm": "eval_avg"}  # slot label -> file of the DF ✗ cell
MISSING_RATE = evaluate.file_stem("missing-rate", "test")


def _slots_by_run(sweep_dir: pathlib.Path) -> dict[str, dict[str, list[int]]]:
    """``{run folder: {slot folder: its replica indices in the run}}`` from ``sweep.json``.

    A point's ``replicas`` there index its slot's replicas; a packed run holds its slots' replicas
    one slot after the other, in the order of the run's ``slots`` (``sweep.Run.offsets``)."""
    doc = json.loads((sweep_dir / "sweep.json").read_text())
    in_slot: dict[str, list[int]] = {}
    for point in doc["points"]:
        in_slot.setdefault(point["dir"], []).extend(point["replicas"])
    runs: dict[str, dict[str, list[int]]] = {}
    for run in doc["runs"]:
        offset = 0
        for slot in run["slots"]:
            runs.setdefault(run["dir"], {})[slot] = [offset + i for i in sorted(in_slot[slot])]
            offset += len(in_slot[slot])
    return runs


def _jobs(sweep_dir: pathlib.Path, slots: dict[str, list[int]]):
    """(slot, replicas, file stem, overrides) of every evaluation a run's slots still need."""
    for slot, replicas in slots.items():
        workdir = sweep_dir / slot
        config = json.loads((workdir / "config.json").read_text())
        label = slot.split("/")[0]
        if label in DF_OFF and not (workdir / f"{DF_OFF[label]}.json").is_file():
            yield slot, replicas, DF_OFF[label], ("method.fusion=average",)
        missing = config["missing"]
        if missing["protocol"] == "at_least_one" and not (workdir / f"{MISSING_RATE}.json"
                                                          ).is_file():
            yield slot, replicas, MISSING_RATE, (f"eval.missing_rates=[{missing['rate']}]",)


def evaluate_run(sweep_dir: pathlib.Path, run_dir: str, slots: dict[str, list[int]]) -> None:
    """Restores one run's checkpoint once and writes each of its slots' missing evaluations."""
    jobs = list(_jobs(sweep_dir, slots))
    if not jobs:
        return
    workdir = sweep_dir / run_dir
    base = cli._load_workdir_config(workdir)
    s = train.setup(base, replicas=train.read_replicas(workdir, base))
    step, states = train.restore_states(s, workdir, with_step=True)
    seeds = [r.seed for r in s.replicas] if s.replicas else None
    # Guard on the replica indices: the run's own evaluation restricted to a slot must be the
    # slot's eval.json (what the sweep wrote there), value for value.
    own = evaluate.subsets(s.method, states, s.dataset, base, s.mesh)
    for slot, replicas in slots.items():
        written = json.loads((sweep_dir / slot / "eval.json").read_text())["seeds"]["subsets"]
        if evaluate.select_replicas(own, replicas)["seeds"]["subsets"] != written:
            raise SystemExit(f"{slot}: replicas {replicas} of {run_dir} are not its eval.json")
    done: dict[tuple[str, ...], dict] = {}  # one evaluation of all replicas per override set
    for slot, replicas, stem, overrides in jobs:
        if overrides not in done:
            config = config_lib.override(base, list(overrides))
            if stem == MISSING_RATE:
                result = evaluate.missing_rate(s.method, states, s.dataset, config, s.mesh,
                                               seeds=seeds)
            else:
                # The fusion is a method switch: build the method under it (as reeval.py does);
                # the trained parameters are the same.
                method = train.setup(config, replicas=train.read_replicas(workdir, config)).method
                result = evaluate.subsets(method, states, s.dataset, config, s.mesh)
            done[overrides] = evaluate.at_step(result, step)
        evaluate.write(sweep_dir / slot, stem,
                       evaluate.select_replicas(done[overrides], sorted(replicas)))
        print(f"wrote {sweep_dir / slot / stem}.json ({' '.join(overrides)})")


def main(sweep_dir: str = "runs/mla/sweep_mfeat") -> int:
    """Evaluates every run of the sweep whose slots need a test-time evaluation."""
    directory = pathlib.Path(sweep_dir)
    for run_dir, slots in _slots_by_run(directory).items():
        evaluate_run(directory, run_dir, slots)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:2]))
