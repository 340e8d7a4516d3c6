"""Prints the tables of experiments/redcore/README.md from the runs, and draws the PNG plots.

Usage: python experiments/redcore/make_table.py [RUNS_DIR]   (default runs/redcore; when it holds
no run, the committed copy experiments/redcore/results, written by ``mmjax report runs/redcore
--export experiments/redcore/results --columns 'loss,ra_*,eta_*'``)

Reads ``eval.json`` (weighted F1 per test subset, mean and std over the seed replicas) and
``metrics.jsonl`` (relative advantages r_m, eta_m and the spread max_m r_m - min_m r_m logged from
the training step, each averaged over the seed replicas; ``metrics-replicas.jsonl``: the same
per seed, for the paired tests of the spread) through ``mmjax.report``. A run that has
not finished is left out. Figure 5(c)'s test curves come from ``results/curves_mfeat.json``
(curves.py), whatever RUNS_DIR is.
Plots go next to this file: fig3_mfeat.png, fig5_mfeat.png, fig5c_mfeat.png, ra_spread_mfeat.png,
fig5_avmnist.png.
"""

import json
import pathlib
import sys

import numpy as np

from mmjax import report

HERE = pathlib.Path(__file__).resolve().parent
VIEWS = ("fou", "kar", "zer")
ASSIGN = ("sml", "msl", "lms", "lsm", "slm", "mls")  # Table 2's column order
RATE = {"l": 0.8, "m": 0.5, "s": 0.2}
METHODS = (("augmentation", "concat + augmentation"), ("core", "Core"), ("red", "Red"),
           ("redcore", "RedCore"))
# The paper's comparators run in the imbalanced protocol only (sweeps/imb_mfeat_baselines.txt).
BASELINES = (("mmin", "MMIN"), ("cra", "CRA + concat"))
LABELS = dict(METHODS + BASELINES)
# Table 2 of the paper (IEMOCAP, average F1 over the 7 subsets), same column order.
PAPER_T2 = {"core": (0.5696, 0.5599, 0.5653, 0.5534, 0.5481, 0.5651),
            "red": (0.5793, 0.5708, 0.5894, 0.5831, 0.5853, 0.5849),
            "redcore": (0.5999, 0.6109, 0.6017, 0.5921, 0.5993, 0.5950)}
SUBSETS3 = ("fou", "kar", "zer", "fou+kar", "fou+zer", "kar+zer", "fou+kar+zer")


def _avg(result) -> report.Stats:
    return report.stats(result, report.AVERAGE, "weighted_f1")


def _cell(cell: report.Stats) -> str:
    """mean ± std in %, the mean alone for one seed."""
    return report.fmt(cell, scale=100, digits=2)


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def _sweep_of(name: str, sweep: str) -> str:
    """The sweep folder that holds method ``name`` in protocol ``sweep``: the comparators (MMIN,
    CRA) have their own twin, ``<sweep>_baselines``."""
    return f"{sweep}_baselines" if name in dict(BASELINES) else sweep


def imb_run(runs: pathlib.Path, a: str, name: str, sweep: str | None = None) -> pathlib.Path:
    """The folder of method ``name`` at assignment ``a`` in the ``imb`` sweep (its seeds' slot,
    ``<name>/missing.rates-0.8_0.2_0.5/train.seed-0..4``; the baselines' own sweep for MMIN and
    CRA), or in ``sweep`` (the same layout); a missing one if it has not run."""
    sweep = sweep or _sweep_of(name, "imb_mfeat")
    rates = "_".join(str(RATE[c]) for c in a)
    return report.seed_slot(runs / sweep / name / f"missing.rates-{rates}")


def seeds(runs: pathlib.Path) -> int | str:
    """The seed replicas of the imb sweep's RedCore runs ("?" before any has finished)."""
    result = report.load_result(imb_run(runs, ASSIGN[0], "redcore"))
    return "?" if result is None else result["num_seeds"]


def rates_label(a: str) -> str:
    """``"lsm"`` -> ``"(0.8, 0.2, 0.5)"``: the missing rates of an assignment."""
    return "(" + ", ".join(f"{RATE[c]}" for c in a) + ")"


