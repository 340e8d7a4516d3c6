"""``mmjax report``: tables across runs and seeds, paired tests, learning curves, committed results.

A *run* is a folder that ``mmjax train`` wrote: ``config.json`` (the resolved config), the
evaluation ``eval.json`` (``mmjax eval`` adds ``eval-[<protocol>-]<split>.json``, read with
``--eval``; schema in :mod:`mmjax.evaluate`) and ``metrics.jsonl`` (one line per logged step;
each value the mean over the seed replicas). ``find_runs`` collects
runs from folders (searched recursively for the evaluation file) and globs; ``table`` groups them
by a row key and a column key and pools every seed of a group into one ``mean ± std`` cell:

    mmjax report runs/baselines/mfeat --rows run --cols subset --metric accuracy
    mmjax report runs/redcore/imb_mfeat/lsm --rows run --metric weighted_f1 --paired redcore,core
    mmjax report 'runs/redcore/imb_mfeat/*/redcore' --rows missing.rates --cols subset --plot r.png

A key is ``subset`` (the evaluation's conditions and their average), a dotted config field
(``method.name``, ``missing.rates``, ``train.steps``) or a derived one: ``method`` (the method's
name), ``dataset``, ``run`` (the run's folder relative to the argument it was found under).
``--paired A,B`` adds a paired t-test across seeds between rows A and B per column; ``--plot``
draws the learning curves of ``metrics.jsonl`` and the table as grouped bars.

``runs/`` is not committed; ``export`` copies the small files of runs (config, evaluations, a few
``metrics.jsonl`` columns) into a results folder of the repository, and ``runs_or_results`` lets
a script read the runs when they are there and the committed copy otherwise.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import fnmatch
import glob
import io
import json
import math
import pathlib
import shutil
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from mmjax.errors import UserError

SUBSET = "subset"  # the key of the evaluation's conditions (modality subsets, rates, corruptions)
AVERAGE = "average"
DERIVED = ("method", "dataset", "run")
# The metric a table shows when none is asked for: the first of these the evaluation has.
# The one-line description of `mmjax report` (plain text: argparse prints it as is).
DESCRIPTION = "tables of mean ± std across runs and seeds, paired tests, learning curves"
HEADLINE = ("accuracy", "weighted_f1", "macro_f1", "f1_micro", "f1_macro", "mae", "corr", "acc2")


# ----------------------------------------------------------------------------------------------
# Runs.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    """One run folder: its config, one evaluation, and the folder it was found under."""

    path: pathlib.Path
    root: pathlib.Path
    config: dict
    result: dict

    @property
    def name(self) -> str:
        """The folder relative to ``root`` (the folder's own name when it was given itself)."""
        rel = self.path.relative_to(self.root).as_posix()
        return self.path.name if rel == "." else rel


def _stem(eval_file: str) -> str:
    return eval_file[:-5] if eval_file.endswith(".json") else eval_file


def load_result(run_dir: str | pathlib.Path,
                eval_file: str | Sequence[str] = "eval") -> dict | None:
    """The evaluation ``<eval_file>.json`` of a run folder (of several names, the first there,
    e.g. ``("eval-corruption-test", "eval_corruption")``: ``mmjax eval``'s name and an older
    one); None when the run has not written it (unfinished, or not evaluated that way)."""
    for name in (eval_file,) if isinstance(eval_file, str) else eval_file:
        file = pathlib.Path(run_dir) / f"{_stem(name)}.json"
        if file.is_file():
            return json.loads(file.read_text())
    return None


SEED_SLOT = "train.seed-"  # mmjax sweep's folder of a point's seed replicas: train.seed-0..4


def seed_slot(point: str | pathlib.Path) -> pathlib.Path:
    """The one ``train.seed-*`` folder of a sweep point (``point`` itself if there is none)."""
    found = sorted(pathlib.Path(point).glob(f"{SEED_SLOT}*"))
    return found[0] if found else pathlib.Path(point)


def point_stats(point: str | pathlib.Path, condition: str, metric: str,
                eval_file: str = "eval") -> Stats | None:
    """``condition``'s ``metric`` of a sweep point, pooled over its seed folders: one folder of
    packed replicas (``train.seed-0..4``), or one folder per seed where the backend policy copies
    the step per seed (``train.seed-0``, ``train.seed-1``, ...), or ``point`` itself when it is
    a run folder. Each folder's seeds are its ``train.seed`` onwards; None until all finished
    (or, for ``eval_file`` another evaluation, e.g. ``eval-paired-fraction-test``, until every
    folder has it)."""
    folders = sorted(pathlib.Path(point).glob(f"{SEED_SLOT}*")) or [pathlib.Path(point)]
    cells = []
    for folder in folders:
        result = load_result(folder, eval_file)
        if result is None:
            return None
        config = folder / "config.json"
        seed = json.loads(config.read_text())["train"]["seed"] if config.is_file() else 0
        cells.append(stats(result, condition, metric, seed))
    return pool(cells)


def load_run(path: str | pathlib.Path, root: str | pathlib.Path | None = None,
             eval_file: str = "eval") -> Run:
    """The run in ``path`` (``config.json`` may be absent: config keys then cannot be read)."""
    path = pathlib.Path(path)
    result = load_result(path, eval_file)
    if result is None:
        raise UserError(f"{path} has no {_stem(eval_file)}.json (not a finished run)")
    config_file = path / "config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    return Run(path, pathlib.Path(root) if root is not None else path, config, result)


def _glob_root(pattern: str) -> pathlib.Path:
    """The leading folders of ``pattern`` that hold no glob character."""
    parts = []
    for part in pathlib.Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return pathlib.Path(*parts) if parts else pathlib.Path(".")


def _run_dirs(arg: str, stem: str) -> list[tuple[pathlib.Path, pathlib.Path]]:
    """(run folder, root) pairs of one argument: a run, a folder holding runs, or a glob."""
    if glob.has_magic(arg):
        root, dirs = _glob_root(arg), sorted(pathlib.Path(p) for p in glob.glob(arg))
    else:
        root, dirs = pathlib.Path(arg), [pathlib.Path(arg)]
    found = []
    for d in dirs:
        if d.is_file() and d.name == f"{stem}.json":
            d = d.parent
        if (d / f"{stem}.json").is_file():
            found.append(d)
        elif d.is_dir():
            found += sorted(f.parent for f in d.rglob(f"{stem}.json"))
    return [(d, root) for d in found]


def find_runs(paths: Iterable[str | pathlib.Path], eval_file: str = "eval") -> list[Run]:
    """The runs named by ``paths`` (run folders, parent folders searched recursively for
    ``<eval_file>.json``, or globs), each once, in argument order then path order."""
    stem, runs, seen = _stem(eval_file), [], set()
    for arg in paths:
        found = _run_dirs(str(arg), stem)
        if not found:
            raise UserError(f"no run ({stem}.json) found in {arg}")
        for d, root in found:
            if d.resolve() not in seen:
                seen.add(d.resolve())
                runs.append(load_run(d, root, stem))
    return runs


def has_runs(path: str | pathlib.Path) -> bool:
    """Whether ``path`` holds an evaluated run (an ``eval*.json``), itself or below."""
    path = pathlib.Path(path)
    return path.is_dir() and next(path.rglob("eval*.json"), None) is not None


def runs_or_results(path: str | pathlib.Path, runs_root: str | pathlib.Path,
                    results_root: str | pathlib.Path) -> pathlib.Path:
    """``path`` when it holds runs; else its committed copy under ``results_root`` (``path``
    taken relative to ``runs_root``, the layout ``export`` writes), when that holds runs.

    So a table script reads ``runs/<experiment>`` after a fresh run and the committed
    ``experiments/<experiment>/results`` in a clean checkout, with the same code."""
    path = pathlib.Path(path)
    if has_runs(path):
        return path
    try:
        committed = (pathlib.Path(results_root)
                     / path.resolve().relative_to(pathlib.Path(runs_root).resolve()))
    except ValueError:
        return path
    if has_runs(committed):
        print(f"(no runs in {path}; reading the committed results in {committed})",
              file=sys.stderr)
        return committed
    return path


PER_REPLICA_LOG = "metrics-replicas.jsonl"  # a packed run's log rows, one value per replica


def load_metrics(run_dir: str | pathlib.Path, name: str = "metrics.jsonl") -> list[dict]:
    """The rows of a run's ``metrics.jsonl`` (non-finite values, logged as strings, as floats),
    or of its log file ``name`` (e.g. ``PER_REPLICA_LOG``: lists, one value per seed)."""
    file = pathlib.Path(run_dir) / name
    if not file.is_file():
        return []
    rows = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return [{k: float(v) if isinstance(v, str) and k != "step" else v for k, v in row.items()}
            for row in rows]


def _format_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_format_value(v) for v in value) or "[]"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def key_value(run: Run, key: str) -> str:
    """The value of a derived key (``method``, ``dataset``, ``run``) or of a dotted config field,
    as text (lists comma-joined)."""
    if key == "run":
        return run.name
    if key == "method":
        return str(run.config.get("method", {}).get("name", run.result["method"]))
    if key == "dataset":
        return str(run.config.get("data", {}).get("name", run.result["dataset"]))
    node = run.config
    for i, part in enumerate(key.split(".")):
        if not isinstance(node, dict) or part not in node:
            where = ".".join(key.split(".")[:i]) or "the config"
            choices = ", ".join(sorted(node)) if isinstance(node, dict) else "(not a section)"
            raise UserError(f"{run.path}: no key {key!r} ({where} has: {choices}; derived keys: "
                            f"{', '.join(DERIVED)}, {SUBSET})")
        node = node[part]
    return _format_value(node)


