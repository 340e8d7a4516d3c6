"""Prints the tables of experiments/smil/README.md from the runs' eval.json files (and the plot).

Usage: python experiments/smil/make_table.py RUNS_DIR [PLOT.png] [TITLE]

RUNS_DIR is a 5-seed sweep (``mmjax sweep`` over sweeps/X.txt into runs/smil/X): mfeat's
(sweeps/mfeat.txt: Figure 4 and Table 3's ablations, with the paired tests of the paper's claims),
the one of SMIL's own data regime, runs/smil/regime_avmnist (Figure 4), or its Table 3 sweep,
runs/smil/table3_regime_avmnist (the ablations, paired by seed with the regime sweep's full SMIL,
read from the folder beside it); or runs/smil/avmnist_offline[/stepsN] (run.sh's layout of the
default regime, 3 seeds per run, no paired tests). When it holds no run, its
committed copy under experiments/smil/results/ is read (``runs/smil/X`` -> ``results/X``, written
by ``mmjax report runs/smil/X --export experiments/smil/results/X``).

Cells are test accuracy in %, mean ± std over the seed replicas (``mmjax.report``), for the two
test patterns of SMIL's Figure 4: modality 1 only ("image": modality 2 missing for every test
sample, reconstruction on) and both modalities ("image+audio": complete test samples,
reconstruction off). On mfeat, modality 1 and 2 are the two views of the run. A run that has not
finished is left out.
"""

