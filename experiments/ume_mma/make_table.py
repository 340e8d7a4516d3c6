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


def _cells(group: pathlib.Path, name: str, cols: dict) -> dict[str, report.Stats] | None:
    """Column -> the test accuracy of run ``name`` (its folder, or a sweep point's seed
    folders, ``report.point_stats``); None if it has not finished."""
    cells = {c: report.point_stats(group / name, subset, "accuracy")
             for c, subset in cols.items()}
    return None if None in cells.values() else cells


def _fmt(cell: report.Stats) -> str:
    return report.fmt(cell, scale=100, digits=2)


# Table 1's rows; the phase-1-only control is ours (mfeat's sweep runs it), not the paper's.
TABLE1 = (("naive", "naive"), ("multi_task", "multi_task"),
          ("multi_task_unaware", "multi_task, mask-unaware (zero input, as the paper's)"),
          ("missing_detection", "missing_detection"), ("ume_mma", "ume_mma"),
          ("ume_mma_phase1_only", "ume_mma, phase 1 only (uni-modal steps for UME-MMA's whole "
           "budget, no phase 2)"))
# Claims tested per seed on Avg, one-sided (a > b): phase 2's benefit, and the paper's order;
# then two-sided: phase 2's effect either way (AV-MNIST-offline's control is ahead of UME-MMA),
# and whether telling the multi-task model the mask matters.
CLAIMS = (("ume_mma", "ume_mma_phase1_only", "greater"),
          ("ume_mma", "missing_detection", "greater"), ("ume_mma", "multi_task", "greater"),
          ("ume_mma", "multi_task_unaware", "greater"),
          ("ume_mma", "naive", "greater"), ("ume_mma", "ume_mma_phase1_only", "two-sided"),
          ("multi_task", "multi_task_unaware", "two-sided"))


def table1(group: pathlib.Path, kind: str) -> str:
    """Table 1: the unimodal models and each method, Miss-V / Miss-A / Complete / Avg."""
    cols = COLUMNS[kind]
    rows = ["| method | Miss-V | Miss-A | Complete | Avg |", "|---|---|---|---|---|"]
    audio, image = (report.point_stats(group / f"lower_bound_{m}", cols[c], "accuracy")
                    for m, c in (("audio", "Miss-V"), ("image", "Miss-A")))
    if audio and image:
        rows.append(f"| uni-modal models (lower_bound) | {_fmt(audio)} | {_fmt(image)} | / | / |")
    for name, label in TABLE1:
        cells = _cells(group, name, cols)
        if cells is None:
            continue
        avg = 100 * np.mean([c.mean for c in cells.values()])
        rows.append(f"| {label} | " + " | ".join(map(_fmt, cells.values())) + f" | {avg:.2f} |")
    return "\n".join(rows)


def _avg_per_seed(cells: dict[str, report.Stats]) -> report.Stats:
    """Avg (the mean of Miss-V, Miss-A, Complete) of each seed, as a ``report.Stats``."""
    cells = list(cells.values())
    values = tuple(float(v) for v in np.mean([c.values for c in cells], axis=0))
    return report.Stats(float(np.mean(values)), float(np.std(values, ddof=1)), len(values),
                        values, cells[0].seeds)


def table1_paired(group: pathlib.Path, kind: str) -> str:
    """Paired t-tests across seeds of Table 1's Avg (``report.paired_test``: a > b, or a != b)."""
    rows = ["| claim | mean difference (points) | p | seeds | met at p < 0.05 |",
            "|---|---|---|---|---|"]
    for a, b, side in CLAIMS:
        ca, cb = _cells(group, a, COLUMNS[kind]), _cells(group, b, COLUMNS[kind])
        if ca is None or cb is None:
            continue
        test = report.paired_test(_avg_per_seed(ca), _avg_per_seed(cb), alternative=side)
        relation = ">" if side == "greater" else "≠ (two-sided)"
        rows.append(f"| {a} {relation} {b} | {100 * test.diff:+.2f} | {test.p:.3g} | {test.n} | "
                    f"{'yes' if test.p < 0.05 else 'no'} |")
    return "\n".join(rows)


# Figure 3 (after Ma et al. 2022): complete training, the first modality on every test sample
# and the second on a fraction eta (``mmjax eval --protocol paired-fraction`` of Table 1's
# sweeps; the paper: 100 % image, eta % text). Its claim, per eta, one-sided: UME-MMA > b.
FIG3_FILE = "eval-paired-fraction-test"
FIG3_ROWS = ("naive", "multi_task", "multi_task_unaware", "missing_detection", "ume_mma",
             "ume_mma_phase1_only")
