"""Tests of ``mmjax report`` (``mmjax.report``) on real runs: table cells, grouping across runs and
seeds, the one-seed format, md/csv/json output, the paired t-test, the plot and the committed
results copy.

Three tiny mfeat runs (views fac and pix, 20 steps) are trained once for the module: concat and
sum with seeds 0-2, and concat with the single seed 3. References read the runs' ``eval.json``
directly and compute with numpy (and the t distribution's closed form for 2 degrees of freedom).
"""

import csv
import io
import json
import math
import pathlib
import shutil

import numpy as np
import pytest

from mmjax import cli, report

ROOT = pathlib.Path(__file__).resolve().parent.parent
SMALL = ["data.views=fac,pix", "train.steps=20", "train.log_every=10",
         "train.checkpoint_every=20", "train.unroll=1"]
CONDITIONS = ["fac+pix", "fac", "pix", "average"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``root/a/concat``, ``root/a/sum`` (3 seeds each) and ``root/b/concat1`` (seed 3 alone)."""
    from mmjax import config as config_lib
    from mmjax import train

    root = tmp_path_factory.mktemp("runs")
    for folder, method, sets in (("a/concat", "concat", ["train.num_seeds=3"]),
                                 ("a/sum", "sum", ["train.num_seeds=3"]),
                                 ("b/concat1", "concat", ["train.num_seeds=1", "train.seed=3"])):
        config = config_lib.override(
            config_lib.load(str(ROOT / "configs" / "mfeat" / f"{method}.py") + ":quick"),
            SMALL + sets)
        train.train(config, root / folder)
    return root


def _eval(run_dir: pathlib.Path) -> dict:
    return json.loads((run_dir / "eval.json").read_text())


def _values(result: dict, condition: str, metric: str = "accuracy") -> list[float]:
    seeds = result["seeds"]
    return (seeds["average"] if condition == "average" else seeds["subsets"][condition])[metric]


def _mean(result: dict, condition: str, metric: str = "accuracy") -> tuple[float, float]:
    if condition == "average":
        return result["average"][metric], result["std"]["average"][metric]
    return result["subsets"][condition][metric], result["std"]["subsets"][condition][metric]


def _cli(capsys, *argv) -> tuple[int, str, str]:
    """``mmjax report ARGV`` through the command line's entry point."""
    capsys.readouterr()
    code = cli.main(["report", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _md_rows(text: str) -> dict[str, list[str]]:
    """{first cell: other cells} of the markdown table rows in ``text`` (header included)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows.setdefault(cells[0], cells[1:])
    return rows


@pytest.mark.slow
def test_eval_json_lists_each_seeds_values(runs):
    """``seeds`` holds one value per replica; their mean and sample std are the reported ones,
    and a seed's average is the mean of its subsets (evaluate._summarize)."""
    result = _eval(runs / "a" / "concat")
    assert result["num_seeds"] == 3
    for condition in CONDITIONS:
        for metric in result["average"]:
            values = _values(result, condition, metric)
            mean, std = _mean(result, condition, metric)
            assert len(values) == 3
            assert np.mean(values) == pytest.approx(mean, abs=1e-12)
            assert np.std(values, ddof=1) == pytest.approx(std, abs=1e-12)
    per_seed = np.array([_values(result, c) for c in CONDITIONS[:-1]])
    np.testing.assert_allclose(per_seed.mean(0), _values(result, "average"), atol=1e-12)


def test_find_runs_in_folders_and_globs(runs):
    """A parent folder is searched recursively, a glob expands, each run is found once."""
    found = report.find_runs([runs, runs / "a" / "concat"])
    assert [r.path for r in found] == [runs / "a" / "concat", runs / "a" / "sum",
                                       runs / "b" / "concat1"]
    assert [r.name for r in found] == ["a/concat", "a/sum", "b/concat1"]
    globbed = report.find_runs([str(runs / "*" / "concat*")])
    assert [r.name for r in globbed] == ["a/concat", "b/concat1"]
    assert report.find_runs([runs / "a" / "sum"])[0].name == "sum"
    with pytest.raises(report.UserError, match="no run"):
        report.find_runs([runs / "nothing"])


def test_markdown_table_is_mean_and_std_of_each_run(runs, capsys):
    """rows = method, cols = subset: each cell is that run's mean ± std, 4 decimals; the
    conditions in evaluation order with the average last."""
    code, out, _ = _cli(capsys, runs / "a", "--rows", "method", "--cols", "subset",
                        "--metric", "accuracy")
    assert code == 0
    rows = _md_rows(out)
    assert rows["method"] == CONDITIONS
    for method in ("concat", "sum"):
        result = _eval(runs / "a" / method)
        want = ["{:.4f} ± {:.4f}".format(*_mean(result, c)) for c in CONDITIONS]
        assert rows[method] == want
    assert "over 3 seed(s) (2 run(s))" in out
    code, out, _ = _cli(capsys, runs / "a", "--row-order", "sum,concat", "--col-order",
                        "pix,average")
    rows = _md_rows(out)
    assert list(rows) == ["method", "sum", "concat"] and rows["method"] == ["pix", "average"]
    assert rows["sum"] == ["{:.4f} ± {:.4f}".format(*_mean(_eval(runs / "a" / "sum"), c))
                           for c in ("pix", "average")]


def test_runs_of_one_group_pool_their_seeds(runs):
    """Grouped by method, concat pools seeds 0-2 and seed 3 of two runs: the mean and sample std
    of the four values; the same from (n, mean, std) alone when the values are not listed."""
    found = report.find_runs([runs])
    t = report.table(found, rows="method", cols="subset", metric="accuracy")
    assert t.rows == ["concat", "sum"]
    three, one = _eval(runs / "a" / "concat"), _eval(runs / "b" / "concat1")
    for condition in CONDITIONS:
        values = _values(three, condition) + _values(one, condition)
        cell = t.cells[("concat", condition)]
        assert cell.n == 4 and cell.seeds == (0, 1, 2, 3)
        assert cell.mean == pytest.approx(np.mean(values), abs=1e-12)
        assert cell.std == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    stripped = [report.Run(r.path, r.root, r.config, {k: v for k, v in r.result.items()
                                                      if k != "seeds"}) for r in found]
    t2 = report.table(stripped, rows="method", cols="subset", metric="accuracy")
    for condition in CONDITIONS:
        values = _values(three, condition) + _values(one, condition)
        cell = t2.cells[("concat", condition)]
        assert cell.values is None and cell.n == 4
        assert cell.mean == pytest.approx(np.mean(values), abs=1e-12)
        assert cell.std == pytest.approx(np.std(values, ddof=1), abs=1e-10)


def test_one_seed_prints_the_mean_alone(runs, capsys):
    """A one-seed cell is the mean, with no ``± 0.0000``; --percent scales to 2 decimals."""
    code, out, _ = _cli(capsys, runs / "b", "--rows", "run")
    assert code == 0
    result = _eval(runs / "b" / "concat1")
    assert _md_rows(out)["concat1"] == [f"{_mean(result, c)[0]:.4f}" for c in CONDITIONS]
    assert "±" not in out.split("\n", 1)[1]
    code, out, _ = _cli(capsys, runs / "b", "--rows", "run", "--percent")
    assert _md_rows(out)["concat1"] == [f"{100 * _mean(result, c)[0]:.2f}" for c in CONDITIONS]


def test_config_keys_group_rows_and_columns(runs):
    """rows = a dotted config field, cols = a derived key, one condition (``subset``)."""
    t = report.table(report.find_runs([runs]), rows="train.num_seeds", cols="method",
                     metric="weighted_f1", subset="fac")
    assert (t.rows, t.cols) == (["3", "1"], ["concat", "sum"])
    assert set(t.cells) == {("3", "concat"), ("3", "sum"), ("1", "concat")}
    mean, std = _mean(_eval(runs / "a" / "sum"), "fac", "weighted_f1")
    assert (t.cells[("3", "sum")].mean, t.cells[("3", "sum")].std) == (mean, std)
    transposed = report.table(report.find_runs([runs / "a"]), rows="subset", cols="method")
    assert transposed.rows == CONDITIONS and transposed.metric == "accuracy"


def test_csv_and_json_output(runs, capsys):
    """csv: one line per cell with the full-precision mean and std; json: the seeds' values."""
    code, out, _ = _cli(capsys, runs / "a", "--format", "csv", "--metric", "macro_f1")
    assert code == 0
    lines = list(csv.DictReader(io.StringIO(out)))
    assert len(lines) == 2 * len(CONDITIONS)
    for line in lines:
        mean, std = _mean(_eval(runs / "a" / line["method"]), line["subset"], "macro_f1")
        assert (float(line["mean"]), float(line["std"]), line["n"]) == (mean, std, "3")
    code, out, _ = _cli(capsys, runs / "a", "--format", "json")
    doc = json.loads(out)
    assert (doc["rows"], doc["cols"], doc["metric"]) == ("method", "subset", "accuracy")
    cell = next(c for c in doc["cells"] if (c["row"], c["col"]) == ("sum", "pix"))
    assert cell["values"] == _values(_eval(runs / "a" / "sum"), "pix")
    assert cell["seeds"] == [0, 1, 2]


def test_paired_t_test_matches_the_closed_form(runs, capsys):
    """Paired t over the 3 seeds: t = mean(d) / (sd(d) / sqrt(3)); with 2 degrees of freedom the
    two-sided p-value is 1 - |t| / sqrt(2 + t^2) (Student's t CDF for nu = 2)."""
    code, out, _ = _cli(capsys, runs / "a", "--format", "json", "--paired", "concat,sum")
    assert code == 0
    tests = {p["col"]: p for p in json.loads(out)["paired"]}
    concat, sum_ = _eval(runs / "a" / "concat"), _eval(runs / "a" / "sum")
    compared = 0
    for condition in CONDITIONS:
        d = np.subtract(_values(concat, condition), _values(sum_, condition))
        if np.std(d) == 0:  # equal differences: t is not finite; nothing to compare
            continue
        compared += 1
        t = d.mean() / (np.std(d, ddof=1) / math.sqrt(3))
        p = tests[condition]
        assert (p["a"], p["b"], p["n"]) == ("concat", "sum", 3)
        assert p["diff"] == pytest.approx(d.mean(), abs=1e-12)
        assert p["t"] == pytest.approx(t, rel=1e-9)
        assert p["p"] == pytest.approx(1 - abs(t) / math.sqrt(2 + t * t), rel=1e-9)
    assert compared >= 3
    # One-sided "concat > sum": half the two-sided p on the side of t.
    cell_a, cell_b = (report.table(report.find_runs([runs / "a"])).cells[(r, "average")]
                      for r in ("concat", "sum"))
    two, greater = (report.paired_test(cell_a, cell_b, alt) for alt in ("two-sided", "greater"))
    assert greater.p == pytest.approx(two.p / 2 if two.t > 0 else 1 - two.p / 2, rel=1e-9)
    code, out, _ = _cli(capsys, runs / "a", "--paired", "concat,sum")
    rows = _md_rows(out)
    assert rows["p (two-sided)"][-1] == f"{tests['average']['p']:.3g}"
    assert rows["mean difference"][-1] == f"{tests['average']['diff']:+.4f}"


def test_equal_differences_get_the_exact_sign_test_not_p_0():
    """Five seeds, each 0.5 points ahead: t is infinite; p is the sign test's 1/32, not 0."""
    seeds = (0, 1, 2, 3, 4)
    base = np.array([0.90, 0.91, 0.92, 0.93, 0.94])
    a, b = (report.Stats(float(v.mean()), float(v.std(ddof=1)), 5, v.tolist(), seeds)
            for v in (base + 0.005, base))
    assert report.paired_test(a, b, "greater").p == pytest.approx(1 / 32)
    assert report.paired_test(a, b, "greater").t == math.inf
    assert report.paired_test(a, b, "two-sided").p == pytest.approx(1 / 16)
    assert report.paired_test(a, b, "less").p == 1.0
    assert report.paired_test(b, b, "greater").p == 1.0
    assert report.paired_test(b, b, "two-sided").p == 1.0
    assert report.p_text(report.paired_test(a, b, "greater")) == (
        "0.0312 (sign test: the same difference on every seed)")


def test_p_text_keeps_four_digits_near_the_threshold():
    """0.04996 must not print as 0.05 (the tables' "met at p < 0.05" reads next to it)."""
    near, far = (report.Paired(0.01, 2.5, p, 5, "greater") for p in (0.049964, 0.0012345))
    assert (report.p_text(near), report.p_text(far)) == ("0.04996", "0.00123")


def _seed_folder(folder, seed, accuracies):
    """A finished run folder of ``len(accuracies)`` replicas from ``train.seed`` ``seed``."""
    folder.mkdir(parents=True)
    n, mean = len(accuracies), float(np.mean(accuracies))
    std = float(np.std(accuracies, ddof=1)) if n > 1 else 0.0
    (folder / "config.json").write_text(json.dumps({"train": {"seed": seed, "num_seeds": n}}))
    (folder / "eval.json").write_text(json.dumps({
        "num_seeds": n, "subsets": {"x": {"accuracy": mean}}, "average": {"accuracy": mean},
        "std": {"subsets": {"x": {"accuracy": std}}, "average": {"accuracy": std}},
        "seeds": {"subsets": {"x": {"accuracy": accuracies}},
                  "average": {"accuracy": accuracies}}}))


def test_point_stats_pools_a_points_seed_folders(tmp_path):
    """One folder per seed (the CPU policy's conv nets) and one packed folder give the same
    cell, with each folder's seeds; an unfinished seed folder gives None."""
    for seed, acc in enumerate((0.9, 0.8, 0.7)):
        _seed_folder(tmp_path / "apart" / f"train.seed-{seed}", seed, [acc])
    _seed_folder(tmp_path / "packed" / "train.seed-0..2", 0, [0.9, 0.8, 0.7])
    apart, packed = (report.point_stats(tmp_path / point, "x", "accuracy")
                     for point in ("apart", "packed"))
    assert apart.values == packed.values == (0.9, 0.8, 0.7)
    assert apart.seeds == packed.seeds == (0, 1, 2)
    assert apart.mean == pytest.approx(0.8) and apart.std == pytest.approx(packed.std)
    (tmp_path / "apart" / "train.seed-3").mkdir()  # started, no eval.json yet
    assert report.point_stats(tmp_path / "apart", "x", "accuracy") is None


def test_paired_test_needs_the_same_seeds(runs, capsys):
    """concat pooled over seeds 0-3 against sum's 0-2: refused in one line, exit 2."""
    code, out, err = _cli(capsys, runs, "--paired", "concat,sum")
    assert code == 2 and out == ""
    assert err.startswith("mmjax: error: ") and "same seeds" in err and err.count("\n") == 1
    code, _, err = _cli(capsys, runs, "--paired", "concat,late")
    assert code == 2 and "no row 'late'" in err


def test_unknown_key_and_metric_are_user_errors(runs, capsys):
    code, _, err = _cli(capsys, runs / "a", "--rows", "train.nope")
    assert code == 2 and "no key 'train.nope'" in err and "num_seeds" in err
    code, _, err = _cli(capsys, runs / "a", "--metric", "auc")
    assert code == 2 and "no metric 'auc'" in err and "accuracy" in err


def test_plot_writes_learning_curves_and_bars(runs, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "curves.png"
    code, _, err = _cli(capsys, runs, "--plot", out, "--curves", "loss,grad_norm")
    assert code == 0 and f"wrote {out}" in err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    steps, mean, low, high = report.curve(report.find_runs([runs / "a" / "concat",
                                                            runs / "b"]), "loss")
    logged = [report.load_metrics(runs / d) for d in ("a/concat", "b/concat1")]
    assert list(steps) == [10, 20]
    for i in range(2):
        losses = [rows[i]["loss"] for rows in logged]
        assert (mean[i], low[i], high[i]) == (np.mean(losses), min(losses), max(losses))


def test_export_keeps_the_small_files_and_is_read_back(runs, tmp_path, capsys):
    """``--export`` mirrors the layout with config, eval and the asked metrics columns; the
    copy tabulates as the runs do, and ``runs_or_results`` falls back to it."""
    dest = tmp_path / "results"
    code, from_runs, _ = _cli(capsys, runs, "--export", dest, "--columns", "loss,grad*")
    assert code == 0
    copy = dest / "a" / "concat"
    assert sorted(p.name for p in copy.iterdir()) == ["config.json", "eval.json",
                                                      "metrics.jsonl"]
    assert (copy / "eval.json").read_bytes() == (runs / "a/concat/eval.json").read_bytes()
    rows = report.load_metrics(copy)
    original = report.load_metrics(runs / "a" / "concat")
    assert rows == [{k: r[k] for k in ("step", "loss", "grad_norm")} for r in original]
    code, from_copy, _ = _cli(capsys, dest)
    assert from_copy == from_runs
    # A sweep point's per-seed log is cut to the same columns.
    point = shutil.copytree(runs / "a/concat", tmp_path / "sweep/a/concat")
    row = {"step": 5, "loss": [1.0, 2.0], "acc": [0.5, 0.25]}
    (point / report.PER_REPLICA_LOG).write_text(json.dumps(row) + "\n")
    report.export(tmp_path / "sweep", tmp_path / "again", ("loss",))
    assert report.load_metrics(tmp_path / "again/a/concat", report.PER_REPLICA_LOG) == [
        {"step": 5, "loss": [1.0, 2.0]}]
    moved = tmp_path / "runs" / "x"
    assert report.runs_or_results(moved, tmp_path / "runs", dest) == moved  # neither: as given
    assert report.runs_or_results(tmp_path / "runs" / "a", tmp_path / "runs", dest) == dest / "a"
    shutil.copytree(runs / "a", tmp_path / "runs" / "a")
    assert report.runs_or_results(tmp_path / "runs" / "a", tmp_path / "runs",
                                  dest) == tmp_path / "runs" / "a"


def test_export_never_overwrites_another_sweeps_record(runs, tmp_path, capsys):
    """A folder holding one sweep's record refuses another sweep's export before copying
    anything; the same sweep exported again (its record grown) replaces it."""
    def sweep(name, grid_file, points):
        folder = tmp_path / name
        shutil.copytree(runs / "a/concat", folder / "concat")
        record = {"config": None, "set": [], "grid": [], "grid_file": grid_file, "seeds": 5,
                  "pack": True, "points": points, "runs": []}
        (folder / report.SWEEP_RECORD).write_text(json.dumps(record))
        return folder

    dest = tmp_path / "results"
    report.export(sweep("first", "a.txt", ["concat"]), dest)
    kept = (dest / report.SWEEP_RECORD).read_text()
    other = sweep("other", "b.txt", ["concat"])
    (other / "concat" / "eval.json").write_text("{}")
    code, _, err = _cli(capsys, other, "--export", dest)
    assert code != 0 and "another sweep" in err and "b.txt" in err
    assert (dest / report.SWEEP_RECORD).read_text() == kept
    assert (dest / "concat/eval.json").read_bytes() == (runs / "a/concat/eval.json").read_bytes()
    report.export(sweep("grown", "a.txt", ["concat", "late"]), dest)
    assert json.loads((dest / report.SWEEP_RECORD).read_text())["points"] == ["concat", "late"]


def test_baselines_make_table_is_built_on_report(runs, monkeypatch):
    """experiments/baselines/make_table.py: 3-decimal cells of report, an unfinished run marked."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "baselines_make_table", ROOT / "experiments" / "baselines" / "make_table.py")
    make_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_table)
    monkeypatch.setattr(make_table, "ORDER", ("sum", "late", "concat"))
    (runs / "a" / "late").mkdir(exist_ok=True)  # a run that has not written eval.json
    rows = _md_rows(make_table.table(runs / "a", None))
    assert rows["method"] == ["fac+pix", "fac", "pix", "average over all subsets"]
    for method in ("sum", "concat"):
        result = _eval(runs / "a" / method)
        assert rows[method] == ["{:.3f} ± {:.3f}".format(*_mean(result, c)) for c in CONDITIONS]
    assert rows["late"] == ["not finished"] * 4
    (runs / "a" / "late").rmdir()
