"""Writes experiments/mla/results.md from the runs of experiments/mla/run.sh (runs/mla/*).

Usage: python experiments/mla/make_table.py [RUNS_DIR]   (default runs/mla; when it holds no run,
the committed copy experiments/mla/results, written by ``mmjax report runs/mla/sweep_mfeat
--export experiments/mla/results/sweep_mfeat`` and the same for the other sweeps)

Each dataset's sweep (``sweep_mfeat``: sweeps/mfeat.txt, ``sweep_avmnist``: sweeps/avmnist.txt,
5 seeds per line, with the test-time evaluations of slot_eval.py) gives Tables 1-3 in %, mean ±
std over the 5 seeds, and paired one-sided t-tests across the seeds of every claim the README
states. Figure 2's grids (``fig2_mfeat``: sweeps/fig2_mfeat.txt, kar missing from a fraction r
of the training samples; ``fig2_avmnist``: the audio) give each view alone per method and r,
paired tests of the paper's isolation claim, and the plots experiments/mla/fig2_<dataset>.png
(when matplotlib is there). The older per-run layout
(``runs/mla/<name>``, 3 seed replicas per run) gives the other tables. A section without runs is
left out, so the file regenerates from a partial or committed ``results/``.
"""

import dataclasses
import json
import pathlib
import sys

import numpy as np

from mmjax import report

HERE = pathlib.Path(__file__).resolve().parent
RUNS = pathlib.Path("runs/mla")
MFEAT = ("fou", "kar", "mor")
AVMNIST = ("image", "audio")
DATASETS = {"mfeat": ("UCI mfeat, views fou+kar+mor", MFEAT),
            "av": ("AV-MNIST-offline, image PCA 25 % energy, audio SNR -5..15 dB", AVMNIST)}
TABLE1 = ("concat", "sum", "late", "film", "bilinear_gated", "ogm_ge", "qmf", "mla", "mla600")
# Row labels where the run name is not the method's name: the first session's shrunk AV-MNIST
# MLA runs (600 steps = 300 updates per encoder, half the baselines').
LABELS = {"mla600": "mla, 600 steps (300 per encoder)"}
TABLE2 = ("concat", "late", "qmf", "mla")
RATES = ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7")
# Table 2's evaluation: the name `mmjax eval --protocol missing-rate` writes, then the earlier one.
MISSING_RATE = ("eval-missing-rate-test", "eval_missing_rate")


@dataclasses.dataclass(frozen=True)
class Grid:
    """A sweep of one dataset (sweeps/<grid>.txt): its folder under the runs, its section's
    title, the dataset's name in headings and plots, and its views."""

    folder: str
    title: str
    dataset: str
    views: tuple[str, ...]

    @property
    def full(self) -> str:
        """The test subset with every view: "Multi"."""
        return "+".join(self.views)


@dataclasses.dataclass(frozen=True)
class Sweep(Grid):
    """A sweep of Tables 1-3; ``weakest`` is the weakest view alone (the README's done-when
    check: MLA > concat there)."""

    weakest: str


# mfeat (sweeps/mfeat.txt) and AV-MNIST-offline (sweeps/avmnist.txt), Tables 1-3 each; the rows
# of Table 1 and the baselines of Table 2 below.
SWEEPS = (Sweep("sweep_mfeat", "UCI mfeat sweep (views fou, kar, mor; 64,000 training samples "
                "per run)", "UCI mfeat", MFEAT, "mor"),
          Sweep("sweep_avmnist", "AV-MNIST-offline sweep (image PCA 25 % energy, audio SNR "
                "-5..15 dB; 38,400 training samples per run)", "AV-MNIST-offline",
                AVMNIST, "image"))
SWEEP_T1 = (("concat", "Concat"), ("sum", "Sum"), ("late", "Late fusion (core `late`)"),
            ("film", "FiLM"), ("bilinear_gated", "BiGated"), ("ogm_ge", "OGM-GE"),
            ("qmf", "QMF"),
            ("late_independent", "Late fusion, the paper's (uni-modal models trained independently, "
             "logits averaged; a missing view enters as zeros)"), ("mla", "MLA"))
