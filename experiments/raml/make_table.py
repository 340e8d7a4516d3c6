"""Prints the tables of experiments/raml/README.md from the runs' json files.

Usage: python experiments/raml/make_table.py [RUNS_DIR]   (default runs/raml; when it holds no
run, the committed copy experiments/raml/results, written by ``mmjax report runs/raml --export
experiments/raml/results``)

Cells are test accuracy in %, mean ± std over the seeds (sample std; 3 in the earlier tables, 5 in
every table at an equal budget). "Average" is the mean over every non-empty modality subset
(Table I protocol). A run that has not finished is left out.
"""

import json
import pathlib
import sys

from mmjax import report

HERE = pathlib.Path(__file__).resolve().parent
DATASETS = {"avmnist": "AV-MNIST-offline", "mfeat": "UCI mfeat (six views)"}
TABLE1 = ("concat", "augmentation", "late", "multi_task", "tmc", "etmc", "mvae", "raml")
# mfeat's equal-budget sweep (sweeps/t1_mfeat.txt, 5 seeds): (run, row label) ...
SWEEP_ROWS = (("concat", "concat"), ("augmentation", "augmentation"), ("late", "late"),
              ("multi_task", "multi_task"), ("tmc", "TMC"), ("etmc", "ETMC"),
              ("mvae", "MVAE (+ 500 probe steps on the frozen encoder)"),
              ("mmvae", "MMVAE (+ 500 probe steps on the frozen encoder)"), ("md", "MD"),
              ("mmin", "MMIN (300 teacher + 700 steps)"), ("cra", "CRA imputation + concat"),
              ("raml", "RAML (batch 128, 500 steps)"), ("raml_b64", "RAML (batch 64, 1000 steps)"),
              ("raml_complete", "RAML, complete training only (Table IV)"))
# ... and the claims tested per seed, one-sided a > b: Table I on the average over the subsets,
# Table IV (full-modality training and testing) on the complete test set.
T1_BASELINES = ("concat", "augmentation", "late", "multi_task", "tmc", "etmc", "mvae", "mmvae",
                "md", "mmin", "cra")
T1_CLAIMS = tuple((raml, b) for raml in ("raml", "raml_b64") for b in T1_BASELINES)
T4_CLAIMS = tuple(("raml_complete", b) for b in ("concat", "tmc", "md", "etmc"))
# The paper's order of its two VAEs in Table I (MMVAE above MVAE on Food-101 and IEMOCAP).
VAE_ORDER = (("mmvae", "mvae"),)
# Not a paper claim: does training under the missing patterns change Table I's average (two-sided)?
AUGMENT_CHECK = (("raml_complete", "raml"),)
# Table II's evaluation: the name `mmjax eval --protocol corruption` writes, then the earlier one.
CORRUPTION = ("eval-corruption-test", "eval_corruption")
EMPTY = "(no runs yet)"  # a table without runs


def _load(path: pathlib.Path):
    return json.loads(path.read_text()) if path.exists() else None


def _pct(cell: report.Stats) -> str:
    return report.fmt(cell, scale=100, digits=2)


def subset_table(group: pathlib.Path, rows: list[tuple[str, str]]) -> str:
    """Rows of (label, run name) with every test subset (M <= 2) or a summary (M > 2)."""
    t = report.run_table({label: group / run for label, run in rows}, metric="accuracy")
    if not t.rows:
        return EMPTY
    names = t.cols[:-1]  # the subsets, without the average
    if len(names) <= 3:
        # The singles, then the full set, as the paper.
        t.cols = names[1:] + names[:1] + [report.AVERAGE]
        labels = [f"{{{c}}}" for c in t.cols[:-1]] + ["Average"]
    else:
        singles = [n for n in names if "+" not in n]
        t.cols = [names[0], *singles, report.AVERAGE]
        labels = ["all views", *singles, "Average (63 subsets)"]
    return report.markdown(t, scale=100, digits=2, row_label="method", col_labels=labels)


