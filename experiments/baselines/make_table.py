"""Prints the markdown tables of experiments/baselines/README.md from the runs' eval.json files.

Usage: python experiments/baselines/make_table.py RUNS_DIR [METHOD ...]

METHODs (default ``ORDER``) pick the rows. A run without an eval.json (not finished) is marked as
such instead of failing; a group with no finished run says so.
"""

import json
import pathlib
import sys

ORDER = ("lower_bound", "lower_bound_audio", "upper_bound", "concat", "sum", "late",
         "augmentation", "multi_task")


def table(group: pathlib.Path, columns: tuple[str, ...] | None) -> str:
    """The markdown table of the runs in ``group``, rows in ``ORDER``; ``None`` columns = the
    subsets of the first finished run. Unfinished runs (a folder, no eval.json) get a row saying
    so; a group without any finished run gives a one-line note instead of a table."""
    rows, unfinished = [], []
    for name in ORDER:
        file = group / name / "eval.json"
        if not file.exists():
            if (group / name).exists():
                unfinished.append(name)
            continue
        result = json.loads(file.read_text())
        columns = columns or tuple(result["subsets"])
        cells = [f"{result['subsets'][c]['accuracy']:.3f} ± {result['std']['subsets'][c]['accuracy']:.3f}"
                 for c in columns]
        avg = f"{result['average']['accuracy']:.3f} ± {result['std']['average']['accuracy']:.3f}"
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {avg} |")
    if columns is None:
        names = ", ".join(unfinished) or "none"
        return f"No finished run (no eval.json) in {group}; unfinished: {names}."
    rows += [f"| {name} | " + " | ".join("not finished" for _ in columns) + " | not finished |"
             for name in unfinished]
    header = "| method | " + " | ".join(columns) + " | average over all subsets |"
    return "\n".join([header, "|" + "---|" * (len(columns) + 2), *rows])


def main(runs: str, methods: tuple[str, ...] = ()) -> None:
    """Prints one table per run group found under ``runs`` (rows: ``methods`` or ``ORDER``)."""
    global ORDER
    if methods:
        ORDER = tuple(methods)
    runs = pathlib.Path(runs)
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
    main(sys.argv[1], tuple(sys.argv[2:]))
