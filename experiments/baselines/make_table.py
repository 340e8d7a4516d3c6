"""Prints the markdown tables of experiments/baselines/README.md from the runs (``mmjax.report``).

Usage: python experiments/baselines/make_table.py [RUNS_DIR] [METHOD ...]

RUNS_DIR defaults to runs/baselines; a RUNS_DIR under runs/ that holds no run is read from its
committed copy under experiments/baselines/results/ (``runs/baselines`` -> ``results/baselines``,
written by ``mmjax report runs/baselines --export experiments/baselines/results/baselines``).
METHODs (default ``ORDER``) pick the rows. A run without an eval.json (not finished) is marked as
such instead of failing; a group with no finished run says so.
"""

import pathlib
import sys

from mmjax import report

HERE = pathlib.Path(__file__).resolve().parent
ORDER = ("lower_bound", "lower_bound_audio", "upper_bound", "concat", "sum", "late",
         "augmentation", "multi_task")


def table(group: pathlib.Path, columns: tuple[str, ...] | None) -> str:
    """The markdown table of the runs in ``group``, rows in ``ORDER``; ``None`` columns = the
    subsets of the first finished run. Unfinished runs (a folder, no eval.json) get a row saying
    so; a group without any finished run gives a one-line note instead of a table."""
    t = report.run_table({name: group / name for name in ORDER},
                         None if columns is None else (*columns, report.AVERAGE))
    unfinished = [name for name in ORDER if name not in t.rows and (group / name).exists()]
    if not t.rows:
        names = ", ".join(unfinished) or "none"
        return f"No finished run (no eval.json) in {group}; unfinished: {names}."
    text = report.markdown(t, digits=3, row_label="method",
                           col_labels=[*t.cols[:-1], "average over all subsets"])
    return "\n".join([text, *(f"| {name} | " + " | ".join("not finished" for _ in t.cols) + " |"
                              for name in unfinished)])


def main(runs: str = "runs/baselines", methods: tuple[str, ...] = ()) -> None:
    """Prints one table per run group found under ``runs`` (rows: ``methods`` or ``ORDER``)."""
    global ORDER
    if methods:
        ORDER = tuple(methods)
    runs = report.runs_or_results(runs, "runs", HERE / "results")
    groups = {
        "avmnist": ("AV-MNIST-offline, complete training data", None),
        "avmnist_missing30": ("AV-MNIST-offline, 30% image and 30% audio missing in training", None),
        "mfeat": ("UCI mfeat, complete training data (all six views; single views shown)",
                  ("fac+fou+kar+mor+pix+zer", "fac", "fou", "kar", "mor", "pix", "zer")),
    }
    for group, (title, columns) in groups.items():
        if (runs / group).exists():
            print(f"### {title}\n\nTest accuracy, mean ± std over 3 seeds.\n")
            print(table(runs / group, columns) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/baselines", tuple(sys.argv[2:]))