def table2(group: pathlib.Path) -> str:
    """Table II: one modality noised (sigma) or masked (p), from each run's ``CORRUPTION``."""
    runs = {m: group / m for m in ("concat", "augmentation", "raml")}
    first = next((r for m in runs if (r := report.load_result(runs[m], CORRUPTION))), None)
    if first is None:
        return EMPTY
    keys = [k for k in first["subsets"] if k != "clean"]
    mods = list(dict.fromkeys(k.split(" ")[0] for k in keys))
    noise = [k for k in keys if k.startswith(f"{mods[0]} noise")]
    mask = [k for k in keys if k.startswith(f"{mods[1]} mask")]
    t = report.run_table(runs, ["clean", *noise, *mask], eval_file=CORRUPTION)
    labels = (["clean"] + [k.split(" ", 1)[1] + f" ({mods[0]})" for k in noise]
              + [k.split(" ", 1)[1] + f" ({mods[1]})" for k in mask])
    return report.markdown(t, scale=100, digits=2, row_label="method", col_labels=labels)


def table3(group: pathlib.Path) -> str:
    """Table III: both modalities corrupted at once (corrupt_both.json)."""
    rows = []
    for m in ("concat", "augmentation", "raml"):
        r = _load(group / m / "corrupt_both.json")
        if r is None:
            continue
        if not rows:
            rows += ["| method | " + " | ".join(f"σ={s}" for s in r["table3_noise"])
                     + " | " + " | ".join(f"p={p}" for p in r["table3_mask"]) + " |",
                     "|---|" + "---|" * (len(r["table3_noise"]) + len(r["table3_mask"])),
                     f"| | {r['noised']} noise σ, {r['masked']} masked p = 0.1 |"
                     + " |" * (len(r["table3_noise"]) - 1)
                     + f" {r['masked']} masked p, {r['noised']} noise σ = 0.18 |"
                     + " |" * (len(r["table3_mask"]) - 1)]
        cells = [_pct(report.Stats(v["mean"], v["std"], int(v["n"])))
                 for v in (*r["table3_noise"].values(), *r["table3_mask"].values())]
        rows.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(rows) or EMPTY


def weights_table(group: pathlib.Path) -> str:
    """Figure 5 as numbers: RAML's mean fusion weight per modality under each corruption."""
    r = _load(group / "raml" / "corrupt_both.json")
    if r is None or "weights" not in r:
        return EMPTY
    w, mods = r["weights"], r["weights"]["modalities"]
    out = [f"| noise σ on {r['noised']} | " + " | ".join(w["noise_on_first"]) + " |",
           "|---|" + "---|" * len(w["noise_on_first"])]
    for c, m in enumerate(mods[:2]):
        out.append(f"| mean weight of {m} | "
                   + " | ".join(f"{v[c]:.4f}" for v in w["noise_on_first"].values()) + " |")
    out += ["", f"| masking p on {r['masked']} | " + " | ".join(w["mask_on_second"]) + " |",
            "|---|" + "---|" * len(w["mask_on_second"])]
    for c, m in enumerate(mods[:2]):
        out.append(f"| mean weight of {m} | "
                   + " | ".join(f"{v[c]:.4f}" for v in w["mask_on_second"].values()) + " |")
    return "\n".join(out)


def _subsets(point: pathlib.Path) -> list[str] | None:
    """The test subsets of sweep point ``point``'s evaluation (None until its first seed
    folder finished)."""
    result = report.load_result(report.seed_slot(point))
    return None if result is None else list(result["subsets"])


def _all_views(subsets: list[str]) -> str:
    """The name of the test subset with every modality present."""
    return max(subsets, key=lambda s: s.count("+"))


def _test_cells(test: report.Paired) -> str:
    """A paired test's cells as every claim table prints them: the mean difference in points
    and p (``report.p_text``)."""
    return f"{100 * test.diff:+.2f} | {report.p_text(test)}"


def _met(test: report.Paired) -> str:
    """'yes' where the test's p < 0.05 (its alternative is the paper's direction)."""
    return "yes" if test.p < 0.05 else "no"