def conditions(result: dict) -> list[str]:
    """The evaluation's conditions (modality subsets, rates, ...) in file order, then average."""
    return [*result["subsets"], AVERAGE]


# ----------------------------------------------------------------------------------------------
# Cells.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Stats:
    """Mean and sample std (ddof 1) over ``n`` seeds; ``values`` and ``seeds`` (the replicas'
    ``train.seed + i``) when every pooled evaluation lists its seeds' values."""

    mean: float
    std: float
    n: int
    values: tuple[float, ...] | None = None
    seeds: tuple[int, ...] | None = None

    @classmethod
    def of(cls, values, seeds) -> "Stats":
        """The cell of per-seed ``values`` (one per seed of ``seeds``, in that order): for a
        quantity derived per seed (a difference, a mean over conditions or over a curve)."""
        values = tuple(float(v) for v in values)
        return cls(float(np.mean(values)), float(np.std(values, ddof=1)), len(values), values,
                   tuple(int(s) for s in seeds))


def headline_metric(result: dict) -> str:
    """The metric a table shows by default: the first of ``HEADLINE`` the evaluation has."""
    first = next(iter(result["subsets"].values()))
    return next((m for m in HEADLINE if m in first), next(iter(first)))


def stats(result: dict, condition: str, metric: str, seed: int = 0) -> Stats:
    """One condition's (or ``average``'s) ``metric`` of an evaluation; ``seed`` is the run's
    ``train.seed`` (its replica ``i`` trained with ``seed + i``)."""
    if condition == AVERAGE:
        mean, std, values = (result["average"], result["std"]["average"],
                             result.get("seeds", {}).get("average"))
    else:
        if condition not in result["subsets"]:
            raise UserError(f"no condition {condition!r} in the evaluation (it has: "
                            f"{', '.join(result['subsets'])})")
        mean, std = result["subsets"][condition], result["std"]["subsets"][condition]
        values = result.get("seeds", {}).get("subsets", {}).get(condition)
    if metric not in mean:
        raise UserError(f"no metric {metric!r} in the evaluation (it has: {', '.join(mean)})")
    n = int(result["num_seeds"])
    if values is None or metric not in values:
        return Stats(float(mean[metric]), float(std[metric]), n)
    return Stats(float(mean[metric]), float(std[metric]), n, tuple(values[metric]),
                 tuple(range(seed, seed + n)))


