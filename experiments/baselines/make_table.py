"""Prints the markdown tables of experiments/baselines/README.md from the runs' eval.json files.

Usage: python experiments/baselines/make_table.py RUNS_DIR
"""

import json
import pathlib
import sys

ORDER = ("lower_bound", "lower_bound_audio", "upper_bound", "concat", "sum", "late",
         "augmentation", "multi_task")


def table(group: pathlib.Path, columns: tuple[str, ...] | None) -> str:
    rows = []
    for name in ORDER:
        file = group / name / "eval.json"
        if not file.exists():
            continue
        result = json.loads(file.read_text())
        columns = columns or tuple(result["subsets"])
        cells = [f"{result['subsets'][c]['accuracy']:.3f} ± {result['std']['subsets'][c]['accuracy']:.3f}"
                 for c in columns]
        avg = f"{result['average']['accuracy']:.3f} ± {result['std']['average']['accuracy']:.3f}"
        rows.append(f"| {name} | " + " | ".join(cells) + f" | {avg} |")
    header = "| method | " + " | ".join(columns) + " | average over all subsets |"
    return "\n".join([header, "|" + "---|" * (len(columns) + 2), *rows])


def main(runs: str) -> None:
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
    main(sys.argv[1])