def table_imbalanced(runs: pathlib.Path) -> str:
    """Table 2 protocol: the average over the 7 subsets per rate assignment, and the paper's."""
    head = "| method | " + " | ".join(f"{a[0]},{a[1]},{a[2]} {rates_label(a)}" for a in ASSIGN)
    rows = [head + " | mean of the six |", "|---" * (len(ASSIGN) + 2) + "|"]
    for name, label in METHODS + BASELINES:
        cells, means = [], []
        for a in ASSIGN:
            result = report.load_result(imb_run(runs, a, name))
            if result is None:
                cells.append("-")
                continue
            means.append(_avg(result).mean)
            cells.append(_cell(_avg(result)))
        mean = (_pct(float(np.mean(means))) + ("" if len(means) == 6 else f" ({len(means)}/6)")
                if means else "-")
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {mean} |")
    for name, label in METHODS[1:]:
        paper = PAPER_T2[name]
        rows.append(f"| paper {label} (IEMOCAP) | " + " | ".join(_pct(v) for v in paper)
                    + f" | {_pct(float(np.mean(paper)))} |")
    return "\n".join(rows)


def table_subsets(runs: pathlib.Path) -> str:
    """Table 1 protocol: each test subset, mean over the six assignments."""
    rows = ["| test subset | " + " | ".join(label for _, label in METHODS + BASELINES) + " |",
            "|---" * (len(METHODS + BASELINES) + 1) + "|"]
    for subset in SUBSETS3 + ("average",):
        cells = []
        for name, _ in METHODS + BASELINES:
            vals = []
            for a in ASSIGN:
                result = report.load_result(imb_run(runs, a, name))
                if result is not None:
                    vals.append(report.stats(result, subset, "weighted_f1").mean)
            cells.append(_pct(float(np.mean(vals))) if vals else "-")
        rows.append(f"| {subset} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# The paper's claims on Table 2 (RedCore > Red > Core) and Figure 4 (RedCore above every
# comparator), each one-sided in the paper's direction.
CLAIMS = (("redcore", "core"), ("redcore", "red"), ("red", "core"), ("redcore", "augmentation"),
          ("redcore", "mmin"), ("redcore", "cra"))
# Its claims on Table 1 (RedCore above MMIN in every test subset) and those these runs can add.
CLAIMS_VS = (("redcore", "mmin"), ("redcore", "core"), ("redcore", "augmentation"),
             ("redcore", "cra"))
# Figure 3's claims: RedCore above Core, augmentation and the comparators at every shared rate.
CLAIMS_FIG3 = (("redcore", "core"), ("redcore", "augmentation"), ("redcore", "mmin"),
               ("redcore", "cra"))
# Figure 3's curves: the paper's RedCore, Core and augmentation beside its comparators.
FIG3_METHODS = (("augmentation", "concat + augmentation"), ("core", "Core"),
                ("redcore", "RedCore"), *BASELINES)


def _f1(run_dir: pathlib.Path, condition: str = report.AVERAGE) -> report.Stats | None:
    """The weighted F1 of one condition (default the average) of a run; None if unfinished."""
    result = report.load_result(run_dir)
    return None if result is None else report.stats(result, condition, "weighted_f1")


def _greater(pairs: list[tuple[report.Stats, report.Stats]]) -> report.Paired | None:
    """``report.paired_test`` (one-sided, a > b) over the seeds of the runs ``pairs`` pooled
    (``report.pool``: each (run, seed) one pair); None when there is no run."""
    if not pairs:
        return None
    a, b = (report.pool([pair[i] for pair in pairs]) for i in (0, 1))
    return report.paired_test(a, b, alternative="greater")


def _fmt_test(test: report.Paired | None, runs: int) -> str:
    """``+d (p P)``: the mean difference in points and p, with the number of pairs when the
    test pools several runs."""
    if test is None:
        return "-"
    return f"{100 * test.diff:+.2f} (p {test.p:.2g}{f', {test.n}' if runs > 1 else ''})"


def paired_table(claims, cols, cells, pooled: str | None = None) -> str:
    """Paired t-tests across seeds, one-sided in the paper's direction (a > b): a row per claim
    (a, b) of ``claims``, a cell per column of ``cols`` with the mean difference a - b in points
    and p.

    ``cells(name, col)``: the weighted F1 cells (``report.Stats`` with per-seed values, None for
    an unfinished run) of method ``name`` that column ``col`` pools, one per run; a run counts
    where both methods finished. With ``pooled`` (its header) a further column pools the pairs
    of every column and says whether the claim is met at p < 0.05; without, the last column
    names the columns where it is met (yes / no for a single column)."""
    tail = f" | {pooled} | met at p < 0.05 |" if pooled else " | met at p < 0.05 |"
    rows = ["| claim | " + " | ".join(cols) + tail,
            "|---" * (len(cols) + (3 if pooled else 2)) + "|"]
    for a_name, b_name in claims:
        cells_out, every, met = [], [], []
        for col in cols:
            pairs = [(x, y) for x, y in zip(cells(a_name, col), cells(b_name, col))
                     if x is not None and y is not None]
            test = _greater(pairs)
            every += pairs
            cells_out.append(_fmt_test(test, len(pairs)))
            if test is not None and test.p < 0.05:
                met.append(col)
        if pooled:
            test = _greater(every)
            last = [_fmt_test(test, len(every)),
                    "-" if test is None else ("yes" if test.p < 0.05 else "no")]
        elif len(cols) == 1:
            last = ["yes" if met else "no"]
        else:
            last = [f"in {', '.join(met)} ({len(met)} of {len(cols)})" if met
                    else f"in none of {len(cols)}"]
        rows.append(f"| {LABELS[a_name]} > {LABELS[b_name]} | "
                    + " | ".join(cells_out + last) + " |")
    return "\n".join(rows)


def table_paired(runs: pathlib.Path) -> str:
    """Table 2 protocol: paired tests of the average weighted F1 per assignment (5 pairs) and
    pooled over the six (each (assignment, seed) one pair)."""
    return paired_table(CLAIMS, ASSIGN, lambda n, a: [_f1(imb_run(runs, a, n))],
                        "all six (pairs)")


def table_paired_subsets(runs: pathlib.Path) -> str:
    """Table 1 protocol: paired tests per test subset and of the average, each (assignment,
    seed) one pair (30 pairs a cell)."""
    return paired_table(CLAIMS_VS, SUBSETS3 + (report.AVERAGE,),
                        lambda n, s: [_f1(imb_run(runs, a, n), s) for a in ASSIGN])


# The released code's mask rows (sweeps/imb_mfeat_position.txt): the same protocol with
# missing.mask_rows=position, a sample getting another row of the mask every epoch.
POSITION = "imb_mfeat_position"


def table_mask_rows(runs: pathlib.Path) -> str:
    """Per method: the six assignments' average weighted F1 with each sample's own mask row
    (the imb sweep) and with the released position rows, and the two-sided paired test of the
    difference over the (assignment, seed) pairs; then RedCore > augmentation with position
    rows, one-sided."""
    rows = ["| method | own row (imb sweep) | position rows (released) | position − own "
            "(points, two-sided p, pairs) |", "|---|---|---|---|"]
    names = ("redcore", "augmentation")
    position = {n: [_f1(imb_run(runs, a, n, POSITION)) for a in ASSIGN] for n in names}
    for name in names:
        pairs = [(x, y) for x, y in zip(position[name], (_f1(imb_run(runs, a, name))
                                                         for a in ASSIGN))
                 if x is not None and y is not None]
        if not pairs:
            continue
        x, y = (report.pool([pair[i] for pair in pairs]) for i in (0, 1))
        test = report.paired_test(x, y, alternative="two-sided")
        rows.append(f"| {LABELS[name]} | {_cell(y)} | {_cell(x)} | "
                    f"{100 * test.diff:+.2f} (p {report.p_text(test)}, {test.n}) |")
    if len(rows) == 2:
        return "(no runs yet)"
    test = _greater([(x, y) for x, y in zip(*position.values())
                     if x is not None and y is not None])
    if test is not None:
        rows += ["", "RedCore > concat + augmentation with position rows (one-sided, each "
                 f"(assignment, seed) one pair): {_fmt_test(test, 2)}"]
    return "\n".join(rows)


def _tail_mean(rows, frac=0.1, key="ra_spread"):
    """Mean of ``key`` (default ``ra_spread``) over the last ``frac`` of the logged rows (end of
    training); None without rows."""
    if not rows:
        return None
    k = max(1, int(len(rows) * frac))
    return float(np.mean([r[key] for r in rows[-k:]]))


def table_spread(runs: pathlib.Path) -> str:
    """The end-of-training spread of the relative advantages per assignment."""
    rows = ["| method | " + " | ".join(ASSIGN) + " | mean |", "|---" * (len(ASSIGN) + 2) + "|"]
    for name, label in METHODS[1:]:
        vals = [_tail_mean(report.load_metrics(imb_run(runs, a, name))) for a in ASSIGN]
        done = [v for v in vals if v is not None]
        rows.append(f"| {label} | " + " | ".join("-" if v is None else f"{v:.3f}" for v in vals)
                    + f" | {np.mean(done):.3f} |" if done else f"| {label} | - |")
    return "\n".join(rows)


def _spread_per_seed(run_dir: pathlib.Path, frac=0.1) -> report.Stats | None:
    """Each seed's end-of-training spread: its ``ra_spread`` averaged over the last ``frac`` of
    the point's ``metrics-replicas.jsonl`` rows (one value per seed a row; seeds 0..n-1 as in
    the F1 cells); None where the point has no such file (exported before sweeps wrote it)."""
    rows = report.load_metrics(run_dir, report.PER_REPLICA_LOG)
    if not rows:
        return None
    k = max(1, int(len(rows) * frac))
    values = np.mean([r["ra_spread"] for r in rows[-k:]], axis=0)
    return report.Stats.of(values, range(len(values)))


# Figure 5's claim: the regulation of eta narrows the spread of the relative advantages (each
# pair (a, b): a's spread > b's, one-sided).
CLAIMS_SPREAD = (("core", "redcore"), ("core", "red"))


def table_paired_spread(runs: pathlib.Path) -> str:
    """Figure 5: paired tests of the end-of-training spread per assignment (5 pairs) and pooled
    over the six (30 pairs), with the ratio of the pooled means."""
    rows = ["| claim | " + " | ".join(ASSIGN) + " | all six (pairs) | ratio of means | met at "
            "p < 0.05 |", "|---" * (len(ASSIGN) + 4) + "|"]
    for a_name, b_name in CLAIMS_SPREAD:
        cells, every = [], []
        for a in ASSIGN:
            pair = [_spread_per_seed(imb_run(runs, a, n)) for n in (a_name, b_name)]
            if None in pair:
                cells.append("-")
                continue
            every.append(pair)
            test = report.paired_test(*pair, alternative="greater")
            cells.append(f"{test.diff:+.3f} (p {test.p:.2g})")
        if not every:
            continue
        a_cell, b_cell = (report.pool([pair[i] for pair in every]) for i in (0, 1))
        test = report.paired_test(a_cell, b_cell, alternative="greater")
        rows.append(f"| {LABELS[b_name]} narrower than {LABELS[a_name]} | " + " | ".join(cells)
                    + f" | {test.diff:+.3f} (p {test.p:.2g}, {test.n}) | "
                    f"{a_cell.mean / b_cell.mean:.1f}x | {'yes' if test.p < 0.05 else 'no'} |")
    return "\n".join(rows)


def fig3_rates(runs: pathlib.Path) -> list[str]:
    """The shared missing rates of the fig3 sweep (``<name>/missing.rates-r_r_r``), ascending."""
    return sorted({p.name.removeprefix("missing.rates-").split("_")[0]
                   for p in (runs / "fig3_mfeat").glob("*/missing.rates-*")}, key=float)


def fig3_run(runs: pathlib.Path, name: str, r: str) -> pathlib.Path:
    """The folder of method ``name`` at shared rate ``r`` in the fig3 sweeps (its seeds' slot);
    the comparators have their own sweep (``fig3_mfeat_baselines``)."""
    point = runs / _sweep_of(name, "fig3_mfeat") / name / f"missing.rates-{r}_{r}_{r}"
    return report.seed_slot(point)


def table_fig3(runs: pathlib.Path) -> tuple[str, dict]:
    """Figure 3 protocol as a table, and its curves {method: [(rate, mean, std)]}."""
    names = FIG3_METHODS
    curves = {n: [] for n, _ in names}
    rows = ["| shared missing rate | " + " | ".join(label for _, label in names) + " |",
            "|---" * (len(names) + 1) + "|"]
    for r in fig3_rates(runs):
        cells = []
        for n, _ in names:
            result = report.load_result(fig3_run(runs, n, r))
            if result is None:
                cells.append("-")
                continue
            curves[n].append((float(r), _avg(result).mean, _avg(result).std))
            cells.append(_cell(_avg(result)))
        rows.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(rows), curves


def table_paired_fig3(runs: pathlib.Path) -> str:
    """Figure 3 protocol: paired tests of the average weighted F1 per shared rate (5 pairs) and
    pooled over the rates (each (rate, seed) one pair)."""
    rates = fig3_rates(runs)
    return paired_table(CLAIMS_FIG3, rates, lambda n, r: [_f1(fig3_run(runs, n, r))],
                        f"all {len(rates)} rates (pairs)")


# AV-MNIST-offline (run.sh part av): the two assignments of (l, s) = (0.8, 0.2) to (image,
# audio), as the sweep names them; one run folder per seed (``<name>/missing.rates-0.8_0.2/
# train.seed-0``, ...).
AV_SETTINGS = ("0.8_0.2", "0.2_0.8")
AV_SUBSETS = ("image", "audio", "image+audio")
AV = "imb_avmnist"
# The diagnostic beside it (run.sh part av_bernoulli): Bernoulli masks (missing.exact=false) at
# (0.8, 0.2), which leave ~16 % complete training pairs where the protocol's exact counts leave
# none; the same grid file and seeds.
AV_BERNOULLI = "imb_avmnist_bernoulli"


def av_point(runs: pathlib.Path, setting: str, name: str, sweep: str = AV) -> pathlib.Path:
    """The sweep point of method ``name`` at (image, audio) rates ``setting`` (``"0.8_0.2"``);
    the comparators' points are in the sweep's ``_baselines`` twin."""
    return runs / _sweep_of(name, sweep) / name / f"missing.rates-{setting}"


def _av_f1(runs: pathlib.Path, setting: str, name: str, condition: str = report.AVERAGE,
           sweep: str = AV) -> report.Stats | None:
    """The weighted F1 of one test subset (default the average) pooled over the point's seed
    folders; None until every seed finished."""
    return report.point_stats(av_point(runs, setting, name, sweep), condition, "weighted_f1")


def _av_logs(runs: pathlib.Path, setting: str, name: str) -> list[tuple[int, list[dict]]]:
    """Each seed folder's (``train.seed``, ``metrics.jsonl`` rows) of a point, by folder; [] until
    every seed has logged."""
    logs = []
    for folder in sorted(av_point(runs, setting, name).glob(f"{report.SEED_SLOT}*")):
        rows = report.load_metrics(folder)
        if not rows:
            return []
        logs.append((json.loads((folder / "config.json").read_text())["train"]["seed"], rows))
    return logs


def _av_tail(runs: pathlib.Path, setting: str, name: str, key: str,
             frac=0.1) -> report.Stats | None:
    """Each seed's ``key`` (e.g. ``ra_spread``) averaged over the last ``frac`` of its logged
    steps, as ``report.Stats``; None until every seed has logged."""
    logs = _av_logs(runs, setting, name)
    if not logs:
        return None
    values = [_tail_mean(rows, frac, key) for _, rows in logs]
    return report.Stats.of(values, [seed for seed, _ in logs])


def table_avmnist(runs: pathlib.Path) -> str:
    """AV-MNIST-offline, both rate settings: each subset and the average, with the seed count."""
    head = "| method | " + " | ".join(
        f"{s.replace('_', ', ')}: {sub}" for s in AV_SETTINGS for sub in AV_SUBSETS + ("avg",))
    rows = [head + " | seeds |", "|---" * (len(AV_SETTINGS) * 4 + 2) + "|"]
    for name, label in METHODS + BASELINES:
        cells, n = [], "-"
        for s in AV_SETTINGS:
            average = _av_f1(runs, s, name)
            if average is None:
                cells += ["-"] * 4
                continue
            cells += [_cell(_av_f1(runs, s, name, sub)) for sub in AV_SUBSETS] + [_cell(average)]
            n = average.n
        rows.append(f"| {label} | " + " | ".join(cells) + f" | {n} |")
    return "\n".join(rows)


def table_paired_avmnist(runs: pathlib.Path) -> str:
    """Paired tests of the average weighted F1 per setting (5 pairs) and pooled over both."""
    cols = tuple(s.replace("_", ", ") for s in AV_SETTINGS)
    return paired_table(CLAIMS, cols,
                        lambda n, c: [_av_f1(runs, c.replace(", ", "_"), n)],
                        "both settings (pairs)")


def table_avmnist_bernoulli(runs: pathlib.Path) -> str:
    """The Bernoulli-mask diagnostic at (0.8, 0.2): each subset and the average per method with
    its gain over the protocol masks (same seeds, one-sided p of Bernoulli > protocol), then the
    paper's claims on these masks (paired one-sided tests)."""
    setting = AV_SETTINGS[0]
    rows = ["| method | " + " | ".join(AV_SUBSETS) + " | avg | avg minus the protocol masks' "
            "(p) | seeds |", "|---" * (len(AV_SUBSETS) + 4) + "|"]
    for name, label in METHODS:
        average = _av_f1(runs, setting, name, sweep=AV_BERNOULLI)
        protocol = _av_f1(runs, setting, name)
        if average is None:
            continue
        gain = "-" if protocol is None else _fmt_test(
            report.paired_test(average, protocol, alternative="greater"), 1)
        rows.append(f"| {label} | " + " | ".join(
            _cell(_av_f1(runs, setting, name, sub, AV_BERNOULLI)) for sub in AV_SUBSETS)
            + f" | {_cell(average)} | {gain} | {average.n} |")
    claims = paired_table(CLAIMS[:4], [setting.replace("_", ", ")],
                          lambda n, c: [_av_f1(runs, setting, n, sweep=AV_BERNOULLI)])
    return "\n".join(rows) + "\n\n" + claims


def table_avmnist_spread(runs: pathlib.Path) -> str:
    """End-of-training r spread (= 2 |r_image|, eq. 8 with two modalities) and eta, per setting
    (means over the seeds), then the paired one-sided tests of Figure 5's claim (Core's spread
    above RedCore's and Red's), per setting and pooled."""
    keys = ("ra_spread", "eta_image", "eta_audio")
    rows = ["| rates (image, audio) | method | max r - min r | eta_image | eta_audio |",
            "|---|---|---|---|---|"]
    for setting in AV_SETTINGS:
        for name, label in METHODS[1:]:
            tail = [_av_tail(runs, setting, name, k) for k in keys]
            if None not in tail:
                rows.append(f"| ({setting.replace('_', ', ')}) | {label} | "
                            + " | ".join(f"{t.mean:.3f}" for t in tail) + " |")
    rows += ["", "| claim | " + " | ".join(s.replace("_", ", ") for s in AV_SETTINGS)
             + " | both settings (pairs) | met at p < 0.05 |",
             "|---" * (len(AV_SETTINGS) + 3) + "|"]
    for a_name, b_name in CLAIMS_SPREAD:
        pairs = [[_av_tail(runs, s, n, "ra_spread") for n in (a_name, b_name)]
                 for s in AV_SETTINGS]
        if any(None in pair for pair in pairs):
            continue
        tests = [report.paired_test(*pair, alternative="greater") for pair in pairs]
        pooled = report.paired_test(*(report.pool([pair[i] for pair in pairs]) for i in (0, 1)),
                                    alternative="greater")
        rows.append(f"| {LABELS[b_name]} narrower than {LABELS[a_name]} | " + " | ".join(
            f"{t.diff:+.3f} (p {t.p:.2g})" for t in tests) + f" | {pooled.diff:+.3f} (p "
            f"{pooled.p:.2g}, {pooled.n}) | {'yes' if pooled.p < 0.05 else 'no'} |")
    return "\n".join(rows)


def plot_avmnist(runs: pathlib.Path, plt) -> list[str]:
    """Figure 5 on AV-MNIST-offline, rates (image, audio) = (0.8, 0.2): r_image and eta_m, the
    mean over the seeds at each logged step."""
    def mean_curve(name: str, key: str):
        found = [rows for _, rows in _av_logs(runs, "0.8_0.2", name)]
        if not found:
            return None
        n = min(len(rows) for rows in found)
        return ([r["step"] for r in found[0][:n]],
                np.mean([[r[key] for r in rows[:n]] for rows in found], axis=0))

    if mean_curve("redcore", "ra_image") is None:
        return []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for n, label in METHODS[1:]:
        if (found := mean_curve(n, "ra_image")) is not None:
            axes[0].plot(*found, label=label)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_title("relative advantage r_image (r_audio = -r_image)")
    axes[0].set_xlabel("step")
    axes[0].legend()
    for m, rate in (("image", 0.8), ("audio", 0.2)):
        axes[1].plot(*mean_curve("redcore", f"eta_{m}"), label=f"{m} (missing {rate})")
    axes[1].set_title("RedCore: supervision eta_m")
    axes[1].set_xlabel("step")
    axes[1].legend()
    fig.suptitle("AV-MNIST-offline, missing rates (image, audio) = (0.8, 0.2), mean of the seeds")
    fig.tight_layout()
    fig.savefig(HERE / "fig5_avmnist.png", dpi=90)
    plt.close(fig)
    return ["fig5_avmnist.png"]


# Figure 5(c): test accuracy / weighted F1 over training at rates (0.8, 0.2, 0.5), per seed
# (run.sh part curves; curves.py wrote results/curves_mfeat.json from the runs' checkpoints).
CURVES = HERE / "results" / "curves_mfeat.json"
CURVE_METRICS = (("weighted_f1", "weighted F1"), ("accuracy", "accuracy"))


def _curve_cell(run: dict, metric: str, reduce) -> report.Stats:
    """Per seed, ``reduce`` (e.g. the mean over the checkpoints) of one run's curve of
    ``metric``, as ``report.Stats`` for the paired tests."""
    return report.Stats.of((reduce(col) for col in np.asarray(run[metric]).T), run["seeds"])


def table_curves() -> str:
    """Figure 5(c) as numbers: per method the final value and the mean over the curve (the
    area under it over its length), then the paired one-sided tests of RedCore above Core and
    Red on the mean over the curve, each seed one pair."""
    if not CURVES.is_file():
        return "(no runs yet)"
    doc = json.loads(CURVES.read_text())
    names = [n for n, _ in METHODS[1:] if n in doc]
    steps = doc[names[0]]["steps"]
    rows = [f"Checkpoints every {steps[1] - steps[0]} steps, {steps[0]}-{steps[-1]}; "
            f"{len(doc[names[0]]['seeds'])} seeds.", "",
            "| method | " + " | ".join(f"{lab} at step {steps[-1]} | mean {lab} over the curve"
                                      for _, lab in CURVE_METRICS) + " |",
            "|---" * (2 * len(CURVE_METRICS) + 1) + "|"]
    for n in names:
        cells = [_cell(_curve_cell(doc[n], m, f)) for m, _ in CURVE_METRICS
                 for f in (lambda c: c[-1], np.mean)]
        rows.append(f"| {LABELS[n]} | " + " | ".join(cells) + " |")
    rows += ["", "| claim (mean over the curve) | " + " | ".join(lab for _, lab in CURVE_METRICS)
             + " |", "|---" * (len(CURVE_METRICS) + 1) + "|"]
    for a, b in (("redcore", "core"), ("redcore", "red")):
        if a in doc and b in doc:
            tests = [report.paired_test(_curve_cell(doc[a], m, np.mean),
                                        _curve_cell(doc[b], m, np.mean), "greater")
                     for m, _ in CURVE_METRICS]
            rows.append(f"| {LABELS[a]} > {LABELS[b]} | " + " | ".join(
                _fmt_test(t, 1) + (" yes" if t.p < 0.05 else " no") for t in tests) + " |")
    return "\n".join(rows)


def plot_curves(plt) -> list[str]:
    """fig5c_mfeat.png: Figure 5(c), mean ± std over the seeds of each method's test curves."""
    if not CURVES.is_file():
        return []
    doc = json.loads(CURVES.read_text())
    fig, axes = plt.subplots(1, len(CURVE_METRICS), figsize=(11, 4))
    for ax, (metric, label) in zip(axes, CURVE_METRICS):
        for n, lab in METHODS[1:]:
            if n in doc:
                values = 100 * np.asarray(doc[n][metric])
                mean, std = values.mean(1), values.std(1, ddof=1)
                ax.plot(doc[n]["steps"], mean, label=lab)
                ax.fill_between(doc[n]["steps"], mean - std, mean + std, alpha=0.2)
        ax.set_xlabel("step")
        ax.set_ylabel(f"test {label} (%), mean of 7 subsets")
        ax.legend()
    fig.suptitle(f"mfeat (fou, kar, zer), missing rates {rates_label('lsm')}, mean ± std of "
                 f"{len(doc[next(iter(doc))]['seeds'])} seeds")
    fig.tight_layout()
    fig.savefig(HERE / "fig5c_mfeat.png", dpi=90)
    plt.close(fig)
    return ["fig5c_mfeat.png"]


def plots(runs: pathlib.Path, curves: dict) -> list[str]:
    """Figures 3 and 5 on mfeat, the r-spread curves, Figure 5 on AV-MNIST; the files made."""
    plt = report.pyplot()
    made = []
    # Figure 5: r_m over training, Core vs RedCore, rates (l, s, m) as the paper's (0.8, 0.2, 0.5).
    a = "lsm"
    found = {n: report.load_metrics(imb_run(runs, a, n)) for n in ("core", "redcore")}
    if all(found.values()):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        for ax, (n, title) in zip(axes, (("core", "Core"), ("redcore", "RedCore"))):
            rows = found[n]
            steps = [r["step"] for r in rows]
            for v, rate in zip(VIEWS, a):
                ax.plot(steps, [r[f"ra_{v}"] for r in rows], label=f"{v} (missing {RATE[rate]})")
            ax.axhline(0, color="k", lw=0.5)
            ax.set_title(f"{title}: relative advantage r_m")
            ax.set_xlabel("step")
            ax.legend()
        rows = found["redcore"]
        for v, rate in zip(VIEWS, a):
            axes[2].plot([r["step"] for r in rows], [r[f"eta_{v}"] for r in rows],
                         label=f"{v} (missing {RATE[rate]})")
        axes[2].set_title("RedCore: supervision eta_m")
        axes[2].set_xlabel("step")
        axes[2].legend()
        fig.suptitle(f"mfeat (fou, kar, zer), missing rates {rates_label(a)}, "
                     f"mean of {seeds(runs)} seeds")
        fig.tight_layout()
        fig.savefig(HERE / "fig5_mfeat.png", dpi=90)
        plt.close(fig)
        made.append("fig5_mfeat.png")
    # Spread of r over training, all assignments, Core vs Red vs RedCore.
    fig, axes = plt.subplots(2, 3, figsize=(15, 7), sharey=True)
    any_rows = False
    for ax, a in zip(axes.ravel(), ASSIGN):
        for n, label in METHODS[1:]:
            rows = report.load_metrics(imb_run(runs, a, n))
            if rows:
                any_rows = True
                ax.plot([r["step"] for r in rows], [r["ra_spread"] for r in rows], label=label)
        ax.set_title(f"{a} {rates_label(a)}")
        ax.set_xlabel("step")
        if ax.lines:
            ax.legend()
    axes[0, 0].set_ylabel("max r_m - min r_m")
    fig.tight_layout()
    if any_rows:
        fig.savefig(HERE / "ra_spread_mfeat.png", dpi=80)
        made.append("ra_spread_mfeat.png")
    plt.close(fig)
    # Figure 3: average weighted F1 vs shared missing rate.
    if any(curves.values()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for n, label in FIG3_METHODS:
            if curves[n]:
                r, m, s = map(np.array, zip(*curves[n]))
                ax.errorbar(r, 100 * m, yerr=100 * s, label=label, capsize=3)
        ax.set_xlabel("shared training missing rate")
        ax.set_ylabel("weighted F1 (%), mean of 7 subsets")
        ax.set_title(f"mfeat (fou, kar, zer), {seeds(runs)} seeds")
        ax.legend()
        fig.tight_layout()
        fig.savefig(HERE / "fig3_mfeat.png", dpi=90)
        plt.close(fig)
        made.append("fig3_mfeat.png")
    made += plot_curves(plt)
    made += plot_avmnist(runs, plt)
    return made


def main(runs: str = "runs/redcore") -> None:
    """Prints results.md's tables, each under its heading, and draws the plots next to this
    file."""
    runs = report.runs_or_results(runs, "runs/redcore", HERE / "results")
    fig3, curves = table_fig3(runs)
    sections = (
        ("### Imbalanced missing rates, mfeat views (fou, kar, zer): average over the 7 test "
         "subsets (Table 2 protocol)\n\nColumns: which view gets which rate, l = 0.8, m = 0.5, "
         "s = 0.2, in the order (fou, kar, zer); the paper's rows are (A, V, L) on IEMOCAP.",
         table_imbalanced(runs)),
        ("### Paired tests across seeds, average weighted F1: the mean difference a - b in "
         "points, one-sided p (a > b)", table_paired(runs)),
        ("### Per test subset, mean over the six assignments (Table 1 protocol)",
         table_subsets(runs)),
        ("### Paired tests per test subset (Table 1 protocol), weighted F1: the mean difference "
         "a - b in points, one-sided p (a > b), each (assignment, seed) one pair",
         table_paired_subsets(runs)),
        ("### Spread of relative advantages at the end of training (max_m r_m - min_m r_m, "
         "mean over the last 10% of logged steps and over seeds)", table_spread(runs)),
        ("### Paired tests of the spread across seeds (Figure 5): the mean difference of the "
         "spreads a - b, one-sided p (a > b), each (assignment, seed) one pair",
         table_paired_spread(runs)),
        ("### Learning curves (Figure 5(c)), rates (fou, kar, zer) = (0.8, 0.2, 0.5): test "
         "metrics at every checkpoint, averaged over the 7 subsets", table_curves()),
        ("### The released code's mask rows (missing.mask_rows=position), Table 2 protocol: "
         "average weighted F1 over the six assignments and the 7 subsets", table_mask_rows(runs)),
        ("### Shared missing rate (Figure 3 protocol), mfeat views (fou, kar, zer), average "
         "over the 7 subsets", fig3),
        ("### Paired tests across seeds (Figure 3 protocol), average weighted F1: the mean "
         "difference a - b in points, one-sided p (a > b)", table_paired_fig3(runs)),
        ("### AV-MNIST-offline, rates (image, audio): each test subset and the average",
         table_avmnist(runs)),
        ("Paired tests across seeds (AV-MNIST-offline), average weighted F1: the mean "
         "difference a - b in points, one-sided p (a > b)", table_paired_avmnist(runs)),
        ("Diagnostic (not the protocol): Bernoulli masks at rates (image, audio) = (0.8, 0.2), "
         "~16% complete training pairs; the paired tests one-sided (a > b)",
         table_avmnist_bernoulli(runs)),
        ("Relative advantages on AV-MNIST-offline, mean over the last 10% of logged steps "
         "and over seeds, and the paired one-sided tests of the spread (a's above b's):",
         table_avmnist_spread(runs)),
    )
    print(f"Weighted F1 (%), mean ± std over {seeds(runs)} seeds. Generated by "
          "experiments/redcore/make_table.py.\n")
    for heading, table in sections:
        print(f"{heading}\n\n{table}\n")
    made = plots(runs, curves)
    print("Plots: " + (", ".join(made) if made else "none yet") + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:2])