T2_BASELINES = ("concat", "late", "qmf", "mmin", "ae", "cra", "cca", "dcca", "dccae")
T2_LABELS = dict(SWEEP_T1) | {"mmin": "MMIN", "ae": "AE (MMIN's released AE variant)",
                              "cra": "CRA imputation + concat", "cca": "CCA", "dcca": "DCCA",
                              "dccae": "DCCAE"}
# Table 3's cells: (HGM, DF, slot, evaluation file); DF ✗ is slot_eval.py's eval_avg.json.
T3_CELLS = (("✗", "✗", "mla_nohgm", "eval_avg"), ("✗", "✓", "mla_nohgm", "eval"),
            ("✓", "✗", "mla", "eval_avg"), ("✓", "✓", "mla", "eval"))
EMPTY = "(no runs yet)"  # a sweep table without runs


@dataclasses.dataclass(frozen=True)
class Fig2(Grid):
    """A grid of Figure 2: view ``masked`` removed from a fraction r of the training samples,
    lines ``{method}_r{r}``, the test set complete; the claim is about the views kept."""

    masked: str

    @property
    def kept(self) -> tuple[str, ...]:
        """The views present in every training sample."""
        return tuple(v for v in self.views if v != self.masked)

    @property
    def plot(self) -> pathlib.Path:
        """The figure's PNG, experiments/mla/<folder>.png."""
        return HERE / f"{self.folder}.png"


FIG2_METHODS = (("mla", "MLA"), ("qmf", "QMF"))
FIG2_RATES = ("0", "0.2", "0.4", "0.6", "0.8")
# mfeat: kar, the strongest view alone, masked; AV-MNIST-offline: the audio (the stronger).
FIG2_MFEAT = Fig2("fig2_mfeat", "UCI mfeat, Figure 2 (views fou, kar, mor; 64,000 training "
                  "samples per run)", "UCI mfeat", MFEAT, "kar")
FIG2_AVMNIST = Fig2("fig2_avmnist", "AV-MNIST-offline, Figure 2 (image PCA 25 % energy, audio "
                    "SNR -5..15 dB; 38,400 training samples per run)", "AV-MNIST-offline",
                    AVMNIST, "audio")


def _load(name: str, stem: str | tuple[str, ...] = "eval"):
    return report.load_result(RUNS / name, stem)


def _cell(result, subset: str) -> str:
    if result is None or subset not in result["subsets"]:
        return "–"
    return report.fmt(report.stats(result, subset, "accuracy"), digits=3)


def table1(ds: str) -> list[str]:
    """Table 1: one row per method run ``{ds}_{method}``, every single modality, all, average."""
    title, mods = DATASETS[ds]
    full = "+".join(mods)
    t = report.run_table({LABELS.get(m, m): RUNS / f"{ds}_{m}" for m in TABLE1},
                         (*mods, full, report.AVERAGE))
    if not t.rows:
        return []
    text = report.markdown(t, digits=3, row_label="method",
                           col_labels=[*mods, f"multi ({full})", "average over all subsets"])
    return [f"### Table 1 protocol: {title} (complete modalities)", "", text, ""]