import functools
import json
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
        etas = [x for curve in curves.values() if len(curve) > 1 for x, *_ in curve]
        ticks = [t for t in (5, 10, 20, 50, 100) if t <= max(etas, default=100)]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xticks([], minor=True)  # no log-axis minor labels (3x10^1, ...) beside them
        ax.set_xlabel("modality-2 ratio eta (%)")
        ax.set_title(panel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[1].legend(fontsize=8, loc="lower right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# ----------------------------------------------------------------------------------------------
# SMIL's own data regime (sweeps/regime_avmnist.txt): one sweep, a point per line and eta.
# ----------------------------------------------------------------------------------------------

REGIME_LINES = (("lower_bound", "Lower bound ({one} only)"), ("ae", "AE imputation"),
                ("smil", "SMIL"), ("upper_bound", "Upper bound (100% both)"))
ONE, BOTH = "one", "both"  # the test patterns: modality 1 alone (Figure 4 left) / complete


def _etas(sweep: pathlib.Path) -> list[str]:
    """The eta values of the sweep's SMIL points (``smil_eta0.2``, ...), ascending."""
    return sorted({p.name.split("_eta")[1] for p in sweep.glob("smil_eta*")}, key=float)


@functools.cache
def _conditions(sweep: pathlib.Path) -> dict[str, str]:
    """The evaluation's names of the two test patterns in ``sweep`` (``{"one": "image", "both":
    "image+audio"}`` on AV-MNIST, ``fou`` / ``fou+kar`` on mfeat), from any finished run."""
    for path in sorted(sweep.rglob("eval.json")):
        both = next(k for k in json.loads(path.read_text())["subsets"] if "+" in k)
        return {ONE: both.split("+")[0], BOTH: both}
    return {ONE: "image", BOTH: "image+audio"}


def _point(sweep: pathlib.Path, line: str, eta: str) -> pathlib.Path:
    # The bounds do not depend on eta; SMIL and the AE have a point per eta (smil_eta0.2, ...).
    return sweep / line if line.endswith("_bound") else sweep / f"{line}_eta{eta}"


def _acc(sweep: pathlib.Path, line: str, eta: str, pattern: str) -> report.Stats | None:
    return report.point_stats(_point(sweep, line, eta), _conditions(sweep)[pattern], "accuracy")


def regime_figure4(sweep: pathlib.Path, subset: str) -> tuple[str, dict]:
    """One Figure 4 panel (``subset``: ONE or BOTH) of a sweep as a table, and its curves (as
    ``figure4``)."""
    etas = _etas(sweep)
    columns = [f"eta = {float(e) * 100:g}%" for e in etas]
    rows = ["| method | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    curves = {}
    for line, label in REGIME_LINES:
        label = label.format(one=_conditions(sweep)[ONE])
        cells = [_acc(sweep, line, eta, subset) for eta in etas]
        if any(cells):
            rows.append(f"| {label} | " + " | ".join(map(_fmt, cells)) + " |")
            curves[label] = [(float(eta) * 100, 100 * c.mean, 100 * c.std)
                             for eta, c in zip(etas, cells) if c]
    return "\n".join(rows), curves


def _drop(sweep: pathlib.Path, line: str, eta: str) -> report.Stats | None:
    """Per seed, accuracy with both modalities minus accuracy with the image alone (points)."""
    both, image = _acc(sweep, line, eta, BOTH), _acc(sweep, line, eta, ONE)
    if both is None or image is None:
        return None
    return report.Stats.of([b - i for b, i in zip(both.values, image.values)], both.seeds)


# The paper's claims on Figure 4 (SMIL paper, "Missing pattern 1/2"; its numbers at eta = 20%
# where it names eta): (claim, the paper's value in points, test subset, a, b), a > b one-sided.
REGIME_CLAIMS = (
    ("SMIL > lower bound", {"0.2": "+3.3", "0.05": "+1.1"}, ONE, "smil", "lower_bound"),
    ("SMIL > AE", {"0.2": "+6.7"}, ONE, "smil", "ae"),
    ("SMIL > lower bound", {"0.2": "+4.3"}, BOTH, "smil", "lower_bound"),
    ("SMIL > AE", {"0.2": "+2.1"}, BOTH, "smil", "ae"),
)


def _claims_header(paper_unit: str) -> list[str]:
    return [f"| claim | test | eta | paper ({paper_unit}) | mean difference (points) "
            "| p (one-sided) | seeds | met at p < 0.05 |", "|---|---|---|---|---|---|---|---|"]


def _claim_row(claim: str, subset: str, eta: str, paper: str, a: report.Stats | None,
               b: report.Stats | None) -> list[str]:
    """The row of ``report.paired_test`` of a > b (one-sided, paired by seed); none when a cell
    is missing."""
    if a is None or b is None:
        return []
    test = report.paired_test(a, b, alternative="greater")
    diff = f"{round(100 * test.diff, 2) + 0.0:+.2f}"  # + 0.0: no "-0.00"
    return [f"| {claim} | {subset} | {float(eta) * 100:g}% | {paper} | {diff} | "
            f"{report.p_text(test)} | {test.n} | {'yes' if test.p < 0.05 else 'no'} |"]


def regime_paired(sweep: pathlib.Path) -> str:
    """``report.paired_test`` (one-sided, in the paper's direction, paired by seed) of each of
    the paper's Figure 4 claims at every eta, and of "AE drops more than SMIL" from both
    modalities to the image alone (the paper: 5.6 against 1.0 points)."""
    rows = _claims_header("points")

    def add(claim, subset, eta, paper, a, b):
        rows.extend(_claim_row(claim, subset, eta, paper, a, b))

    names = _conditions(sweep)
    for claim, paper, subset, a, b in REGIME_CLAIMS:
        for eta in _etas(sweep):
            add(claim, names[subset], eta, paper.get(eta, ""), _acc(sweep, a, eta, subset),
                _acc(sweep, b, eta, subset))
    for eta in _etas(sweep):
        add("AE's drop > SMIL's drop", f"{names[BOTH]} minus {names[ONE]}", eta,
            "5.6 vs 1.0" if eta == "0.2" else "", _drop(sweep, "ae", eta),
            _drop(sweep, "smil", eta))
    return "\n".join(rows)


def regime(sweep: pathlib.Path, plot_path: str | None, title: str | None) -> None:
    """Prints a Figure 4 sweep's tables and paired tests (the regime sweep, or mfeat's); draws
    Figure 4."""
    one, c1 = regime_figure4(sweep, ONE)
    both, c2 = regime_figure4(sweep, BOTH)
    print(f"#### {FIG4['one']}\n\n{one}\n")
    print(f"#### {FIG4['both']}\n\n{both}\n")
    print(f"#### The paper's Figure 4 claims, paired by seed\n\n{regime_paired(sweep)}")
    if plot_path:
        names = {k: v.replace("+", " + ") for k, v in _conditions(sweep).items()}
        plot({f"test: {names[ONE]} only": c1, f"test: {names[BOTH]}": c2}, plot_path,
             title or "SMIL's regime: 1,050 training images, eta% with audio (5 seeds)")


# ----------------------------------------------------------------------------------------------
# Table 3's ablations in SMIL's regime (sweeps/table3_regime_avmnist.txt): a point per ablation and
# eta; "Full" is the regime sweep's smil_eta<eta> point, the same seeds.
# ----------------------------------------------------------------------------------------------

TABLE3_ETAS = ("0.1", "0.2")
# (sweep line, label, the paper's Full minus this ablation in F1 samples x 100 at 10 % / 20 %,
# MM-IMDb: its Table 3)
TABLE3_LINES = (("wo_kmeans", "SMIL w/o K-means", ("+1.0", "+0.6")),
                ("wo_regularization", "SMIL w/o Regularization", ("+2.3", "+2.0")),
                ("fixed_gaussian", "SMIL w/ Fixed Gaussian", ("+1.7", "+4.6")),
                ("deterministic", "SMIL w/ Deterministic", ("+1.8", "+1.4")))
# Rows shown where a sweep has them, not a claim of the paper (no test): the released code.
TABLE3_EXTRA = (("released", "SMIL, released code (`:released`)"),)


def is_table3(sweep: pathlib.Path) -> bool:
    """Whether ``sweep`` is the Table 3 sweep (it holds the ablation points)."""
    return any(_table3_has(sweep, eta) for eta in TABLE3_ETAS)


def _table3_has(sweep: pathlib.Path, eta: str) -> bool:
    return any((sweep / f"{line}_eta{eta}").is_dir() for line, *_ in TABLE3_LINES)


def regime_table3(sweep: pathlib.Path, full: pathlib.Path,
                  context: str = " in SMIL's regime") -> str:
    """Table 3 as accuracies at eta = 10 % and 20 % on both test patterns, then the paired
    one-sided tests of "Full > each ablation" (the paper's reading of its Table 3); ``context``
    ends the first heading."""
    etas = [eta for eta in TABLE3_ETAS if _table3_has(sweep, eta)]
    cases = [(eta, subset) for eta in etas for subset in (ONE, BOTH)]
    names = _conditions(sweep)
    rows = ["| method | " + " | ".join(f"{names[s]}, eta = {float(e) * 100:g}%" for e, s in cases)
            + " |", "|---|" + "---|" * len(cases)]
    lines = [(line, label, sweep) for line, label, *_ in TABLE3_LINES + TABLE3_EXTRA]
    for line, label, where in lines + [("smil", "SMIL (Full)", full)]:
        cells = [_acc(where, line, eta, subset) for eta, subset in cases]
        if any(cells):
            rows.append(f"| {label} | " + " | ".join(map(_fmt, cells)) + " |")
    tests = _claims_header("F1 x 100")
    for line, label, paper in TABLE3_LINES:
        for eta, subset in cases:
            tests += _claim_row(f"Full > {label.removeprefix('SMIL ')}", names[subset], eta,
                                paper[TABLE3_ETAS.index(eta)], _acc(full, "smil", eta, subset),
                                _acc(sweep, line, eta, subset))
    return (f"#### Table 3 ablations{context}\n\n" + "\n".join(rows)
            + "\n\n#### Full SMIL > each ablation, paired by seed\n\n" + "\n".join(tests))


def main() -> None:
    """Prints the tables; draws Figure 4 when a PNG path is given."""
    args = sys.argv[1:]
    runs = pathlib.Path(args[0])
    runs = report.runs_or_results(runs, "runs/smil", HERE / "results")
    if (runs / "sweep.json").is_file():
        # A Figure 4 sweep (SMIL and AE points per eta), a Table 3 sweep (ablation points, Full
        # in the regime sweep beside it), or both in one (mfeat's).
        own = bool(_etas(runs))
        if own:
            regime(runs, args[1] if len(args) > 1 else None, args[2] if len(args) > 2 else None)
        if is_table3(runs):
            if own:
                print("\n" + regime_table3(runs, runs, ""))
            else:
                full = report.runs_or_results(runs.parent / "regime_avmnist", "runs/smil",
                                              HERE / "results")
                print(regime_table3(runs, full))
        return
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