def pool(cells: Sequence[Stats]) -> Stats:
    """The mean and sample std over the union of the seeds of ``cells`` (runs of one group).

    From the values when every cell has them; else exactly from each cell's (n, mean, std): the
    union's sum of squares is sum_i (n_i - 1) s_i^2 + n_i m_i^2."""
    if len(cells) == 1:
        return cells[0]
    if all(c.values is not None for c in cells):
        values = tuple(v for c in cells for v in c.values)
        seeds = tuple(s for c in cells for s in c.seeds)
        std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
        return Stats(float(np.mean(values)), std, len(values), values, seeds)
    n = sum(c.n for c in cells)
    mean = sum(c.n * c.mean for c in cells) / n
    squares = sum((c.n - 1) * c.std ** 2 + c.n * c.mean ** 2 for c in cells)
    std = math.sqrt(max(squares - n * mean ** 2, 0.0) / (n - 1)) if n > 1 else 0.0
    return Stats(mean, std, n)


def fmt(cell: Stats | None, scale: float = 1.0, digits: int = 4, missing: str = "–") -> str:
    """``mean ± std`` times ``scale``; the mean alone for one seed (its std is not a spread)."""
    if cell is None:
        return missing
    if cell.n == 1:
        return f"{scale * cell.mean:.{digits}f}"
    return f"{scale * cell.mean:.{digits}f} ± {scale * cell.std:.{digits}f}"