def table3(ds: str, mla: str = "mla", note: str = "") -> list[str]:
    """The 2 x 2 ablation of runs ``{ds}_{mla}`` and ``{ds}_{mla}_nohgm``."""
    title, mods = DATASETS[ds]
    full = "+".join(mods)
    pre = f"{ds}_{mla}"
    cells = [("✗", "✗", f"{pre}_nohgm", "eval_avg"), ("✗", "✓", f"{pre}_nohgm", "eval"),
             ("✓", "✗", pre, "eval_avg"), ("✓", "✓", pre, "eval")]
    if not any(_load(run, stem) for _, _, run, stem in cells):
        return []
    lines = [f"### Table 3 ablation: {title}{note}", "",
             "| HGM | DF | " + " | ".join(mods) + f" | multi ({full}) |",
             "|" + "---|" * (len(mods) + 3)]
    for hgm, df, run, stem in cells:
        r = _load(run, stem)
        if r is None:
            continue
        lines.append(f"| {hgm} | {df} | " + " | ".join(_cell(r, x) for x in mods)
                     + f" | {_cell(r, full)} |")
    r = _load(pre, "eval_perbatch")
    if r is not None:
        lines += ["", f"Released per-batch entropy (HGM ✓, DF ✓ with `method.entropy=per_batch`, "
                      f"eval batch 512): multi {_cell(r, full)}."]
    return lines + [""]


def table2(ds: str) -> list[str]:
    """Table 2: test accuracy at each entry-wise missing rate (train and test) that ran."""
    title, _ = DATASETS[ds]
    rates = [r for r in RATES if any(_load(f"{ds}_{m}_miss{r}", MISSING_RATE)
                                     for m in TABLE2)]
    if not rates:
        return []
    lines = [f"### Table 2 protocol: {title}, entry-wise missing rate in train and test "
             "(at least one view per sample)", "",
             "| method | " + " | ".join(f"{float(r) * 100:.0f}%" for r in rates) + " |",
             "|" + "---|" * (len(rates) + 1)]
    for m in TABLE2:
        row = []
        for r in rates:
            res = _load(f"{ds}_{m}_miss{r}", MISSING_RATE)
            row.append(_cell(res, f"rate={float(r):g}"))
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return lines + [""]


def _pct(cell: report.Stats) -> str:
    return report.fmt(cell, scale=100, digits=2)


def _rate(rate: str) -> str:
    """The ``missing-rate`` protocol's condition of a rate: ``rate=0.1``."""
    return f"rate={float(rate):g}"


def _point(sweep: pathlib.Path, name: str, condition: str,
           stem: str | tuple[str, ...] = "eval") -> report.Stats | None:
    """``condition``'s accuracy of sweep line ``name`` over its seeds: one folder of packed
    replicas or one folder per seed (``report.point_stats``); None until every seed finished."""
    return report.point_stats(sweep / name, condition, "accuracy", stem)