def sweep_table(group: pathlib.Path) -> str:
    """Tables I and IV at an equal budget: the complete test set and the average per method."""
    rows = ["| method (64,000 training samples each) | all views (Table IV) | Average (63 subsets, "
            "Table I) |", "|---|---|---|"]
    for name, label in SWEEP_ROWS:
        subsets = _subsets(group / name)
        if subsets is None:
            continue
        full, avg = (report.point_stats(group / name, c, "accuracy")
                     for c in (_all_views(subsets), report.AVERAGE))
        if avg is not None:
            rows.append(f"| {label} | {_pct(full)} | {_pct(avg)} |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


def sweep_paired(group: pathlib.Path) -> str:
    """``report.paired_test`` (one-sided, a > b) of every claim of ``T1_CLAIMS`` and
    ``VAE_ORDER`` on the average and of ``T4_CLAIMS`` on the complete test set;
    ``AUGMENT_CHECK`` two-sided (a != b)."""
    rows = ["| claim | column | mean difference (points) | p | seeds | met at p < 0.05 |",
            "|---|---|---|---|---|---|"]
    for claims, column, side in ((T1_CLAIMS + VAE_ORDER, "Average", "greater"),
                                 (T4_CLAIMS, "all views", "greater"),
                                 (AUGMENT_CHECK, "Average", "two-sided")):
        for a, b in claims:
            subsets = _subsets(group / a)
            if subsets is None:
                continue
            cond = report.AVERAGE if column == "Average" else _all_views(subsets)
            ca, cb = (report.point_stats(group / n, cond, "accuracy") for n in (a, b))
            if ca is None or cb is None:
                continue
            test = report.paired_test(ca, cb, alternative=side)
            relation = ">" if side == "greater" else "≠ (two-sided)"
            rows.append(f"| {a} {relation} {b} | {column} | {_test_cells(test)} | {test.n} | "
                        f"{_met(test)} |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


# Tables V, VI and Figure 4 left at Table I's equal budget, 5 seeds (sweeps/t56_mfeat.txt): each
# ablation against Table I's `raml` (adaptive weights, L^M + L^U + L^D, shared predictor).
T56_ROWS = (("V", "identical weights", "w_identical"),
            ("V", "fixed element-wise weights", "w_fixed"),
            ("VI", "L^M", "l_m"), ("VI", "L^M + L^D", "l_md"), ("VI", "L^M + L^U", "l_mu"),
            ("Fig. 4 left", "separate predictors", "separate"))


def t56_table(group: pathlib.Path, reference: pathlib.Path, table: str, label: str) -> str:
    """Each ablation of ``group`` beside RAML (``reference``, at Table ``table``'s config and
    budget, I on mfeat, II on AV-MNIST-offline; ``label`` names the run): the complete test set,
    the subset average, and the paired one-sided test RAML > the ablation on the average. A
    point is one folder of packed seeds or one folder per seed (``report.point_stats``)."""
    subsets = _subsets(reference)
    if subsets is None:
        return EMPTY
    full = _all_views(subsets)

    def cells(point):
        return (report.point_stats(point, full, "accuracy"),
                report.point_stats(point, report.AVERAGE, "accuracy"))

    rows = [f"| table | variant | all views | Average ({len(subsets)} subsets) | RAML − variant, "
            "Average (points) | p (one-sided) | met at p < 0.05 |", "|---|---|---|---|---|---|---|"]
    raml_full, raml_avg = cells(reference)
    for paper_table, variant, name in T56_ROWS:
        var_full, avg = cells(group / name)
        if avg is None:
            continue
        test = report.paired_test(raml_avg, avg, "greater")
        rows.append(f"| {paper_table} | {variant} | {_pct(var_full)} | {_pct(avg)} | "
                    f"{_test_cells(test)} | {_met(test)} |")
    if len(rows) == 2:
        return EMPTY
    rows.append(f"| {table} | RAML (adaptive, all three terms, shared; {label}) | "
                f"{_pct(raml_full)} | {_pct(raml_avg)} | | | |")
    return "\n".join(rows)


# Table IV on AV-MNIST-offline at Table II's equal budget, 5 seeds (sweeps/t4_avmnist.txt): every
# method trained and tested on complete samples; the claims are T4_CLAIMS (RAML > each).
T4_ROWS = (("concat", "Concat"), ("tmc", "TMC"), ("md", "MD"), ("etmc", "ETMC"),
           ("raml_complete", "RAML, complete training only (batch 128, 300 steps)"))
T4_PAPER = {"concat": 70.60, "tmc": 72.42, "md": 74.12, "etmc": 76.55, "raml_complete": 78.13}


def t4_table(group: pathlib.Path) -> str:
    """Table IV: accuracy on the complete test set per method (the paper's Food-101 value beside
    it), then the paired one-sided tests of ``T4_CLAIMS``."""
    subsets = _subsets(group / "raml_complete")
    if subsets is None:
        return EMPTY
    full = _all_views(subsets)
    cells = {name: report.point_stats(group / name, full, "accuracy") for name, _ in T4_ROWS}
    rows = ["| method (38,400 training samples each) | complete test set | paper, Food-101 |",
            "|---|---|---|"]
    rows += [f"| {label} | {_pct(cells[name])} | {T4_PAPER[name]:.2f} |"
             for name, label in T4_ROWS if cells[name] is not None]
    rows += ["", "| claim | mean difference (points) | p (one-sided) | seeds | met at p < 0.05 |",
             "|---|---|---|---|---|"]
    for a, b in T4_CLAIMS:
        if cells[a] is None or cells[b] is None:
            continue
        test = report.paired_test(cells[a], cells[b], "greater")
        rows.append(f"| {a} > {b} | {_test_cells(test)} | {test.n} | {_met(test)} |")
    return "\n".join(rows)


# Figure 4 right at Table I's (mfeat) or Table II's (AV-MNIST-offline) equal budget, 5 seeds
# (sweeps/fig4r_<dataset>.txt): lambda_1 or lambda_2 varied with the other at RAML's default; the
# default point (1, 0.01) is Table I's `raml` on mfeat, the sweep's own `default` line on
# AV-MNIST-offline (one run per seed, as its other lines; Table II's run packs its seeds).
# (axis label, the sweep's name prefix, its values, the default's value)
FIG4R_AXES = (("λ1 (λ2 = 0.01)", "lambda1",
               ("0.2", "0.4", "0.6", "0.8", "1.0", "1.2", "1.4", "1.6"), "1.0"),
              ("λ2 (λ1 = 1)", "lambda2",
               ("0.002", "0.004", "0.006", "0.008", "0.01", "0.012", "0.014", "0.016"), "0.01"))
# The paper's reading of its curves ("Hyperparameter lambda_1 and lambda_2"): a small lambda_1
# hurts; lambda_1 is insensitive within 0.4-1.4; a small and a large lambda_2 both hurt. The
# values it says hurt are tested one-sided (the default > the value), lambda_1's insensitive range
# two-sided (no direction claimed; "no difference" is not a proof of equality).
FIG4R_BELOW = (("lambda1", "0.2"), ("lambda2", "0.002"), ("lambda2", "0.016"))
FIG4R_LEVEL = ("0.4", "0.6", "0.8", "1.2", "1.4")  # lambda_1's "insensitive" range, 1.0 aside


def fig4r_table(group: pathlib.Path, reference: pathlib.Path, label: str) -> str:
    """Figure 4 right as a table: the subset average at every lambda_1 and lambda_2 and, per
    value, the paired test against the default (``reference``, named ``label`` in its row):
    one-sided where the paper says the value hurts (``FIG4R_BELOW``), two-sided on lambda_1's
    insensitive range."""
    default = report.point_stats(reference, report.AVERAGE, "accuracy")
    if default is None:
        return EMPTY
    rows = [f"| axis | value | Average ({len(_subsets(reference))} subsets) | default − value "
            "(points) | p | the paper | met at p < 0.05 |", "|---|---|---|---|---|---|---|"]
    for axis, prefix, values, at_default in FIG4R_AXES:
        for value in values:
            if value == at_default:
                rows.append(f"| {axis} | {value} (default; {label}) | "
                            f"{_pct(default)} | | | | |")
                continue
            cell = report.point_stats(group / f"{prefix}_{value}", report.AVERAGE, "accuracy")
            if cell is None:
                continue
            claim = (prefix, value) in FIG4R_BELOW
            if not claim and not (prefix == "lambda1" and value in FIG4R_LEVEL):
                rows.append(f"| {axis} | {value} | {_pct(cell)} | | | | |")
                continue
            test = report.paired_test(default, cell, "greater" if claim else "two-sided")
            paper, met = (("lower", _met(test)) if claim else
                          ("level (two-sided)", "differs" if test.p < 0.05 else "no difference"))
            rows.append(f"| {axis} | {value} | {_pct(cell)} | {_test_cells(test)} | {paper} | "
                        f"{met} |")
    return "\n".join(rows) if len(rows) > 4 else EMPTY


# Figure 1 (sweeps/fig1_<dataset>.txt): each unimodal model on its own modality beside a concat
# model trained on complete samples (AV-MNIST-offline: Table IV's, mfeat: Table I's) tested on
# that modality alone; the paper's claim: the multimodal model fed imperfect data can fall below
# the unimodal models.
def fig1_table(group: pathlib.Path, concat: pathlib.Path) -> str:
    """Figure 1 as a table: per modality m (``concat``'s single-modality test subsets), the
    unimodal model on m alone and ``concat`` (trained on complete samples) on m alone, with the
    paired one-sided test unimodal > concat."""
    subsets = _subsets(concat)
    if subsets is None:
        return EMPTY
    rows = ["| test subset | unimodal model (trained on it alone) | concat (trained on complete "
            "samples) | unimodal − concat (points) | p (one-sided) | seeds | met at p < 0.05 |",
            "|---|---|---|---|---|---|---|"]
    for m in (s for s in subsets if "+" not in s):
        uni = report.point_stats(group / f"unimodal_{m}", m, "accuracy")
        multi = report.point_stats(concat, m, "accuracy")
        if uni is None or multi is None:
            continue
        test = report.paired_test(uni, multi, "greater")
        rows.append(f"| {m} alone | {_pct(uni)} | {_pct(multi)} | {_test_cells(test)} | "
                    f"{test.n} | {_met(test)} |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


# Tables II-III and Figure 5 at an equal budget, 5 seeds (run.sh stage t2: runs/raml/t2_<dataset>,
# one packed run of 5 seeds per method): the paper's claims, one-sided, paired by seed.
T2_GROUPS = {"mfeat": "t2_mfeat", "avmnist": "t2_avmnist"}
T2_CLAIMS = (("raml", "concat"), ("raml", "augmentation"))


def _both_cells(run: pathlib.Path) -> dict[str, report.Stats]:
    """corrupt_both.json's Table III cells as ``report.Stats`` with per-seed values."""
    r = _load(run / "corrupt_both.json")
    if r is None:
        return {}
    seed = json.loads((run / "config.json").read_text())["train"]["seed"]
    cells = {}
    for table, label in (("table3_noise", f"{r['noised']} σ = {{}} + {r['masked']} p = 0.1"),
                         ("table3_mask", f"{r['masked']} p = {{}} + {r['noised']} σ = 0.18")):
        for level, v in r[table].items():
            values = tuple(v["values"]) if "values" in v else None
            seeds = tuple(range(seed, seed + len(values))) if values else None
            cells[label.format(level)] = report.Stats(v["mean"], v["std"], int(v["n"]), values,
                                                      seeds)
    return cells


def _one_cells(run: pathlib.Path) -> dict[str, report.Stats]:
    """A run's Table II cells: clean, the first modality noised, the second masked."""
    result = report.load_result(run, CORRUPTION)
    if result is None:
        return {}
    mods = list(dict.fromkeys(k.split(" ")[0] for k in result["subsets"] if k != "clean"))
    keep = [k for k in result["subsets"]
            if k == "clean" or k.startswith((f"{mods[0]} noise", f"{mods[1]} mask"))]
    return {k: report.stats(result, k, "accuracy") for k in keep}


def _t2_cells(run: pathlib.Path) -> dict[str, report.Stats]:
    """A run's Table II and Table III cells."""
    return {**_one_cells(run), **_both_cells(run)}


def _weights_trend(run: pathlib.Path) -> list[tuple[str, report.Stats, report.Stats]]:
    """Figure 5's claim per seed: (what, weight at the strongest corruption, weight clean) for
    the noised first modality and the masked second one."""
    r = _load(run / "corrupt_both.json")
    if r is None or "noise_on_first_seeds" not in r.get("weights", {}):
        return []
    w, out = r["weights"], []
    for key, col, who, sym in (("noise_on_first_seeds", 0, r["noised"], "σ"),
                               ("mask_on_second_seeds", 1, r["masked"], "p")):
        levels = list(w[key])
        clean, worst = ([seed[col] for seed in w[key][lv]] for lv in (levels[0], levels[-1]))
        cells = [report.Stats(sum(v) / len(v), 0.0, len(v), tuple(v), tuple(range(len(v))))
                 for v in (worst, clean)]
        out.append((f"weight of {who} at {sym} = {levels[-1]} < at {sym} = {levels[0]}", *cells))
    return out


def t2_table(group: pathlib.Path, cells_of=_one_cells) -> str:
    """Table II (``_one_cells``) or III (``_both_cells``) of one 5-seed group: a row per
    method, a column per corruption."""
    cells = {m: cells_of(group / m) for m in ("concat", "augmentation", "raml")}
    cols = next((list(c) for c in cells.values() if c), None)
    if cols is None:
        return EMPTY
    rows = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    rows += [f"| {m} | " + " | ".join(_pct(c[k]) for k in cols) + " |"
             for m, c in cells.items() if c]
    return "\n".join(rows)


def t2_paired(group: pathlib.Path) -> str:
    """``report.paired_test`` of RAML > each baseline (one-sided) in every Table II-III column,
    and of Figure 5's trend (the corrupted modality's weight falls: worst < clean, one-sided)."""
    rows = ["| claim | column | mean difference (points) | p (one-sided) | seeds | met at "
            "p < 0.05 |", "|---|---|---|---|---|---|"]
    for a, b in T2_CLAIMS:
        ca, cb = _t2_cells(group / a), _t2_cells(group / b)
        for col in (c for c in ca if c in cb):
            test = report.paired_test(ca[col], cb[col], alternative="greater")
            rows.append(f"| {a} > {b} | {col} | {_test_cells(test)} | {test.n} | {_met(test)} |")
    for what, worst, clean in _weights_trend(group / "raml"):
        test = report.paired_test(worst, clean, alternative="less")
        rows.append(f"| Figure 5: {what} | mean fusion weight (x 100) | {_test_cells(test)} | "
                    f"{test.n} | {_met(test)} |")
    return "\n".join(rows) if len(rows) > 2 else EMPTY


def _sections(sections: list[tuple[str, str]]) -> list[str]:
    """Markdown lines of the (heading, table) pairs that have runs; a section without runs is
    left out, so a results.md regenerated from a partial ``results/`` holds only what it has."""
    return [line for heading, table in sections if table != EMPTY
            for line in (f"### {heading}", "", table, "")]


def main(runs: str = "runs/raml") -> None:
    """Prints results.md: every table of each dataset that has runs."""
    runs = report.runs_or_results(runs, "runs/raml", HERE / "results")
    parts = []
    for d, title in DATASETS.items():
        g = runs / d
        sections = [
            ("Table I protocol (every test subset)", subset_table(g, [(m, m) for m in TABLE1])),
            ("Table V: weighting (ablation length, see README)",
             subset_table(g / "abl", [("identical", "w_identical"),
                                      ("fixed element-wise", "w_fixed"),
                                      ("adaptive (RAML)", "raml")])),
            ("Table VI: loss terms (ablation length)",
             subset_table(g / "abl", [("L^M", "l_m"), ("L^M + L^D", "l_md"),
                                      ("L^M + L^U", "l_mu"),
                                      ("L^M + L^U + L^D (RAML)", "raml")])),
            ("Figure 4 left: shared vs separate predictors (ablation length)",
             subset_table(g / "abl", [("shared (RAML)", "raml"), ("separate", "separate")])),
            ("Table II protocol: one modality corrupted", table2(g)),
            ("Table III protocol: both modalities corrupted", table3(g)),
            ("Figure 5: mean fusion weights under corruption (3 seeds, 512 test samples, all "
             "elements)", weights_table(g))]
        t2 = runs / T2_GROUPS[d]
        sections += [
            ("Table II at an equal budget, 5 seeds (run.sh stage t2)", t2_table(t2)),
            ("Table III at an equal budget, 5 seeds", t2_table(t2, _both_cells)),
            ("Figure 5 at an equal budget: mean fusion weights, 5 seeds", weights_table(t2)),
            ("Paired t-tests of Tables II-III and Figure 5 across the 5 seeds", t2_paired(t2))]
        if d == "mfeat":
            sweep_dir = runs / "t1_mfeat"
            sections += [
                ("Tables I and IV at an equal budget, 5 seeds (sweeps/t1_mfeat.txt)",
                 sweep_table(sweep_dir)),
                ("Paired t-tests of Tables I and IV across the 5 seeds (one-sided unless marked)",
                 sweep_paired(sweep_dir)),
                ("Tables V, VI and Figure 4 left at an equal budget, 5 seeds "
                 "(sweeps/t56_mfeat.txt)", t56_table(runs / "t56_mfeat", sweep_dir / "raml", "I",
                                                    "Table I's `raml`")),
                ("Figure 4 right at an equal budget, 5 seeds (sweeps/fig4r_mfeat.txt)",
                 fig4r_table(runs / "fig4r_mfeat", sweep_dir / "raml", "Table I's `raml`")),
                ("Figure 1: unimodal models vs concat trained on complete samples, one view "
                 "alone at test, 5 seeds (sweeps/fig1_mfeat.txt)",
                 fig1_table(runs / "fig1_mfeat", sweep_dir / "concat"))]
        else:
            sections += [("Tables V, VI and Figure 4 left at an equal budget, 5 seeds "
                          "(sweeps/t56_avmnist.txt)",
                          # The reference in the ablations' layout (one run per seed; Table
                          # II's `raml` packs 5 seeds in one program, up to 0.07 points apart).
                          t56_table(runs / "t56_avmnist", runs / "fig4r_avmnist" / "default",
                                    "II", "sweeps/fig4r_avmnist.txt's `default`, one run per "
                                    "seed")),
                         ("Table IV at an equal budget, 5 seeds (sweeps/t4_avmnist.txt)",
                          t4_table(runs / "t4_avmnist")),
                         ("Figure 1: unimodal models vs concat trained on complete samples, one "
                          "modality missing at test, 5 seeds (sweeps/fig1_avmnist.txt)",
                          fig1_table(runs / "fig1_avmnist", runs / "t4_avmnist" / "concat")),
                         ("Figure 4 right at an equal budget, 5 seeds (sweeps/fig4r_avmnist.txt)",
                          fig4r_table(runs / "fig4r_avmnist", runs / "fig4r_avmnist" / "default",
                                      "this sweep's `default`"))]
        lines = _sections(sections)
        if lines:
            parts += [f"## {title}", "", *lines]
    print("\n".join(parts))


if __name__ == "__main__":
    main(*sys.argv[1:2])
