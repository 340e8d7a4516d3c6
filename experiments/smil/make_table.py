"""Prints the tables of experiments/smil/README.md from the runs' eval.json files (and the plot).

Usage: python experiments/smil/make_table.py RUNS_DIR [PLOT.png] [TITLE]

RUNS_DIR is runs/smil/DATASET[/stepsN] (experiments/smil/run.sh's layout); when it holds no run,
its committed copy under experiments/smil/results/ is read (``runs/smil/X`` -> ``results/X``,
written by ``mmjax report runs/smil --export experiments/smil/results``).

Cells are test accuracy in %, mean ± std over the seed replicas (``mmjax.report``), for the two
test patterns of SMIL's Figure 4: modality 1 only ("image": modality 2 missing for every test
sample, reconstruction on) and both modalities ("image+audio": complete test samples,
reconstruction off). On mfeat, modality 1 and 2 are the two views of the run. A run that has not
finished is left out.
"""

import pathlib
import sys

from mmjax import report

HERE = pathlib.Path(__file__).resolve().parent
ETAS = ("0.05", "0.1", "0.2", "0.5", "1.0")
METHODS = (("lower_bound", "Lower bound (modality 1 only)"), ("ae_imputation", "AE imputation"),
           ("smil", "SMIL"), ("upper_bound", "Upper bound (100% both)"))
ABLATIONS = (("wo_kmeans", "SMIL w/o K-means"), ("wo_regularization", "SMIL w/o Regularization"),
             ("fixed_gaussian", "SMIL w/ Fixed Gaussian"), ("deterministic", "SMIL w/ Deterministic"),
             ("released", "SMIL, released-code switches"),
             ("released_reconstruction", "SMIL, released reconstruction only"),
             ("smil", "SMIL (Full)"))


def _cell(run: pathlib.Path, subset: str) -> report.Stats | None:
    """``subset``: "one" = modality 1 alone (reconstruction on), "both" = complete; None before
    the run finished."""
    result = report.load_result(run)
    if result is None:
        return None
    both = next(k for k in result["subsets"] if "+" in k)
    return report.stats(result, both.split("+")[0] if subset == "one" else both, "accuracy")


def _run(runs: pathlib.Path, method: str, eta: str) -> pathlib.Path:
    # The bounds do not depend on eta (100% image; 100% image + 100% audio).
    return runs / method if method in ("lower_bound", "upper_bound") else runs / f"eta{eta}" / method


FIG4 = {"one": "Figure 4 (left): test with modality 1 only",
        "both": "Figure 4 (right): test with both modalities"}
TABLE3 = "Table 3 ablations (columns: test modality 1 only / both)"


def _fmt(cell: report.Stats | None) -> str:
    return report.fmt(cell, scale=100, digits=2, missing="")


def figure4(runs: pathlib.Path, subset: str) -> tuple[str, dict]:
    """Figure 4 (one panel) as a table, and its curves {label: [(eta %, mean %, std %)]}."""
    columns = [f"eta = {float(e) * 100:g}%" for e in ETAS]
    rows = ["| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(ETAS)]
    curves = {}
    for method, label in METHODS:
        cells = [_cell(_run(runs, method, eta), subset) for eta in ETAS]
        if any(cells):
            rows.append(f"| {label} | " + " | ".join(map(_fmt, cells)) + " |")
            curves[label] = [(float(eta) * 100, 100 * c.mean, 100 * c.std)
                             for eta, c in zip(ETAS, cells) if c]
    return "\n".join(rows), curves


def table3(runs: pathlib.Path) -> str:
    """Table 3's ablations at eta = 10% and 20%, both test patterns."""
    cases = [(eta, subset, f"{subset}, eta = {float(eta) * 100:g}%")
             for eta in ("0.1", "0.2") for subset in ("one", "both")]
    rows = ["| method | " + " | ".join(column for *_, column in cases) + " |",
            "|---|" + "---|" * len(cases)]
    for name, label in ABLATIONS:
        cells = [_cell(runs / f"eta{eta}" / name, subset) for eta, subset, _ in cases]
        if any(cells):
            rows.append(f"| {label} | " + " | ".join(map(_fmt, cells)) + " |")
    return "\n".join(rows)


def plot(curves_by_panel: dict, path: str, title: str) -> None:
    """Figure 4: accuracy against eta, one panel per test pattern; the bounds as lines."""
    plt = report.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (panel, curves) in zip(axes, curves_by_panel.items()):
        for label, curve in curves.items():
            if not curve:
                continue
            x, y, e = zip(*curve)
            if len(x) == 1 or label.startswith(("Lower", "Upper")):
                ax.axhline(y[0], ls="--", lw=1, label=label,
                           color="gray" if label.startswith("Lower") else "black")
            else:
                ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_xticks([5, 10, 20, 50, 100], ["5", "10", "20", "50", "100"])
        ax.set_xlabel("modality-2 ratio eta (%)")
        ax.set_title(panel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    """Prints the three tables; draws Figure 4 when a PNG path is given."""
    args = sys.argv[1:]
    runs = pathlib.Path(args[0])
    runs = report.runs_or_results(runs, "runs/smil", HERE / "results")
    image, c1 = figure4(runs, "one")
    both, c2 = figure4(runs, "both")
    print(f"#### {FIG4['one']}\n\n{image}\n")
    print(f"#### {FIG4['both']}\n\n{both}\n")
    print(f"#### {TABLE3}\n\n{table3(runs)}")
    if len(args) > 1:
        title = args[2] if len(args) > 2 else "100% modality 1 + eta% modality 2 (3 seeds)"
        plot({"test: modality 1 only": c1, "test: both modalities": c2}, args[1], title)


if __name__ == "__main__":
    main()