def sweep_table1(sweep: pathlib.Path, spec: Sweep) -> str:
    """Table 1 over 5 seeds: each view alone, all of them ("Multi"), the average of the
    subsets."""
    n_subsets = 2 ** len(spec.views) - 1
    rows = ["| method | " + " | ".join(spec.views) + f" | Multi ({spec.full}) | average of the "
            f"{n_subsets} subsets |", "|" + "---|" * (len(spec.views) + 3)]
    for name, label in SWEEP_T1:
        cells = [_point(sweep, name, c) for c in (*spec.views, spec.full, report.AVERAGE)]
        if None not in cells:
            rows.append(f"| {label} | " + " | ".join(_pct(c) for c in cells) + " |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


def sweep_table3(sweep: pathlib.Path, spec: Sweep) -> str:
    """Table 3 over 5 seeds: HGM (two trainings) x DF (test time), each view and Multi."""
    rows = ["| HGM | DF | " + " | ".join(spec.views) + f" | Multi ({spec.full}) |",
            "|" + "---|" * (len(spec.views) + 3)]
    for hgm, df, name, stem in T3_CELLS:
        cells = [_point(sweep, name, c, stem) for c in (*spec.views, spec.full)]
        if None not in cells:
            rows.append(f"| {hgm} | {df} | " + " | ".join(_pct(c) for c in cells) + " |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


def _t2(sweep: pathlib.Path, method: str, rate: str) -> report.Stats | None:
    """Table 2's cell: ``method`` trained and tested at the entry-wise missing rate ``rate``."""
    return _point(sweep, f"{method}_miss{rate}", _rate(rate), MISSING_RATE)


def _t2_rates(sweep: pathlib.Path) -> list[str]:
    """The rates of RATES whose MLA line has its test missing-rate evaluation."""
    return [r for r in RATES if _t2(sweep, "mla", r) is not None]


def sweep_table2(sweep: pathlib.Path) -> str:
    """Table 2 over 5 seeds: the same entry-wise missing rate in training and test."""
    rates = _t2_rates(sweep)
    if not rates:
        return EMPTY
    rows = ["| method | " + " | ".join(f"{float(r) * 100:.0f} %" for r in rates) + " |",
            "|" + "---|" * (len(rates) + 1)]
    for m in (*T2_BASELINES, "mla"):
        cells = [_t2(sweep, m, r) for r in rates]
        # A baseline the sweep does not run (AV-MNIST-offline: MMIN, CRA) has no row.
        if any(c is not None for c in cells):
            rows.append(f"| {T2_LABELS.get(m, m)} | "
                        + " | ".join("–" if c is None else _pct(c) for c in cells) + " |")
    return "\n".join(rows)


def _claims(sweep: pathlib.Path, spec: Sweep):
    """(table, claim a > b, column, cell a, cell b) of every tested claim that has both cells."""
    def claim(table, text, column, a, b, cond, stem_a="eval", stem_b="eval"):
        ca, cb = _point(sweep, a, cond, stem_a), _point(sweep, b, cond, stem_b)
        return None if ca is None or cb is None else (table, text, column, ca, cb)

    candidates = [claim("1", f"MLA > {name}", "Multi", "mla", name, spec.full)
                  for name, _ in SWEEP_T1[:-1]]
    # the README's done-when check: the weakest view alone
    candidates.append(claim("1", "MLA > concat", f"{spec.weakest} alone", "mla", "concat",
                            spec.weakest))
    for r in _t2_rates(sweep):
        candidates += [claim("2", f"MLA > {b}", f"{float(r) * 100:.0f} %", f"mla_miss{r}",
                             f"{b}_miss{r}", _rate(r), MISSING_RATE, MISSING_RATE)
                       for b in T2_BASELINES]
        # the paper's order of its two imagination baselines (IEMOCAP: MMIN above the AE at
        # every rate)
        candidates.append(claim("2", "MMIN > ae", f"{float(r) * 100:.0f} %", f"mmin_miss{r}",
                                f"ae_miss{r}", _rate(r), MISSING_RATE, MISSING_RATE))
    candidates += [claim("3", f"HGM✓DF✓ > HGM{hgm}DF{df}", "Multi", "mla", name, spec.full,
                         "eval", stem)
                   for hgm, df, name, stem in T3_CELLS[:-1]]
    return [c for c in candidates if c is not None]


def _diff(test: report.Paired) -> str:
    """A paired test's mean difference in points (signed, 2 decimals)."""
    return f"{round(100 * test.diff, 2) + 0.0:+.2f}"  # + 0.0: no "-0.00"


def sweep_paired(sweep: pathlib.Path, spec: Sweep) -> str:
    """``report.paired_test`` (one-sided, a > b, paired by seed) of every claim of ``_claims``."""
    rows = ["| table | claim | column | mean difference (points) | p (one-sided) | seeds "
            "| met at p < 0.05 |", "|---|---|---|---|---|---|---|"]
    for table, claim, column, a, b in _claims(sweep, spec):
        test = report.paired_test(a, b, alternative="greater")
        rows.append(f"| {table} | {claim} | {column} | {_diff(test)} | {report.p_text(test)} | "
                    f"{test.n} | {'yes' if test.p < 0.05 else 'no'} |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


def _fig2(sweep: pathlib.Path, method: str, rate: str, subset: str) -> report.Stats | None:
    """Figure 2's cell: ``subset``'s accuracy (complete test set) of ``method`` trained with the
    masked view missing from a fraction ``rate`` of the training samples."""
    return _point(sweep, f"{method}_r{rate}", subset)


def _fig2_rates(sweep: pathlib.Path, method: str) -> list[str]:
    """The rates of FIG2_RATES that ``method`` has finished (every seed of its line)."""
    return [r for r in FIG2_RATES if _fig2(sweep, method, r, report.AVERAGE) is not None]


def fig2_table(sweep: pathlib.Path, spec: Fig2) -> str:
    """Figure 2 as a table: per method and r, each view alone (and Multi), mean ± std."""
    rows = [f"| method | {spec.masked} missing in training | "
            + " | ".join(f"{v} alone" for v in spec.views) + f" | Multi ({spec.full}) |",
            "|" + "---|" * (len(spec.views) + 3)]
    for method, label in FIG2_METHODS:
        for r in _fig2_rates(sweep, method):
            rows.append(f"| {label} | {float(r) * 100:.0f} % | "
                        + " | ".join(_pct(_fig2(sweep, method, r, c))
                                     for c in (*spec.views, spec.full)) + " |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


def _drop(sweep: pathlib.Path, method: str, view: str, rate: str) -> report.Stats:
    """Per seed, ``view``'s accuracy alone at r = 0 minus at ``rate`` (the seeds paired)."""
    a, b = (_fig2(sweep, method, r, view) for r in ("0", rate))
    if a.seeds != b.seeds:
        raise ValueError(f"{method}: seeds {a.seeds} at r = 0, {b.seeds} at r = {rate}")
    return report.Stats.of(np.subtract(a.values, b.values), a.seeds)


def _ci95(a: report.Stats, b: report.Stats) -> str:
    """The 95 % t interval of the mean per-seed difference a - b, in points: the effects the
    seeds rule out (a "no detectable change" is only as strong as this interval is narrow)."""
    from scipy import stats as scipy_stats

    diff = 100 * np.subtract(a.values, b.values)
    half = scipy_stats.t.ppf(0.975, len(diff) - 1) * np.std(diff, ddof=1) / np.sqrt(len(diff))
    lo, hi = (round(float(diff.mean() + k * half), 2) + 0.0 for k in (-1, 1))  # no "-0.00"
    return f"[{lo:+.2f}, {hi:+.2f}]"


def fig2_paired(sweep: pathlib.Path, spec: Fig2) -> str:
    """The paper's claim, per kept view v, at the largest rate r both methods finished:
    QMF's v alone at r = 0 > at r (one-sided: the absence hurts QMF); MLA's change (two-sided:
    "no detectable change" when p >= 0.05, which is not evidence of no effect); QMF's drop >
    MLA's (one-sided, the per-seed drops paired by seed)."""
    rates = [r for r in _fig2_rates(sweep, "mla") if r in _fig2_rates(sweep, "qmf")]
    if "0" not in rates or len(rates) < 2:
        return EMPTY
    r = rates[-1]
    pct = f"{float(r) * 100:.0f} %"
    rows = ["| view alone | claim (a vs b) | mean a − b (points) | 95 % interval | p | test "
            "| seeds | met at p < 0.05 |", "|---|---|---|---|---|---|---|---|"]
    for v in spec.kept:
        cells = {(m, x): _fig2(sweep, m, x, v) for m in ("mla", "qmf") for x in ("0", r)}
        pairs = {"qmf": (cells["qmf", "0"], cells["qmf", r]),
                 "mla": (cells["mla", "0"], cells["mla", r]),
                 "drops": (_drop(sweep, "qmf", v, r), _drop(sweep, "mla", v, r))}
        qmf = report.paired_test(*pairs["qmf"], alternative="greater")
        mla = report.paired_test(*pairs["mla"], alternative="two-sided")
        drops = report.paired_test(*pairs["drops"], alternative="greater")
        if mla.p >= 0.05:
            mla_verdict = "no detectable change (not a proof of none)"
        else:
            mla_verdict = f"no: it {'fell' if mla.diff > 0 else 'rose'}"
        for key, claim, test, side, verdict in (
                ("qmf", f"QMF: at 0 % > at {pct} (absence hurts)", qmf, "one-sided",
                 "yes" if qmf.p < 0.05 else "no"),
                ("mla", f"MLA: at 0 % vs at {pct} (unaffected)", mla, "two-sided", mla_verdict),
                ("drops", f"drop 0 → {pct}: QMF's > MLA's", drops, "one-sided",
                 "yes" if drops.p < 0.05 else "no")):
            rows.append(f"| {v} | {claim} | {_diff(test)} | {_ci95(*pairs[key])} | "
                        f"{report.p_text(test)} | {side} | {test.n} | {verdict} |")
    return "\n".join(rows)


def fig2_plot(sweep: pathlib.Path, spec: Fig2) -> bool:
    """Figure 2's plot: each view alone against r, MLA and QMF, mean ± std; False without
    runs or matplotlib (results.md does not need it)."""
    if not any(_fig2_rates(sweep, m) for m, _ in FIG2_METHODS):
        return False
    try:
        plt = report.pyplot()
    except report.UserError:
        return False
    views = spec.views
    fig, axes = plt.subplots(1, len(views), figsize=(3.2 * len(views), 3.0), sharex=True)
    for ax, view in zip(axes, views):
        # The two methods' points 1 % apart on the x axis, so that their error bars do not hide
        # each other.
        for (method, label), style, dx in zip(FIG2_METHODS, ("o-", "s--"), (-1, 1)):
            rates = _fig2_rates(sweep, method)
            cells = [_fig2(sweep, method, r, view) for r in rates]
            ax.errorbar([100 * float(r) + dx for r in rates], [100 * c.mean for c in cells],
                        yerr=[100 * c.std for c in cells], fmt=style, capsize=3, label=label)
        ax.set_title(f"{view} alone" + (" (the masked view)" if view == spec.masked else ""))
        ax.set_xlabel(f"{spec.masked} missing in training (%)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].legend()
    fig.suptitle(f"MLA Figure 2 on {spec.dataset}: 5 seeds, mean ± std", fontsize=10)
    fig.tight_layout()
    # No software or date metadata: the file regenerates byte for byte from the same results.
    fig.savefig(spec.plot, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return True


def fig2_sections(spec: Fig2) -> list[str]:
    """The section of Figure 2's grid: its title, table and tests that have runs (and writes
    its plot); nothing when it has no runs."""
    sweep = RUNS / spec.folder
    sections = [
        (f"Figure 2 (isolation of modalities): {spec.masked} missing from a fraction of the "
         "training samples, complete test set, 5 seeds", fig2_table(sweep, spec)),
        ("Figure 2's claim, paired tests across the 5 seeds", fig2_paired(sweep, spec))]
    lines = [line for heading, table in sections if table != EMPTY
             for line in (f"### {heading}", "", table, "")]
    if lines and fig2_plot(sweep, spec):
        lines += [f"Plot: `experiments/mla/{spec.plot.name}`.", ""]
    return [f"## {spec.title}", "", *lines] if lines else []


# Section 3.3.3 on the sweep's configs (run.sh gap_mfeat; modality_gap.py --json): the gap per
# seed of each run. The paper: MLA's gap larger than concat's (Food-101, Figure 3).
GAP = HERE / "results" / "gap_mfeat.json"
GAP_ROWS = (("mla", "MLA"), ("mla_nohgm", "MLA without HGM"), ("concat", "Concat"),
            ("late", "Late fusion (core `late`)"), ("qmf", "QMF"), ("ogm_ge", "OGM-GE"))


def _gap(doc: dict, run: str, pair: str) -> report.Stats:
    return report.Stats.of(doc[run]["gaps"][pair], doc[run]["seeds"])


def gap_sections() -> list[str]:
    """The modality gap per view pair (centroid distance of L2-normalised test embeddings) and
    the paired one-sided tests of "MLA's gap is larger": against concat per pair, against every
    other run on the mean over pairs."""
    if not GAP.is_file():
        return []
    doc = json.loads(GAP.read_text())
    rows_present = [(r, label) for r, label in GAP_ROWS if r in doc]
    pairs = list(doc[rows_present[0][0]]["gaps"])
    table = ["| method | " + " | ".join(pairs) + " |", "|---" * (len(pairs) + 1) + "|"]
    for run, label in rows_present:
        table.append(f"| {label} | " + " | ".join(
            f"{c.mean:.3f} ± {c.std:.3f}" for c in (_gap(doc, run, p) for p in pairs)) + " |")
    tests = ["| claim | pair | mean difference | p (one-sided) | seeds | met at p < 0.05 |",
             "|---|---|---|---|---|---|"]
    claims = [("concat", p) for p in pairs] + [(r, "mean") for r, _ in rows_present
                                               if r not in ("mla", "concat")]
    for other, pair in claims:
        if other not in doc:
            continue
        test = report.paired_test(_gap(doc, "mla", pair), _gap(doc, other, pair), "greater")
        tests.append(f"| MLA's gap > {dict(GAP_ROWS)[other]}'s | {pair} | {test.diff:+.3f} | "
                     f"{report.p_text(test)} | {test.n} | {'yes' if test.p < 0.05 else 'no'} |")
    return ["### Modality gap (section 3.3.3), 5 seeds: centroid distance of L2-normalised test "
            "embeddings", "", *table, "", "Paired t-tests across the seeds (one-sided, the "
            "paper's direction: MLA's gap larger)", "", *tests, ""]


def sweep_sections(sweep: pathlib.Path, spec: Sweep) -> list[str]:
    """Markdown lines of the sweep's tables that have runs (one that has none is left out)."""
    sections = [
        (f"Table 1 (complete modalities), {spec.dataset} {spec.full}, 5 seeds",
         sweep_table1(sweep, spec)),
        ("Table 2 (same missing rate in training and test, at least one view per sample), "
         "5 seeds", sweep_table2(sweep)),
        ("Table 3 ablation (HGM x DF), 5 seeds", sweep_table3(sweep, spec)),
        ("Paired t-tests across the 5 seeds (one-sided, a > b)", sweep_paired(sweep, spec))]
    return [line for heading, table in sections if table != EMPTY
            for line in (f"### {heading}", "", table, "")]


def _sweep_part(spec: Sweep) -> list[str]:
    """The section of one sweep: its title and tables (nothing when it has no runs)."""
    lines = sweep_sections(RUNS / spec.folder, spec)
    return [f"## {spec.title}", "", *lines] if lines else []


def main(runs: str = "runs/mla") -> None:
    """Prints results.md: Tables 1-3 per dataset and the modality gap."""
    global RUNS
    RUNS = report.runs_or_results(runs, "runs/mla", HERE / "results")
    out = ["# MLA experiments: measured results", "",
           "Generated by `experiments/mla/make_table.py` from `runs/mla/` or the committed "
           "`experiments/mla/results/` (see README.md for the commands and the paper's numbers)."
           " Test accuracy in %, mean ± std over 5 seeds (`sweep_mfeat`: sweeps/mfeat.txt, "
           "`sweep_avmnist`: sweeps/avmnist.txt); "
           "other tables, if any, as fractions over 3 seeds.", ""]
    mfeat, avmnist = SWEEPS
    out += _sweep_part(mfeat) + gap_sections() + fig2_sections(FIG2_MFEAT)  # gap: mfeat only
    out += _sweep_part(avmnist) + fig2_sections(FIG2_AVMNIST)
    for ds in DATASETS:
        out += table1(ds) + table3(ds) + table2(ds)
        if ds == "av":
            out += table3(ds, "mla600", ", MLA at 600 steps (300 updates per encoder)")
    gap = RUNS / "gap.md"
    if gap.is_file():
        out += ["### Modality gap (section 3.3.3): centroid distance of L2-normalised embeddings",
                "", gap.read_text().strip(), ""]
    print("\n".join(out))


if __name__ == "__main__":
    main(*sys.argv[1:2])
