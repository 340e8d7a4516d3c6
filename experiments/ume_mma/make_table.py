"""Prints the tables of experiments/ume_mma/README.md from the runs' eval.json files.

Usage: python experiments/ume_mma/make_table.py [RUNS_DIR]   (default runs/ume_mma; when it holds
no run, the committed copy experiments/ume_mma/results, written by ``mmjax report runs/ume_mma
--export experiments/ume_mma/results``)

Columns follow the paper: Miss-V = only the second modality present (AV-MNIST: audio alone),
Miss-A = only the first (image alone), Complete = both; Avg = the mean of the three. Cells are
test accuracy in %, mean ± std over the seed replicas (``mmjax.report``). A run that has not
finished is left out.
"""

import pathlib
import sys

import numpy as np

from mmjax import report

# Column -> the evaluation subset it reads, per group (first modality plays "visual").
COLUMNS = {
    "avmnist": {"Miss-V": "audio", "Miss-A": "image", "Complete": "image+audio"},
    "mfeat": {"Miss-V": "kar", "Miss-A": "fac", "Complete": "fac+kar"},
}
HERE = pathlib.Path(__file__).resolve().parent


def _cell(result, subset) -> tuple[float, str]:
    """(mean accuracy %, its ``mean ± std`` cell) of one test subset."""
    cell = report.stats(result, subset, "accuracy")
    return 100 * cell.mean, report.fmt(cell, scale=100, digits=2)


def _load(group: pathlib.Path, name: str) -> dict | None:
    """The evaluation of run ``name``: its folder, or its seeds' folder in a sweep
    (``name/train.seed-0..4``, mfeat's Table 1); None if it has not finished."""
    return report.load_result(report.seed_slot(group / name))


# Table 1's rows; the phase-1-only control is ours (mfeat's sweep runs it), not the paper's.
TABLE1 = (("naive", "naive"), ("multi_task", "multi_task"),
          ("missing_detection", "missing_detection"), ("ume_mma", "ume_mma"),
          ("ume_mma_phase1_only", "ume_mma, phase 1 only (1500 uni-modal steps, no phase 2)"))
# Claims tested per seed on Avg, one-sided (a > b): phase 2's benefit, and the paper's order.
CLAIMS = (("ume_mma", "ume_mma_phase1_only"), ("ume_mma", "missing_detection"),
          ("ume_mma", "multi_task"), ("ume_mma", "naive"))


def table1(group: pathlib.Path, kind: str) -> str:
    """Table 1: the unimodal models and each method, Miss-V / Miss-A / Complete / Avg."""
    cols = COLUMNS[kind]
    rows = ["| method | Miss-V | Miss-A | Complete | Avg |", "|---|---|---|---|---|"]
    uni = [_load(group, f"lower_bound_{m}") for m in ("audio", "image")]
    if all(uni):
        a, b = _cell(uni[0], cols["Miss-V"])[1], _cell(uni[1], cols["Miss-A"])[1]
        rows.append(f"| uni-modal models (lower_bound) | {a} | {b} | / | / |")
    for name, label in TABLE1:
        result = _load(group, name)
        if result is None:
            continue
        cells = [_cell(result, cols[c]) for c in ("Miss-V", "Miss-A", "Complete")]
        avg = sum(c[0] for c in cells) / 3
        rows.append(f"| {label} | " + " | ".join(c[1] for c in cells) + f" | {avg:.2f} |")
    return "\n".join(rows)


def _avg_per_seed(result: dict, cols: dict) -> report.Stats:
    """Avg (the mean of Miss-V, Miss-A, Complete) of each seed, as a ``report.Stats``."""
    cells = [report.stats(result, cols[c], "accuracy") for c in ("Miss-V", "Miss-A", "Complete")]
    values = tuple(float(v) for v in np.mean([c.values for c in cells], axis=0))
    return report.Stats(float(np.mean(values)), float(np.std(values, ddof=1)), len(values),
                        values, cells[0].seeds)


def table1_paired(group: pathlib.Path, kind: str) -> str:
    """Paired t-tests across seeds of Table 1's Avg (``report.paired_test``, one-sided a > b)."""
    rows = ["| claim | mean difference (points) | p (one-sided) | seeds | met at p < 0.05 |",
            "|---|---|---|---|---|"]
    for a, b in CLAIMS:
        ra, rb = _load(group, a), _load(group, b)
        if ra is None or rb is None:
            continue
        test = report.paired_test(_avg_per_seed(ra, COLUMNS[kind]),
                                  _avg_per_seed(rb, COLUMNS[kind]), alternative="greater")
        rows.append(f"| {a} > {b} | {100 * test.diff:+.2f} | {test.p:.3g} | {test.n} | "
                    f"{'yes' if test.p < 0.05 else 'no'} |")
    return "\n".join(rows)


