"""Writes experiments/mla/results.md from the runs of experiments/mla/run.sh (runs/mla/*).

Usage: python experiments/mla/make_table.py [RUNS_DIR]   (default runs/mla; when it holds no run,
the committed copy experiments/mla/results, written by ``mmjax report runs/mla/sweep_mfeat
--export experiments/mla/results/sweep_mfeat``)

The mfeat sweep (``sweep_mfeat``: sweeps/mfeat.txt, 5 seeds per line, with the test-time
evaluations of slot_eval.py) gives Tables 1-3 in %, mean ± std over the 5 seeds, and paired
one-sided t-tests across the seeds of every claim the README states. The older per-run layout
(``runs/mla/<name>``, 3 seed replicas per run) gives the other tables. A section without runs is
left out, so the file regenerates from a partial or committed ``results/``.
"""

import math
import pathlib
import sys

from mmjax import report

HERE = pathlib.Path(__file__).resolve().parent
RUNS = pathlib.Path("runs/mla")
DATASETS = {"mfeat": ("UCI mfeat, views fou+kar+mor", ("fou", "kar", "mor")),
            "av": ("AV-MNIST-offline, image PCA 25 % energy, audio SNR -5..15 dB",
                   ("image", "audio"))}
TABLE1 = ("concat", "sum", "late", "film", "bilinear_gated", "ogm_ge", "qmf", "mla", "mla600")
# Row labels where the run name is not the method's name: the first session's shrunk AV-MNIST
# MLA runs (600 steps = 300 updates per encoder, half the baselines').
LABELS = {"mla600": "mla, 600 steps (300 per encoder)"}
TABLE2 = ("concat", "late", "qmf", "mla")
RATES = ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7")
# Table 2's evaluation: the name `mmjax eval --protocol missing-rate` writes, then the earlier one.
MISSING_RATE = ("eval-missing-rate-test", "eval_missing_rate")

# The mfeat sweep (sweeps/mfeat.txt): folder, views, rows of Table 1, the baselines of Table 2.
SWEEP = "sweep_mfeat"
MFEAT = ("fou", "kar", "mor")
FULL = "+".join(MFEAT)
SWEEP_T1 = (("concat", "Concat"), ("sum", "Sum"), ("late", "Late fusion (core `late`)"),
            ("film", "FiLM"), ("bilinear_gated", "BiGated"), ("ogm_ge", "OGM-GE"),
            ("qmf", "QMF"), ("mla", "MLA"))
T2_BASELINES = ("concat", "late", "qmf")
# Table 3's cells: (HGM, DF, slot, evaluation file); DF ✗ is slot_eval.py's eval_avg.json.
T3_CELLS = (("✗", "✗", "mla_nohgm", "eval_avg"), ("✗", "✓", "mla_nohgm", "eval"),
            ("✓", "✗", "mla", "eval_avg"), ("✓", "✓", "mla", "eval"))
EMPTY = "(no runs yet)"  # a sweep table without runs


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


def _slot(sweep: pathlib.Path, name: str, stem: str | tuple[str, ...] = "eval") -> dict | None:
    """The evaluation ``stem`` of sweep line ``name`` (its seeds' folder ``train.seed-0..4``)."""
    return report.load_result(report.seed_slot(sweep / name), stem)


def _acc(result: dict, condition: str) -> report.Stats:
    return report.stats(result, condition, "accuracy")


def _rate(rate: str) -> str:
    """The ``missing-rate`` protocol's condition of a rate: ``rate=0.1``."""
    return f"rate={float(rate):g}"