# ----------------------------------------------------------------------------------------------
# Tables.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Table:
    """Cells ``{(row, col): Stats}`` of ``metric`` with rows and columns in display order."""

    row_key: str
    col_key: str
    metric: str
    rows: list[str]
    cols: list[str]
    cells: dict[tuple[str, str], Stats]


def table(runs: Sequence[Run], rows: str = "method", cols: str = SUBSET,
          metric: str | None = None, subset: str = AVERAGE,
          row_order: Sequence[str] | None = None, col_order: Sequence[str] | None = None) -> Table:
    """Groups ``runs`` by the ``rows`` and ``cols`` keys and pools each group's seeds.

    Args:
      runs: from ``find_runs``.
      rows, cols: ``subset``, a derived key or a dotted config field (see ``key_value``).
      metric: one of the evaluation's metrics (default: the headline metric of the first run).
      subset: the condition shown when neither key is ``subset`` (default: the average).
      row_order, col_order: the rows / columns to show, in this order (default: all, in order of
        first appearance; conditions in evaluation order with the average last).
    """
    if not runs:
        raise UserError("no runs to tabulate")
    if rows == cols:
        raise UserError(f"--rows and --cols are both {rows!r}")
    metric = metric or headline_metric(runs[0].result)
    groups: dict[tuple[str, str], list[Stats]] = {}
    for run in runs:
        seed = int(run.config.get("train", {}).get("seed", 0))
        names = conditions(run.result) if SUBSET in (rows, cols) else [subset]
        for condition in names:
            r = condition if rows == SUBSET else key_value(run, rows)
            c = condition if cols == SUBSET else key_value(run, cols)
            groups.setdefault((r, c), []).append(stats(run.result, condition, metric, seed))
    row_names = list(row_order) if row_order else list(dict.fromkeys(r for r, _ in groups))
    col_names = list(col_order) if col_order else list(dict.fromkeys(c for _, c in groups))
    if rows == SUBSET and not row_order:
        row_names = [r for r in row_names if r != AVERAGE] + [AVERAGE]
    if cols == SUBSET and not col_order:
        col_names = [c for c in col_names if c != AVERAGE] + [AVERAGE]
    cells = {k: pool(v) for k, v in groups.items()}
    return Table(rows, cols, metric, row_names, col_names, cells)


def run_table(runs: Mapping[str, str | pathlib.Path], cols: Sequence[str] | None = None,
              metric: str = "accuracy", eval_file: str | Sequence[str] = "eval") -> Table:
    """A table whose rows are the given run folders (``{label: folder}``, in order): the ones
    that hold ``<eval_file>.json`` (see ``load_result``); the others are left out. ``cols``:
    conditions to show (default: the first run's, with the average last); a condition a run
    lacks stays empty."""
    results = {label: r for label, path in runs.items()
               if (r := load_result(path, eval_file)) is not None}
    if cols is None:
        cols = conditions(next(iter(results.values()))) if results else []
    cells = {(label, c): stats(r, c, metric) for label, r in results.items() for c in cols
             if c == AVERAGE or c in r["subsets"]}
    return Table("run", SUBSET, metric, list(results), list(cols), cells)


