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
    return report.Stats.of(np.mean([c.values for c in cells], axis=0), cells[0].seeds)


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


# Tables 3-5: AV-MNIST-offline, 5 seeds at Table 1's equal budget (sweeps/t345_avmnist.txt);
# the full method (p = 0.3, complete data) and the image-only model are Table 1's sweep points.
T345, T1 = "t345_avmnist5", "t1_avmnist5"


def _stats(runs: pathlib.Path, point: str, column: str) -> report.Stats | None:
    """AV-MNIST-offline test accuracy of sweep point ``point`` (``group/name``) on ``column``."""
    return report.point_stats(runs / point, COLUMNS["avmnist"][column], "accuracy")


def _test(a: report.Stats | None, b: report.Stats | None) -> str:
    """``a − b`` in points and its one-sided paired p (a > b); "–" when either is missing."""
    if a is None or b is None:
        return "–"
    test = report.paired_test(a, b, "greater")
    return f"{100 * test.diff:+.2f} (p = {report.p_text(test)})"


def _render(head: str, cells: dict[str, dict], base: str | None = None) -> str:
    """``cells`` (row label -> column label -> ``report.Stats`` or None) as a table, and, given
    ``base`` (a row label), a second table: the paired test of ``base`` over every other row."""
    if all(v is None for row in cells.values() for v in row.values()):
        return "(no runs yet)"
    cols = list(next(iter(cells.values())))
    out = [f"| {head} | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    out += [f"| {r} | " + " | ".join(_fmt(v) if v else "–" for v in row.values()) + " |"
            for r, row in cells.items()]
    if base is not None:
        out += ["", f"| paired test: {base} > | " + " | ".join(cols) + " |",
                "|---|" + "---|" * len(cols)]
        out += [f"| {r} | " + " | ".join(_test(cells[base][c], v) for c, v in row.items())
                + " |" for r, row in cells.items() if r != base]
    return "\n".join(out)


def table4(runs: pathlib.Path) -> str:
    """Table 4: the ablations, and UME-MMA > each of them per test pattern."""
    rows = {"Only Missing-Aug": f"{T345}/only_missing_aug",
            "Only Pre-Training": f"{T345}/only_pretraining",
            "UME-MMA (Freeze Encs)": f"{T345}/freeze_encoders", "UME-MMA": f"{T1}/ume_mma"}
    cells = {r: {c: _stats(runs, point, c) for c in ("Miss-V", "Miss-A", "Complete")}
             for r, point in rows.items()}
    return _render("method", cells, base="UME-MMA")


def table5(runs: pathlib.Path) -> str:
    """Table 5: each test pattern as the drop probability varies (a column per p), and each
    p > 0 against p = 0 (no augmentation: Table 4's Only Pre-Training)."""
    points = {"0": f"{T345}/only_pretraining", "0.3": f"{T1}/ume_mma"}
    points.update({p: f"{T345}/p{p}" for p in ("0.1", "0.2", "0.4", "0.5")})
    order = ("0", "0.1", "0.2", "0.3", "0.4", "0.5")
    # The paper's rows are the test patterns, so the tests compare columns, not rows.
    patterns = (("Video (image) missing", "Miss-V"), ("Audio missing", "Miss-A"),
                ("Complete", "Complete"))
    cells = {label: {p: _stats(runs, points[p], c) for p in order} for label, c in patterns}
    table = _render("drop prob", cells)
    if table == "(no runs yet)":
        return table
    out = [table, "", "| paired test: p > 0 | " + " | ".join(order[1:]) + " |",
           "|---|" + "---|" * (len(order) - 1)]
    out += [f"| {label} | " + " | ".join(_test(row[p], row["0"]) for p in order[1:]) + " |"
            for label, row in cells.items()]
    return "\n".join(out)


def table3(runs: pathlib.Path) -> str:
    """Table 3 protocol: complete-test accuracy with the audio on a fraction of the training
    samples (100 % is Table 1's complete training), UME-MMA > naive and > the image alone."""
    fractions = {"audio on 10%": "paired0.1_", "20%": "paired0.2_", "100%": None}
    cells = {name: {f: _stats(runs, f"{T345}/{prefix}{name}" if prefix else f"{T1}/{name}",
                              "Complete") for f, prefix in fractions.items()}
             for name in ("naive", "ume_mma")}
    image = _stats(runs, f"{T1}/lower_bound_image", "Miss-A")
    cells["image only (lower_bound, complete images)"] = dict.fromkeys(fractions, image)
    return _render("method", cells, base="ume_mma")


def main(runs: str = "runs/ume_mma") -> None:
    """Prints results.md: Table 1, Figure 3, Tables 4, 5 and 3."""
    runs = report.runs_or_results(runs, "runs/ume_mma", HERE / "results")
    print("Test accuracy (%), mean ± std over 5 seeds. Generated by "
          "experiments/ume_mma/make_table.py.\n")
    print("### Table 1, AV-MNIST-offline, 5 seeds at an equal budget (900 x 64 samples each; "
          "sweeps/t1_avmnist.txt)\n")
    print(table1(runs / T1, "avmnist") + "\n")
    print("Paired tests across seeds, Avg of Miss-V, Miss-A and Complete:\n")
    print(table1_paired(runs / T1, "avmnist") + "\n")
    print("### Table 1, UCI mfeat views fac (\"V\") and kar (\"A\")\n")
    print(table1(runs / "t1_mfeat", "mfeat") + "\n")
    print("Paired tests across seeds, Avg of Miss-V, Miss-A and Complete:\n")
    print(table1_paired(runs / "t1_mfeat", "mfeat") + "\n")
    for group, kind, title in ((T1, "avmnist", "AV-MNIST-offline"),
                               ("t1_mfeat", "mfeat", "UCI mfeat (fac, kar)")):
        print(f"### Figure 3 protocol, {title}: complete training (Table 1's runs), the second "
              "modality on eta % of the test samples\n")
        print(figure3(runs / group, kind) + "\n")
    print("### Table 4, AV-MNIST-offline ablations, 5 seeds at an equal budget "
          "(sweeps/t345_avmnist.txt)\n")
    print(table4(runs) + "\n")
    print("### Table 5, AV-MNIST-offline drop probability, 5 seeds\n")
    print(table5(runs) + "\n")
    print("### Table 3 protocol, AV-MNIST-offline: audio on a fraction of training samples, "
          "complete test set, 5 seeds\n")
    print(table3(runs) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:2])