def table4(runs: pathlib.Path) -> str:
    """Table 4: the ablations, Miss-V / Miss-A."""
    cols = COLUMNS["avmnist"]
    rows = ["| method | Miss-V / Miss-A |", "|---|---|"]
    for label, run in (("Only Missing-Aug", runs / "t4_avmnist/only_missing_aug"),
                       ("Only Pre-Training", runs / "t4_avmnist/only_pretraining"),
                       ("UME-MMA (Freeze Encs)", runs / "t4_avmnist/freeze_encoders"),
                       ("UME-MMA", runs / "t1_avmnist/ume_mma")):
        result = report.load_result(run)
        if result is not None:
            rows.append(f"| {label} | {_cell(result, cols['Miss-V'])[1]} / "
                        f"{_cell(result, cols['Miss-A'])[1]} |")
    return "\n".join(rows)


def table5(runs: pathlib.Path) -> str:
    """Table 5: each test pattern as the modality drop probability varies."""
    cols = COLUMNS["avmnist"]
    sources = {"0": runs / "t4_avmnist/only_pretraining", "0.3": runs / "t1_avmnist/ume_mma"}
    sources.update({p: runs / f"t5_avmnist/p{p}" for p in ("0.1", "0.2", "0.4", "0.5")})
    order = ("0", "0.1", "0.2", "0.3", "0.4", "0.5")
    results = {p: report.load_result(sources[p]) for p in order}
    done = [p for p in order if results[p] is not None]
    if not done:
        return "(no runs yet)"
    rows = ["| drop prob | " + " | ".join(done) + " |", "|---|" + "---|" * len(done)]
    for label, col in (("Video (image) missing", "Miss-V"), ("Audio missing", "Miss-A"),
                       ("Complete", "Complete")):
        rows.append(f"| {label} | " + " | ".join(_cell(results[p], cols[col])[1] for p in done)
                    + " |")
    return "\n".join(rows)


def table3(runs: pathlib.Path) -> str:
    """Table 3 protocol: complete-test accuracy with audio on a fraction of training samples."""
    cols = COLUMNS["avmnist"]
    rows = ["| method | audio on 10% | 20% | 100% |", "|---|---|---|---|"]
    for name in ("naive", "ume_mma"):
        cells = []
        for f in ("0.1", "0.2", "1.0"):
            # Audio on 100% of the samples is complete training data: Table 1's run (same seeds).
            result = report.load_result(runs / (f"t1_avmnist/{name}" if f == "1.0" else
                                   f"t3_avmnist/paired{f}/{name}"))
            cells.append(_cell(result, cols["Complete"])[1] if result else "-")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    image = report.load_result(runs / "t1_avmnist/lower_bound_image")
    if image is not None:
        cell = _cell(image, cols["Miss-A"])[1]
        rows.append(f"| image only (lower_bound, complete images) | {cell} | {cell} | {cell} |")
    return "\n".join(rows)


def main(runs: str = "runs/ume_mma") -> None:
    """Prints results.md: Tables 1, 4, 5 and 3."""
    runs = report.runs_or_results(runs, "runs/ume_mma", HERE / "results")
    print("Test accuracy (%), mean ± std over the seeds (AV-MNIST-offline 3, mfeat 5). Generated "
          "by experiments/ume_mma/make_table.py.\n")
    print("### Table 1, AV-MNIST-offline (complete training data)\n")
    print(table1(runs / "t1_avmnist", "avmnist") + "\n")
    print("### Table 1, UCI mfeat views fac (\"V\") and kar (\"A\")\n")
    print(table1(runs / "t1_mfeat", "mfeat") + "\n")
    print("Paired tests across seeds, Avg of Miss-V, Miss-A and Complete:\n")
    print(table1_paired(runs / "t1_mfeat", "mfeat") + "\n")
    print("### Table 4, AV-MNIST-offline ablations (Miss-V / Miss-A)\n")
    print(table4(runs) + "\n")
    print("### Table 5, AV-MNIST-offline drop probability\n")
    print(table5(runs) + "\n")
    print("### Table 3 protocol, AV-MNIST-offline: audio on a fraction of training samples, "
          "complete test set\n")
    print(table3(runs) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:2])