def sweep_table1(sweep: pathlib.Path) -> str:
    """Table 1 over 5 seeds: each view alone, all three ("Multi"), the average of the subsets."""
    rows = ["| method | " + " | ".join(MFEAT) + f" | Multi ({FULL}) | average of the 7 subsets |",
            "|" + "---|" * (len(MFEAT) + 3)]
    for name, label in SWEEP_T1:
        r = _slot(sweep, name)
        if r is not None:
            cells = [_acc(r, c) for c in (*MFEAT, FULL, report.AVERAGE)]
            rows.append(f"| {label} | " + " | ".join(_pct(c) for c in cells) + " |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


def sweep_table3(sweep: pathlib.Path) -> str:
    """Table 3 over 5 seeds: HGM (two trainings) x DF (test time), each view and Multi."""
    rows = ["| HGM | DF | " + " | ".join(MFEAT) + f" | Multi ({FULL}) |",
            "|" + "---|" * (len(MFEAT) + 3)]
    for hgm, df, name, stem in T3_CELLS:
        r = _slot(sweep, name, stem)
        if r is not None:
            rows.append(f"| {hgm} | {df} | "
                        + " | ".join(_pct(_acc(r, c)) for c in (*MFEAT, FULL)) + " |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


def _t2_rates(sweep: pathlib.Path) -> list[str]:
    """The rates of RATES whose MLA line has its test missing-rate evaluation."""
    return [r for r in RATES if _slot(sweep, f"mla_miss{r}", MISSING_RATE) is not None]


def sweep_table2(sweep: pathlib.Path) -> str:
    """Table 2 over 5 seeds: the same entry-wise missing rate in training and test."""
    rates = _t2_rates(sweep)
    if not rates:
        return EMPTY
    rows = ["| method | " + " | ".join(f"{float(r) * 100:.0f} %" for r in rates) + " |",
            "|" + "---|" * (len(rates) + 1)]
    for m in (*T2_BASELINES, "mla"):
        cells = []
        for r in rates:
            res = _slot(sweep, f"{m}_miss{r}", MISSING_RATE)
            cells.append(_pct(_acc(res, _rate(r))) if res else "–")
        rows.append(f"| {dict(SWEEP_T1).get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _claims(sweep: pathlib.Path):
    """(table, claim a > b, column, result a, result b, condition) of every tested claim."""
    mla = _slot(sweep, "mla")
    for name, _ in SWEEP_T1[:-1]:
        other = _slot(sweep, name)
        if mla and other:
            yield "1", f"MLA > {name}", "Multi", mla, other, FULL
    concat = _slot(sweep, "concat")
    if mla and concat:  # the README's done-when check: the weakest view alone
        yield "1", "MLA > concat", "mor alone", mla, concat, "mor"
    for r in _t2_rates(sweep):
        mla_r = _slot(sweep, f"mla_miss{r}", MISSING_RATE)
        for b in T2_BASELINES:
            other = _slot(sweep, f"{b}_miss{r}", MISSING_RATE)
            if other:
                yield "2", f"MLA > {b}", f"{float(r) * 100:.0f} %", mla_r, other, _rate(r)
    full = _slot(sweep, "mla")
    for hgm, df, name, stem in T3_CELLS[:-1]:
        other = _slot(sweep, name, stem)
        if full and other:
            yield "3", f"HGM✓DF✓ > HGM{hgm}DF{df}", "Multi", full, other, FULL


def sweep_paired(sweep: pathlib.Path) -> str:
    """``report.paired_test`` (one-sided, a > b, paired by seed) of every claim of ``_claims``."""
    rows = ["| table | claim | column | mean difference (points) | p (one-sided) | seeds "
            "| met at p < 0.05 |", "|---|---|---|---|---|---|---|"]
    for table, claim, column, a, b, cond in _claims(sweep):
        test = report.paired_test(_acc(a, cond), _acc(b, cond), alternative="greater")
        p = f"{test.p:.4g}" if 0.045 <= test.p < 0.055 else f"{test.p:.3g}"  # no 0.04999 -> 0.05
        if not math.isfinite(test.t):  # the same difference on every seed: report's sign test
            p += " (sign test: the same difference on every seed)"
        diff = round(100 * test.diff, 2) + 0.0  # + 0.0: no "-0.00"
        rows.append(f"| {table} | {claim} | {column} | {diff:+.2f} | {p} | "
                    f"{test.n} | {'yes' if test.p < 0.05 else 'no'} |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


def sweep_sections(sweep: pathlib.Path) -> list[str]:
    """Markdown lines of the sweep's tables that have runs (one that has none is left out)."""
    sections = [
        ("Table 1 (complete modalities), UCI mfeat fou+kar+mor, 5 seeds", sweep_table1(sweep)),
        ("Table 2 (same missing rate in training and test, at least one view per sample), "
         "5 seeds", sweep_table2(sweep)),
        ("Table 3 ablation (HGM x DF), 5 seeds", sweep_table3(sweep)),
        ("Paired t-tests across the 5 seeds (one-sided, a > b)", sweep_paired(sweep))]
    return [line for heading, table in sections if table != EMPTY
            for line in (f"### {heading}", "", table, "")]


def main(runs: str = "runs/mla") -> None:
    """Prints results.md: Tables 1-3 per dataset and the modality gap."""
    global RUNS
    RUNS = report.runs_or_results(runs, "runs/mla", HERE / "results")
    out = ["# MLA experiments: measured results", "",
           "Generated by `experiments/mla/make_table.py` from `runs/mla/` or the committed "
           "`experiments/mla/results/` (see README.md for the commands and the paper's numbers)."
           " Test accuracy in %, mean ± std over 5 seeds (`sweep_mfeat`: sweeps/mfeat.txt); "
           "other tables, if any, as fractions over 3 seeds.", ""]
    sweep = sweep_sections(RUNS / SWEEP)
    if sweep:
        out += ["## UCI mfeat sweep (views fou, kar, mor; 64,000 training samples per run)", "",
                *sweep]
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