FIG3_CLAIMS = ("multi_task", "multi_task_unaware", "naive")


def _fig3_cells(group: pathlib.Path, name: str, kind: str) -> dict[str, report.Stats]:
    """eta (a string, as the evaluation names it) -> the test accuracy of sweep point ``name``
    with the second modality on eta of the test samples; empty before it was evaluated."""
    first = report.load_result(report.seed_slot(group / name), FIG3_FILE)
    if first is None:
        return {}
    second = COLUMNS[kind]["Miss-V"]  # the second modality's name: "audio" / "kar"
    etas = [c.split("=")[1] for c in first["subsets"] if c.startswith(f"{second} eta=")]
    cells = {eta: report.point_stats(group / name, f"{second} eta={eta}", "accuracy",
                                     FIG3_FILE) for eta in etas}
    return {} if None in cells.values() else cells


def figure3(group: pathlib.Path, kind: str) -> str:
    """Figure 3 as a table: a row per method, a column per eta, and the paired tests."""
    cells = {name: _fig3_cells(group, name, kind) for name in FIG3_ROWS}
    etas = next((list(c) for c in cells.values() if c), None)
    if etas is None:
        return "(no runs yet)"
    second = COLUMNS[kind]["Miss-V"]
    rows = ["| method | " + " | ".join(f"{second} on {float(e) * 100:g}%" for e in etas) + " |",
            "|---|" + "---|" * len(etas)]
    rows += [f"| {name} | " + " | ".join(_fmt(c[e]) for e in etas) + " |"
             for name, c in cells.items() if c]
    rows += ["", "| claim | " + " | ".join(f"{float(e) * 100:g}%" for e in etas) + " |",
             "|---|" + "---|" * len(etas)]
    for b in FIG3_CLAIMS:
        if cells["ume_mma"] and cells[b]:
            tests = [report.paired_test(cells["ume_mma"][e], cells[b][e], "greater")
                     for e in etas]
            rows.append(f"| ume_mma > {b}: difference (points), one-sided p | "
                        + " | ".join(f"{100 * t.diff:+.2f}, p = {report.p_text(t)}"
                                     for t in tests) + " |")
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
    """Prints results.md: Table 1, Figure 3, Tables 4, 5 and 3."""
    runs = report.runs_or_results(runs, "runs/ume_mma", HERE / "results")
    print("Test accuracy (%), mean ± std over the seeds (AV-MNIST-offline 3, its equal-budget "
          "sweep and mfeat 5). Generated by experiments/ume_mma/make_table.py.\n")
    print("### Table 1, AV-MNIST-offline (complete training data)\n")
    print(table1(runs / "t1_avmnist", "avmnist") + "\n")
    print("### Table 1, AV-MNIST-offline, 5 seeds at an equal budget (900 x 64 samples each; "
          "sweeps/t1_avmnist.txt)\n")
    print(table1(runs / "t1_avmnist5", "avmnist") + "\n")
    print("Paired tests across seeds, Avg of Miss-V, Miss-A and Complete:\n")
    print(table1_paired(runs / "t1_avmnist5", "avmnist") + "\n")
    print("### Table 1, UCI mfeat views fac (\"V\") and kar (\"A\")\n")
    print(table1(runs / "t1_mfeat", "mfeat") + "\n")
    print("Paired tests across seeds, Avg of Miss-V, Miss-A and Complete:\n")
    print(table1_paired(runs / "t1_mfeat", "mfeat") + "\n")
    for group, kind, title in (("t1_avmnist5", "avmnist", "AV-MNIST-offline"),
                               ("t1_mfeat", "mfeat", "UCI mfeat (fac, kar)")):
        print(f"### Figure 3 protocol, {title}: complete training (Table 1's runs), the second "
              "modality on eta % of the test samples\n")
        print(figure3(runs / group, kind) + "\n")
    print("### Table 4, AV-MNIST-offline ablations (Miss-V / Miss-A)\n")
    print(table4(runs) + "\n")
    print("### Table 5, AV-MNIST-offline drop probability\n")
    print(table5(runs) + "\n")
    print("### Table 3 protocol, AV-MNIST-offline: audio on a fraction of training samples, "
          "complete test set\n")
    print(table3(runs) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:2])