def markdown(t: Table, scale: float = 1.0, digits: int = 4, row_label: str | None = None,
             col_labels: Sequence[str] | None = None,
             row_labels: Mapping[str, str] | None = None) -> str:
    """The table as markdown; a cell no run fills is ``–``. ``row_label`` heads the first
    column, ``col_labels`` replace the column names, ``row_labels`` some row names."""
    labels = list(col_labels) if col_labels else t.cols
    lines = ["| " + " | ".join([row_label or t.row_key, *labels]) + " |",
             "|" + "---|" * (len(t.cols) + 1)]
    for r in t.rows:
        cells = [fmt(t.cells.get((r, c)), scale, digits) for c in t.cols]
        lines.append("| " + " | ".join([(row_labels or {}).get(r, r), *cells]) + " |")
    return "\n".join(lines)


def to_csv(t: Table) -> str:
    """One line per filled cell: row, column, metric, mean, std, seeds."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([t.row_key, t.col_key, "metric", "mean", "std", "n"])
    for r in t.rows:
        for c in t.cols:
            if (cell := t.cells.get((r, c))) is not None:
                writer.writerow([r, c, t.metric, repr(cell.mean), repr(cell.std), cell.n])
    return out.getvalue()


def to_json(t: Table, tests: dict | None = None) -> str:
    """The cells (with the per-seed values when known) and the paired tests, as JSON."""
    cells = [{"row": r, "col": c, "mean": cell.mean, "std": cell.std, "n": cell.n,
              "values": None if cell.values is None else list(cell.values),
              "seeds": None if cell.seeds is None else list(cell.seeds)}
             for r in t.rows for c in t.cols if (cell := t.cells.get((r, c))) is not None]
    doc = {"rows": t.row_key, "cols": t.col_key, "metric": t.metric, "cells": cells}
    if tests:
        doc["paired"] = [{"a": a, "b": b, "col": c, **dataclasses.asdict(p)}
                         for (a, b), by_col in tests.items() for c, p in by_col.items()]
    return json.dumps(doc, indent=2) + "\n"


# ----------------------------------------------------------------------------------------------
# Paired tests.
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Paired:
    """A paired t-test across seeds: mean of a - b, the t statistic, its p-value, pairs."""

    diff: float
    t: float
    p: float
    n: int
    alternative: str


def paired_test(a: Stats, b: Stats, alternative: str = "two-sided") -> Paired:
    """``scipy.stats.ttest_rel`` on the per-seed values of two cells, paired by seed.

    ``alternative``: ``two-sided``, ``greater`` (a > b) or ``less``, as scipy's. When every seed
    gives the same difference (accuracies on a small test set move in steps of one sample) the
    t statistic is infinite and scipy's p of 0 would claim more than n seeds can show; ``p`` is
    then the exact sign test's: 0.5^n on the side of the differences (doubled, two-sided), 1 on
    the other side or when every difference is 0, and ``t`` is ±inf (nan for 0)."""
    from scipy import stats as scipy_stats

    if a.values is None or b.values is None:
        raise UserError("a paired test needs the per-seed values (the evaluation's 'seeds'); "
                        "re-evaluate the runs (`mmjax eval --workdir RUN`) and pass "
                        "--eval eval-test")
    if a.seeds != b.seeds:
        raise UserError(f"a paired test needs the same seeds on both sides, got {a.seeds} and "
                        f"{b.seeds}")
    diff = np.subtract(a.values, b.values)
    if len(diff) < 2:
        return Paired(float(diff.mean()), math.nan, math.nan, len(diff), alternative)
    with warnings.catch_warnings():  # equal differences: t = ±inf or nan, scipy warns
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy_stats.ttest_rel(a.values, b.values, alternative=alternative)
    t, p = float(result.statistic), float(result.pvalue)
    # Equal up to the rounding of the stored accuracies (scipy's t about 1e15, p = 0 in float64).
    if np.ptp(diff) <= 1e-9 * np.abs(diff).max():
        sign = float(np.sign(diff.mean()))
        t = math.copysign(math.inf, sign) if sign else math.nan
        side = {"greater": sign > 0, "less": sign < 0, "two-sided": sign != 0}[alternative]
        p = min(1.0, 0.5 ** len(diff) * (2 if alternative == "two-sided" else 1)) if side else 1.0
    return Paired(float(diff.mean()), t, p, len(diff), alternative)


def p_text(test: Paired) -> str:
    """``test``'s p as a table prints it: 3 significant digits, 4 near 0.05 (so 0.04996 does not
    print as 0.05), naming the sign test where it gave p (the same difference on every seed)."""
    p = f"{test.p:.4g}" if 0.045 <= test.p < 0.055 else f"{test.p:.3g}"
    if not math.isfinite(test.t):  # paired_test fell back to the sign test (t = ±inf or nan)
        p += " (sign test: the same difference on every seed)"
    return p


def paired_tests(t: Table, a: str, b: str, alternative: str = "two-sided") -> dict[str, Paired]:
    """``paired_test`` between rows ``a`` and ``b`` for every column both fill."""
    for row in (a, b):
        if row not in t.rows:
            raise UserError(f"--paired: no row {row!r} (rows: {', '.join(t.rows)})")
    return {c: paired_test(t.cells[(a, c)], t.cells[(b, c)], alternative)
            for c in t.cols if (a, c) in t.cells and (b, c) in t.cells}


def paired_markdown(t: Table, a: str, b: str, tests: dict[str, Paired], scale: float = 1.0,
                    digits: int = 4) -> str:
    """One markdown row per statistic: the mean difference a - b and the p-value per column."""
    head = f"paired t-test over seeds, {a} − {b}"
    lines = ["| " + " | ".join([head, *t.cols]) + " |", "|" + "---|" * (len(t.cols) + 1)]
    side = next(iter(tests.values())).alternative if tests else "two-sided"
    diff = [f"{scale * tests[c].diff:+.{digits}f}" if c in tests else "–" for c in t.cols]
    p = [f"{tests[c].p:.3g}" if c in tests else "–" for c in t.cols]
    n = [str(tests[c].n) if c in tests else "–" for c in t.cols]
    lines += ["| " + " | ".join(["mean difference", *diff]) + " |",
              "| " + " | ".join([f"p ({side})", *p]) + " |",
              "| " + " | ".join(["pairs (seeds)", *n]) + " |"]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Plots.
# ----------------------------------------------------------------------------------------------


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend; a one-line error without matplotlib."""
    try:
        import matplotlib
    except ImportError as e:
        raise UserError("--plot needs matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curve(runs: Sequence[Run], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                       np.ndarray]:
    """(steps, mean, min, max) of a ``metrics.jsonl`` column over ``runs`` (each already the
    mean of its seeds), at every step some run logged it."""
    by_step: dict[int, list[float]] = {}
    for run in runs:
        for row in load_metrics(run.path):
            if column in row:
                by_step.setdefault(int(row["step"]), []).append(float(row[column]))
    steps = np.array(sorted(by_step), dtype=int)
    values = [by_step[s] for s in steps]
    return (steps, np.array([np.mean(v) for v in values]), np.array([min(v) for v in values]),
            np.array([max(v) for v in values]))


def plot(runs: Sequence[Run], t: Table, path: str | pathlib.Path,
         columns: Sequence[str] = ("loss",), scale: float = 1.0) -> pathlib.Path:
    """Learning curves (one panel per ``metrics.jsonl`` column, one line per row of ``t``: the
    mean over its runs, the band their range) and the table as grouped bars (± std)."""
    plt = pyplot()
    # The bar panel widens with the bars (63 subsets of mfeat's six views need room).
    bar_width = min(max(6.0, 0.12 * len(t.cols) * len(t.rows) + 1.0), 30.0)
    fig, axes = plt.subplots(1, len(columns) + 1, figsize=(5 * len(columns) + bar_width, 4),
                             squeeze=False, width_ratios=[5] * len(columns) + [bar_width])
    # One curve per value of the table's run key (a subset is no property of a run).
    key, names = (t.col_key, t.cols) if t.row_key == SUBSET else (t.row_key, t.rows)
    groups = {r: [run for run in runs if key != SUBSET and key_value(run, key) == r]
              for r in names}
    for ax, column in zip(axes[0], columns):
        for r, members in groups.items():
            steps, mean, low, high = curve(members, column)
            if len(steps):
                line, = ax.plot(steps, mean, label=r)
                if len(members) > 1:
                    ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        ax.set(xlabel="step", ylabel=column, title=f"{column} (metrics.jsonl)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    bars = axes[0][-1]
    width = 0.8 / max(len(t.rows), 1)
    x = np.arange(len(t.cols))
    for i, r in enumerate(t.rows):
        cells = [t.cells.get((r, c)) for c in t.cols]
        heights = [scale * c.mean if c else np.nan for c in cells]
        errors = [scale * c.std if c and c.n > 1 else 0.0 for c in cells]
        bars.bar(x + (i - (len(t.rows) - 1) / 2) * width, heights, width, yerr=errors,
                 capsize=2, label=r)
    bars.set_xticks(x, t.cols, rotation=60 if len(t.cols) > 6 else 0, ha="right"
                    if len(t.cols) > 6 else "center", fontsize=7 if len(t.cols) > 12 else 9)
    bars.set(ylabel=t.metric + (" (%)" if scale == 100 else ""),
             title=f"{t.metric} by {t.col_key}, mean ± std over seeds")
    bars.grid(axis="y", alpha=0.3)
    bars.legend(fontsize=7, title=t.row_key, title_fontsize=7)
    fig.tight_layout()
    path = pathlib.Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------
# Committed results.
# ----------------------------------------------------------------------------------------------


SWEEP_RECORD = "sweep.json"  # the file a sweep keeps its record in (mmjax.sweep.MANIFEST)
# The fields of a sweep record that say which sweep it is (its points and runs grow as it runs).
_SWEEP_IDENTITY = ("config", "set", "grid", "grid_file", "seeds", "pack")


def _check_same_sweep(new: pathlib.Path, old: pathlib.Path) -> None:
    """Refuses to replace ``old``, another sweep's record, by ``new`` (see ``export``)."""
    if not (new.is_file() and old.is_file()):
        return
    a, b = (json.loads(f.read_text()) for f in (new, old))
    if any(a.get(k) != b.get(k) for k in _SWEEP_IDENTITY):
        raise UserError(f"{old} is the record of another sweep (grid file "
                        f"{b.get('grid_file')!r}, not {a.get('grid_file')!r}); export into "
                        f"another folder, so that it is not overwritten")


def export(src: str | pathlib.Path, dest: str | pathlib.Path,
           columns: Sequence[str] = ("loss",)) -> list[pathlib.Path]:
    """Copies the small files of every run under ``src`` to ``dest``, same layout: ``config.json``,
    every ``*.json`` of the run folder (its evaluations and tables), and ``metrics.jsonl`` cut to
    ``step`` and the ``columns`` (names or ``fnmatch`` patterns, e.g. ``ra_*``); a sweep point's
    ``metrics-replicas.jsonl`` (the columns per seed) is cut the same way.

    The ``.md`` and ``.json`` files directly in ``src`` (outside the runs: tables a script wrote
    next to them, e.g. MLA's ``gap.md``) are copied too. Returns the run folders written.
    Checkpoints and the ``.md`` copies of the evaluations are left out, so the copy is small
    enough to commit (``runs/`` is not).

    Raises:
      UserError: before anything is copied, when ``dest`` holds the record (``sweep.json``) of
        another sweep (another grid, settings or config): exporting would overwrite it. The same
        sweep exported again (more points finished) replaces its record.
    """
    src, dest = pathlib.Path(src), pathlib.Path(dest)
    _check_same_sweep(src / SWEEP_RECORD, dest / SWEEP_RECORD)
    written = []
    if src.is_dir() and not (src / "eval.json").is_file():
        for file in sorted(src.glob("*")):
            if file.is_file() and file.suffix in (".md", ".json"):
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, dest / file.name)
    for run_dir, _ in _run_dirs(str(src), "eval"):
        out = dest / run_dir.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for file in sorted(run_dir.glob("*.json")):
            shutil.copyfile(file, out / file.name)
        for name in ("metrics.jsonl", PER_REPLICA_LOG):
            keep = [{k: v for k, v in row.items()
                     if k == "step" or any(fnmatch.fnmatchcase(k, p) for p in columns)}
                    for row in load_metrics(run_dir, name)]
            if keep:
                (out / name).write_text("".join(json.dumps(r) + "\n" for r in keep))
        written.append(out)
    if not written:
        raise UserError(f"no run (eval.json) found in {src}")
    return written


# ----------------------------------------------------------------------------------------------
# Command line.
# ----------------------------------------------------------------------------------------------


def _pair(text: str) -> tuple[str, str]:
    parts = text.split(",")
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"{text!r}: give two rows as ROW_A,ROW_B")
    return parts[0], parts[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``mmjax report``'s arguments to ``parser`` (the CLI's ``report`` sub-command)."""
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders, folders holding runs (searched recursively for the "
                             "evaluation file), or globs")
    parser.add_argument("--rows", default="method",
                        help="row key: 'subset', method, dataset, run, or a dotted config field "
                             "such as missing.rates (default: method)")
    parser.add_argument("--cols", default=SUBSET, help="column key, as --rows (default: subset)")
    parser.add_argument("--metric", help="metric of the cells (default: the evaluation's "
                                         "headline, e.g. accuracy)")
    parser.add_argument("--row-order", metavar="A,B,...",
                        help="the rows to show, in this order (default: all, as found)")
    parser.add_argument("--col-order", metavar="A,B,...",
                        help="the columns to show, in this order (default: all; conditions in "
                             "evaluation order, the average last)")
    parser.add_argument("--subset", default=AVERAGE,
                        help="the condition shown when neither key is 'subset' (default: average)")
    parser.add_argument("--eval", default="eval", dest="eval_file", metavar="NAME",
                        help="each run's evaluation file: eval (default, training's), or one "
                             "mmjax eval wrote: eval-test, eval-corruption-test, ...")
    parser.add_argument("--format", choices=("md", "csv", "json"), default="md")
    parser.add_argument("--percent", action="store_true", help="cells in %% with 2 decimals")
    parser.add_argument("--digits", type=int, help="decimals of the cells (default 4, 2 with "
                                                   "--percent)")
    parser.add_argument("--paired", type=_pair, action="append", default=[], metavar="A,B",
                        help="paired t-test over seeds between rows A and B (repeatable)")
    parser.add_argument("--alternative", choices=("two-sided", "greater", "less"),
                        default="two-sided", help="of --paired: greater means A > B")
    parser.add_argument("--plot", metavar="PNG", help="write learning curves and bars here")
    parser.add_argument("--curves", default="loss",
                        help="metrics.jsonl columns --plot draws, comma-separated (default: loss)")
    parser.add_argument("--export", metavar="DEST",
                        help="copy each RUN_DIR's runs (config, evaluations, --columns of "
                             "metrics.jsonl) to DEST, same layout, to commit them")
    parser.add_argument("--columns", default="loss",
                        help="metrics.jsonl columns --export keeps, comma-separated, patterns "
                             "allowed (default: loss)")


def run(args: argparse.Namespace) -> int:
    """Runs ``mmjax report`` on parsed arguments: prints the table (and tests); returns 0."""
    if args.export:
        for arg in args.runs:
            for out in export(arg, args.export, tuple(args.columns.split(","))):
                print(f"wrote {out}", file=sys.stderr)
    if args.paired and args.format == "csv":
        raise UserError("--paired prints with --format md or json (csv holds the cells only)")
    runs = find_runs(args.runs, args.eval_file)
    scale = 100.0 if args.percent else 1.0
    digits = args.digits if args.digits is not None else (2 if args.percent else 4)
    t = table(runs, args.rows, args.cols, args.metric, args.subset,
              args.row_order and args.row_order.split(","),
              args.col_order and args.col_order.split(","))
    tests = {(a, b): paired_tests(t, a, b, args.alternative) for a, b in args.paired}
    if args.format == "json":
        print(to_json(t, tests), end="")
    elif args.format == "csv":
        print(to_csv(t), end="")
    else:
        n = sorted({cell.n for cell in t.cells.values()})
        seeds = f"{n[0]} seed(s)" if len(n) == 1 else f"{n[0]}–{n[-1]} seeds"
        print(f"{t.metric}{' (%)' if args.percent else ''}, mean ± std over {seeds} "
              f"({len(runs)} run(s))\n")
        print(markdown(t, scale, digits))
        for (a, b), by_col in tests.items():
            print("\n" + paired_markdown(t, a, b, by_col, scale, digits))
    if args.plot:
        out = plot(runs, t, args.plot, tuple(args.curves.split(",")), scale)
        print(f"wrote {out}", file=sys.stderr)
    return 0
