"""Tests of ``mmjax sweep`` (``mmjax.sweep``): grid expansion and folder names, packing of the
points that differ only in data (seeds, missing rates, learning rates) into one run, a bad point
refused before anything runs, resume after an interruption, results identical to each point
trained alone, and the grid's table.

The runs: a 2 x 2 x 2 grid (hidden width 8 or 16 x two training missing rates x seeds 0 and 1)
of concat on mfeat's views fac and pix, 10 steps, trained once for the module as a sweep (2
packed runs, one per width, of 4 replicas each) whose second run is interrupted and then resumed,
and the 4 points of width 16 trained one by one with ``train.train``. The references read those
runs' own files.
"""

import argparse
import contextlib
import io
import json
import pathlib

import numpy as np
import pytest

from mmjax import sweep
from mmjax import config as config_lib
from mmjax.errors import Interrupted, UserError

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "mfeat" / "concat.py") + ":quick"
SMALL = ["data.views=fac,pix", "missing.protocol=independent", "train.steps=10",
         "train.steps_per_call=5", "train.log_every=5", "train.checkpoint_every=10",
         "train.unroll=1"]
RATES = ("[0.5,0.3]", "[0.2,0.6]")
WIDTHS = (8, 16)
DIRS = tuple(f"model.hidden-{w}/missing.rates-{r}/train.seed-0..1" for w in WIDTHS
             for r in ("0.5_0.3", "0.2_0.6"))
LABELS = tuple(f"model.hidden={w} missing.rates={r}" for w in WIDTHS
               for r in ("0.5,0.3", "0.2,0.6"))


def _args(*argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sweep.add_arguments(parser)
    return parser.parse_args(list(map(str, argv)))


def _sweep_argv(workdir) -> list[str]:
    return ["--config", CONFIG, "--workdir", str(workdir), *sum((["--set", s] for s in SMALL), []),
            "--grid", f"model.hidden={','.join(map(str, WIDTHS))}",
            "--grid", f"missing.rates={','.join(RATES)}", "--seeds", "2"]


def _points(*grid, seeds=None, grid_file=None, sets=SMALL) -> list[sweep.Point]:
    argv = ["--config", CONFIG, "--workdir", "unused", *sum((["--set", s] for s in sets), [])]
    argv += sum((["--grid", g] for g in grid), [])
    argv += ["--seeds", seeds] if seeds else []
    argv += ["--grid-file", grid_file] if grid_file else []
    return sweep.points_of(_args(*argv))


# ----------------------------------------------------------------------------------------------
# Grid expansion, names and packing (no training).
# ----------------------------------------------------------------------------------------------


def test_values_split_on_commas_outside_brackets():
    assert sweep.split_values("1e-3,[0.8,0.5],a") == ["1e-3", "[0.8,0.5]", "a"]
    assert sweep.split_values('"a,b",c') == ['"a,b"', "c"]
    assert sweep.parse_axis("optim.lr=0.1,0.01") == ("optim.lr", ["0.1", "0.01"])
    for bad in ("optim.lr", "=1,2", "optim.lr=1,,2", "optim.lr=1,1"):
        with pytest.raises(UserError):
            sweep.parse_axis(bad)


def test_grid_is_the_cartesian_product_in_order_with_file_points(tmp_path):
    """Grid-file points times the axes, the last axis fastest; values as the config holds them
    (``1e-3`` reads ``0.001``); one folder level per key, seeds last."""
    file = tmp_path / "grid.txt"
    file.write_text("# two explicit points\nmodel.hidden=16 'optim.name=sgd'\n\nmodel.hidden=32\n")
    points = _points("optim.lr=1e-3,0.01", grid_file=file)
    assert [p.values for p in points] == [
        (("model.hidden", "16"), ("optim.name", "sgd"), ("optim.lr", "1e-3")),
        (("model.hidden", "16"), ("optim.name", "sgd"), ("optim.lr", "0.01")),
        (("model.hidden", "32"), ("optim.lr", "1e-3")),
        (("model.hidden", "32"), ("optim.lr", "0.01"))]
    assert points[0].label == "model.hidden=16 optim.name=sgd optim.lr=0.001"
    assert points[0].parts() == ["model.hidden-16+optim.name-sgd", "optim.lr-0.001"]
    assert points[2].parts() == ["model.hidden-32", "optim.lr-0.001"]
    assert [p.config.model.hidden for p in points] == [16, 16, 32, 32]
    assert [p.config.optim.lr for p in points] == [1e-3, 0.01, 1e-3, 0.01]

    rates = _points("missing.rates=[0.8,0.5],[0.2,0.5]")
    assert [p.config.missing.rates for p in rates] == [(0.8, 0.5), (0.2, 0.5)]
    assert rates[0].parts() == ["missing.rates-0.8_0.5"]
    assert sweep.folder_name("missing.rates", "0.8,0.5,0.2") == "missing.rates-0.8_0.5_0.2"
    assert sweep.folder_name("data.views", "a/b c") == "data.views-a_b_c"
    long = sweep.folder_name("k", "x" * 300)
    assert len(long) == 100 and long != sweep.folder_name("k", "x" * 299)


def _runs(runs) -> list[tuple]:
    """(dir, slot dirs, replica seeds) of each run; a packed run's folder as ``packed:PARENT``."""
    out = []
    for r in runs:
        head, _, tail = r.dir.rpartition("/")
        packed = r.replicas is not None
        assert packed == tail.startswith("pack-"), r.dir
        out.append((f"packed:{head}" if packed else r.dir, [s.dir for s in r.slots], r.seeds()))
    return out


def test_points_of_one_program_pack_into_one_run_unless_no_pack():
    """``--seeds 3`` over two rates: each rate's 3 seeds share a folder (slot), and both slots
    are one packed run of 6 replicas (each with its slot's missing protocol); a gap in the seeds
    starts another slot of the same run; ``pack=False``: one run per point."""
    points = _points("missing.rates=[0.5,0.3],[0.2,0.6]", seeds="3")
    assert [p.config.train.seed for p in points] == [0, 1, 2] * 2
    assert {p.config.train.num_seeds for p in points} == {1}
    slots = sweep.slots_of(points)
    assert [(s.dir, s.points, s.replicas) for s in slots] == [
        ("missing.rates-0.5_0.3/train.seed-0..2", [0, 1, 2], [[0], [1], [2]]),
        ("missing.rates-0.2_0.6/train.seed-0..2", [3, 4, 5], [[0], [1], [2]])]
    assert [(s.config.train.seed, s.config.train.num_seeds) for s in slots] == [(0, 3), (0, 3)]
    (run,) = sweep.plan(points)
    assert _runs([run]) == [("packed:packed-runs", [s.dir for s in slots], [0, 1, 2] * 2)]
    assert [r.missing.rates for r in run.replicas] == [(0.5, 0.3)] * 3 + [(0.2, 0.6)] * 3
    assert {r.hparams for r in run.replicas} == {()} and run.offsets() == [0, 3]
    assert (run.config.train.seed, run.config.train.num_seeds) == (0, 6)
    from_five = _points("missing.rates=[0.5,0.3]", seeds="2", sets=[*SMALL, "train.seed=5"])
    assert [p.config.train.seed for p in from_five] == [5, 6]

    gap = sweep.plan(_points("train.seed=0,1,3"))
    assert _runs(gap) == [("packed:packed-runs", ["train.seed-0..1", "train.seed-3"], [0, 1, 3])]
    alone = sweep.plan(points, pack=False)
    assert [r.dir for r in alone][:3] == [f"missing.rates-0.5_0.3/train.seed-{s}" for s in range(3)]
    assert {r.replicas for r in alone} == {None}
    # A point of 2 replicas (num_seeds=2) and the next seeds: 0-1, 2-3 -> one slot of 4, which
    # is its own run (its replicas are its config's).
    two = sweep.plan(_points("train.seed=0,2", sets=[*SMALL, "train.num_seeds=2"]))
    assert _runs(two) == [("train.seed-0..3", ["train.seed-0..3"], [0, 1, 2, 3])]
    assert two[0].slots[0].replicas == [[0, 1], [2, 3]]
    # Model selection picks one step for all replicas of a run: such points are not packed.
    selecting = sweep.plan(_points("train.seed=0,1", sets=[*SMALL, "train.eval_every=5"]))
    assert _runs(selecting) == [("train.seed-0", ["train.seed-0"], [0]),
                                ("train.seed-1", ["train.seed-1"], [1])]
    # A finished slot is read back alone; the others still pack.
    rest = sweep.plan(_points("missing.rates=[0.5,0.3],[0.2,0.6],[0.1,0.1]"),
                      finished={"missing.rates-0.5_0.3"})
    assert _runs(rest) == [("missing.rates-0.5_0.3", ["missing.rates-0.5_0.3"], [0]),
                           ("packed:packed-runs", ["missing.rates-0.2_0.6",
                                                   "missing.rates-0.1_0.1"], [0, 0])]


def test_copied_programs_train_point_by_point():
    """Where the policy copies the step once per replica (``train.vmap_seeds=false``, what
    ``auto`` resolves to for a convnet on the CPU), every point trains as its own run of one
    copy (one folder per seed), not as one packed program whose compile grows with its copies;
    vmapped, the same points pack into one run of their two slots."""
    for vmap in ("true", "false"):
        points = _points("missing.rates=[0.5,0.3],[0.2,0.6]", seeds="2",
                         sets=[*SMALL, f"train.vmap_seeds={vmap}"])
        copied = sweep.copied_programs(points, sweep.Datasets())
        runs = sweep.plan(points, copied=copied)
        if vmap == "true":
            assert copied == set() and len(runs) == 1 and len(runs[0].slots) == 2
        else:
            assert copied == {sweep.program_key(points[0].config)}
            assert [(r.dir, r.replicas, r.config.train.num_seeds) for r in runs] == [
                (f"missing.rates-{rates}/train.seed-{seed}", None, 1)
                for rates in ("0.5_0.3", "0.2_0.6") for seed in (0, 1)]


def test_learning_rates_pack_and_structure_splits(monkeypatch):
    """An ``optim.lr`` axis packs (each replica carries its rate; its folder is a pack under
    the width it shares), a width axis makes one run per width; a method field packs only when
    the method's config class declares it ``traceable``."""
    runs = sweep.plan(_points("model.hidden=8,16", "optim.lr=1e-3,3e-3"))
    assert _runs(runs) == [
        ("packed:packed-runs/model.hidden-8", ["model.hidden-8/optim.lr-0.001",
                                               "model.hidden-8/optim.lr-0.003"], [0, 0]),
        ("packed:packed-runs/model.hidden-16", ["model.hidden-16/optim.lr-0.001",
                                                "model.hidden-16/optim.lr-0.003"], [0, 0])]
    assert [r.hparams for r in runs[0].replicas] == [(("optim.lr", 0.001),),
                                                      (("optim.lr", 0.003),)]
    assert runs[0].dir != runs[1].dir
    # The same points planned again name the same folders (a rerun finds its runs).
    assert [r.dir for r in sweep.plan(_points("model.hidden=8,16", "optim.lr=1e-3,3e-3"))] == [
        r.dir for r in runs]

    augmentation = CONFIG.replace("concat", "augmentation")
    points = sweep.resolve(sweep.expand([("method.dropout_p", ["0.1", "0.2"])]), augmentation,
                           SMALL)
    assert [len(r.slots) for r in sweep.plan(points)] == [1, 1]
    monkeypatch.setattr(type(points[0].config.method), "traceable", ("dropout_p",),
                        raising=False)
    (run,) = sweep.plan(points)
    assert [r.hparams for r in run.replicas] == [(("method.dropout_p", 0.1),),
                                                 (("method.dropout_p", 0.2),)]


def test_points_that_would_share_a_folder_are_refused(tmp_path):
    file = tmp_path / "grid.txt"
    file.write_text("optim.lr=0.001\noptim.lr=1e-3\n")
    with pytest.raises(UserError, match="same folder optim.lr-0.001"):
        sweep.plan(_points(grid_file=file))
    file.write_text("train.seed=0\nname=train.seed-0 train.seed=1\n")
    with pytest.raises(UserError, match="would hold the run folder train.seed-0/train.seed-1"):
        sweep.plan(_points(grid_file=file))
    with pytest.raises(UserError, match="nothing to sweep"):
        _points()
    with pytest.raises(UserError, match="exclude each other"):
        _points("train.seed=0,1", seeds="2")
    with pytest.raises(UserError, match="no --grid axis"):
        _points("name=a,b")


def test_named_lines_name_their_folder_and_row(tmp_path):
    """A grid-file line's ``name`` stands for its keys (config files swapped with ``config``);
    the axes and seeds follow as folder levels."""
    file = tmp_path / "grid.txt"
    file.write_text(f"name=small model.hidden=8\nconfig={CONFIG.replace('concat', 'sum')}\n")
    points = _points("optim.lr=0.1", grid_file=file, seeds="2")
    assert [p.config.method.name for p in points] == ["concat"] * 2 + ["sum"] * 2
    assert points[0].config.model.hidden == 8
    assert [p.label for p in points[::2]] == ["small optim.lr=0.1", "config=sum:quick optim.lr=0.1"]
    assert [r.dir for r in sweep.plan(points)] == [
        "small/optim.lr-0.1/train.seed-0..1", "config-sum_quick/optim.lr-0.1/train.seed-0..1"]


def test_a_bad_point_is_one_line_and_nothing_runs(tmp_path):
    """The second point's rates do not fit the 2 views (found by ``train.setup``'s checks), a
    third has an unknown key: one ``UserError`` line naming the point (the CLI prints it and
    exits 2); no folder is written."""
    workdir = tmp_path / "sweep"
    base = ["--config", CONFIG, "--workdir", workdir, *sum((["--set", s] for s in SMALL), [])]
    for grid, point in (("missing.rates=[0.5,0.3],[0.2]", "grid point 2 (missing.rates=0.2)"),
                        ("optim.lrr=1", "grid point 1 (optim.lrr=1)")):
        with pytest.raises(UserError) as error:
            sweep.run(_args(*base, "--grid", grid))
        assert str(error.value).startswith(f"{point}: ") and "\n" not in str(error.value)
        assert not workdir.exists()


# ----------------------------------------------------------------------------------------------
# The 2 x 2 grid, trained.
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """The sweep (its second run interrupted, then the command rerun) and the 4 points of width
    16 alone.

    Returns a dict: ``workdir`` (the sweep's folder), ``alone`` ({(rate, seed): run folder}),
    after the interrupted attempt ``times`` (the mtimes of the first run's files and of its
    points' folders), ``interrupted`` (the manifest) and ``second_existed`` (whether a folder
    of the second run did), and ``out`` (the rerun's stdout)."""
    from mmjax import train

    root = tmp_path_factory.mktemp("sweep")
    workdir = root / "sweep"
    real, calls = train.train, []

    def second_raises(config, run_dir, **kwargs):
        calls.append(run_dir)
        if len(calls) == 2:
            raise Interrupted("stopped by signal 15 (simulated)", 15)
        return real(config, run_dir, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "train", second_raises)
        with pytest.raises(Interrupted):
            sweep.run(_args(*_sweep_argv(workdir)))
    interrupted = json.loads((workdir / "sweep.json").read_text())
    first = [workdir / interrupted["runs"][0]["dir"], workdir / "model.hidden-8"]
    times = {f: f.stat().st_mtime_ns for d in first for f in d.rglob("*") if f.is_file()}
    second_existed = any((workdir / d).exists() for d in DIRS[2:])

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert sweep.run(_args(*_sweep_argv(workdir))) == 0

    alone = {}
    for rate in RATES:
        for seed in (0, 1):
            config = config_lib.override(config_lib.load(CONFIG), [
                *SMALL, "model.hidden=16", f"missing.rates={rate}", f"train.seed={seed}",
                "train.num_seeds=1"])
            alone[rate, seed] = root / f"alone-{rate}-{seed}"
            train.train(config, alone[rate, seed])
    return {"workdir": workdir, "alone": alone, "times": times, "interrupted": interrupted,
            "second_existed": second_existed, "out": out.getvalue()}


def _json(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())


def _losses(run_dir: pathlib.Path) -> np.ndarray:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return np.array([json.loads(line)["loss"] for line in lines])


@pytest.mark.slow
def test_each_replica_equals_its_point_trained_alone(grid):
    """Replica k of a point's folder evaluates exactly as the run with seed k alone (every
    subset and metric), though the run packed two missing rates; the packed run's logged loss
    is the mean of its 4 replicas' (to float32 rounding: the run logs a float32 mean, whose
    sum of 4 terms and division round by at most ~3 * 2^-24 relative)."""
    workdir, alone = grid["workdir"], grid["alone"]
    for rate, point_dir in zip(RATES, DIRS[2:]):
        point = _json(workdir / point_dir / "eval.json")
        assert point["num_seeds"] == 2
        assert _json(workdir / point_dir / "config.json")["missing"]["rates"] == json.loads(rate)
        for seed in (0, 1):
            single = _json(alone[rate, seed] / "eval.json")
            for condition, metrics in single["seeds"]["subsets"].items():
                for metric, (value,) in metrics.items():
                    assert point["seeds"]["subsets"][condition][metric][seed] == value
    run_dir = workdir / _json(workdir / "sweep.json")["runs"][-1]["dir"]
    mean = np.mean([_losses(alone[r, s]) for r in RATES for s in (0, 1)], axis=0)
    np.testing.assert_allclose(_losses(run_dir), mean, rtol=3e-7)
    assert not np.allclose(_losses(alone[RATES[0], 0]), _losses(alone[RATES[1], 0]))


def _rows(path: pathlib.Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_each_point_logs_its_own_curve(grid):
    """The packed run logs every replica's values (``metrics-replicas.jsonl``), each its point's
    run alone: the loss exactly; grad_norm and param_norm, sums of squares over every parameter
    that the batched program reduces in another order, to 1e-6 relative (~log2 of their 10^4
    terms times float32's 2^-24). Each point's folder gets its ``metrics.jsonl``: its replicas'
    float32 mean, as a run of 2 seeds logs it (every column but the packed run's steps_per_sec),
    and its ``metrics-replicas.jsonl``: its own replicas' values, in seed order."""
    workdir, alone = grid["workdir"], grid["alone"]
    run = _json(workdir / "sweep.json")["runs"][-1]
    packed = _rows(workdir / run["dir"] / "metrics-replicas.jsonl")
    for j, slot in enumerate(run["slots"]):
        rate = json.dumps(_json(workdir / slot / "config.json")["missing"]["rates"])
        seeds = [_rows(alone[rate.replace(" ", ""), seed] / "metrics.jsonl") for seed in (0, 1)]
        point = _rows(workdir / slot / "metrics.jsonl")
        assert _rows(workdir / slot / "metrics-replicas.jsonl") == [
            {k: v if k == "step" else np.float32(v[2 * j:2 * j + 2]).tolist()
             for k, v in many.items()} for many in packed]
        assert [r["step"] for r in point] == [r["step"] for r in packed] == [
            r["step"] for r in seeds[0]] == [5, 10]
        for seed in (0, 1):
            for many, own in zip(packed, seeds[seed]):
                assert set(many) == set(own) - {"steps_per_sec"}
                assert many["loss"][2 * j + seed] == own["loss"]
                for k in ("grad_norm", "param_norm"):
                    np.testing.assert_allclose(many[k][2 * j + seed], own[k], rtol=1e-6)
        for row, many in zip(point, packed):
            assert set(row) == set(many)
            for k in set(row) - {"step"}:
                assert row[k] == float(np.asarray(many[k][2 * j:2 * j + 2], np.float32).mean())


def test_report_reads_each_point_folder_once(grid):
    """``mmjax report DIR`` finds the 4 point folders (2 seeds each), not the packed runs."""
    from mmjax import report

    runs = report.find_runs([grid["workdir"]])
    assert sorted(r.name for r in runs) == sorted(DIRS)
    assert {r.result["num_seeds"] for r in runs} == {2}


def test_rerun_resumes_without_retraining_the_finished_run(grid):
    """After the interruption the manifest says run 1 done, run 2 interrupted; the rerun left
    run 1's files and its points' untouched (read back, each point alone) and trained run 2;
    its manifest keeps run 1's record as it was."""
    workdir, times, interrupted = grid["workdir"], grid["times"], grid["interrupted"]
    assert [r["status"] for r in interrupted["runs"]] == ["done", "interrupted"]
    assert [r["slots"] for r in interrupted["runs"]] == [list(DIRS[:2]), list(DIRS[2:])]
    assert [r["seeds"] for r in interrupted["runs"]] == [[0, 1, 0, 1]] * 2
    assert "simulated" in interrupted["runs"][1]["error"]
    assert not grid["second_existed"]
    assert {"eval.json", "eval-replicas.json", "replicas.json", "metrics.jsonl"} <= {
        f.name for f in times}
    assert any("checkpoints" in f.parts for f in times)
    for f, t in times.items():
        assert f.stat().st_mtime_ns == t, f
    final = _json(workdir / "sweep.json")
    assert final["runs"][0] == interrupted["runs"][0]
    assert [r["status"] for r in final["runs"]] == ["done"] * 2
    assert [(p["dir"], p["replicas"], p["run"]) for p in final["points"]] == [
        (d, [s], final["runs"][i // 2]["dir"]) for i, d in enumerate(DIRS) for s in (0, 1)]
    assert _json(workdir / DIRS[3] / "eval.json")["step"] == 10


def test_a_rerun_keeps_each_runs_record(grid, capsys):
    """The finished sweep run again reads every point back and rewrites its manifest as it was:
    each packed run's folder, seeds, slots and seconds of training (not those of the read-back,
    nor one run per point)."""
    workdir = grid["workdir"]
    before = _json(workdir / "sweep.json")
    assert [r["dir"].startswith("packed-runs/") for r in before["runs"]] == [True, True]
    assert sweep.run(_args(*_sweep_argv(workdir))) == 0
    assert _json(workdir / "sweep.json") == before


def test_a_grid_that_gained_points_trains_only_them(grid, tmp_path, capsys):
    """A width put in front of the grid's (a copy of the sweep's folder): only its points train,
    as a new packed run; the old runs' records are kept, their points renumbered (4 to 11), and
    their folders untouched."""
    import shutil

    workdir = tmp_path / "sweep"
    shutil.copytree(grid["workdir"], workdir)
    before = _json(workdir / "sweep.json")
    old = [workdir / d for r in before["runs"] for d in (r["dir"], *r["slots"])]
    times = {f: f.stat().st_mtime_ns for d in old for f in d.rglob("*") if f.is_file()}
    argv = _sweep_argv(workdir)
    argv[argv.index("model.hidden=8,16")] = "model.hidden=32,8,16"
    assert sweep.run(_args(*argv)) == 0
    after = _json(workdir / "sweep.json")
    new, *kept = after["runs"]
    assert kept == [{**r, "points": list(range(4 * i + 4, 4 * i + 8))}
                    for i, r in enumerate(before["runs"])]
    assert new["dir"].startswith("packed-runs/model.hidden-32/") and new["status"] == "done"
    assert (new["points"], new["seeds"]) == ([0, 1, 2, 3], [0, 1, 0, 1])
    assert [p["run"] for p in after["points"]] == [
        r["dir"] for r in after["runs"] for _ in range(4)]
    for f, t in times.items():
        assert f.stat().st_mtime_ns == t, f


def test_a_damaged_manifest_is_recorded_anew(grid, tmp_path, capsys):
    """The finished sweep (a copy) whose ``sweep.json`` is damaged: said on stderr, and every
    point recorded as today's first sweep would, as the runs that read them back, each alone."""
    import shutil

    workdir = tmp_path / "sweep"
    shutil.copytree(grid["workdir"], workdir)
    (workdir / "sweep.json").write_text('{"runs": [{"status": "done"}]')
    assert sweep.run(_args(*_sweep_argv(workdir))) == 0
    assert "sweep.json is no readable sweep record (JSONDecodeError" in capsys.readouterr().err
    runs = _json(workdir / "sweep.json")["runs"]
    assert [(r["dir"], r["slots"], r["points"], r["status"]) for r in runs] == [
        (d, [d], [2 * i, 2 * i + 1], "done") for i, d in enumerate(DIRS)]


def test_a_run_is_kept_while_its_slots_are_finished_points_of_the_grid():
    """``kept_runs``: a done run whose slot folders are all finished slots of this grid, its
    points renumbered; not one with a slot that is unfinished or no longer in the grid."""
    slots = sweep.slots_of(_points("missing.rates=[0.1,0.1],[0.5,0.3],[0.2,0.6]"))
    a, b, c = (slot.dir for slot in slots)
    packed = {"dir": "packed-runs/pack-1", "seeds": [0, 0], "slots": [b, c], "points": [0, 1],
              "status": "done", "error": None, "seconds": 12.5}
    gone = {**packed, "dir": "packed-runs/pack-2", "slots": [a, "missing.rates-0.9_0.9"]}
    assert sweep.kept_runs([packed, gone], slots, {a, b, c}) == [{**packed, "points": [1, 2]}]
    assert sweep.kept_runs([packed, gone], slots, {a, b}) == []


def test_a_record_of_another_shape_is_no_previous_run(tmp_path, capsys):
    """``previous_runs``: the done runs of a sweep record; none (said on stderr) from a file
    that is no JSON, or whose runs are not records of a folder and its slot folders."""
    record = tmp_path / "sweep.json"
    assert sweep.previous_runs(tmp_path) == []
    done = {"dir": "a", "slots": ["a"], "status": "done", "seconds": 2.0}
    for text in (b"\xff", b"[]", b'{"runs": 5}', b'{"runs": [1]}',
                 b'{"runs": [{"status": "done"}]}'):
        record.write_bytes(text)
        assert sweep.previous_runs(tmp_path) == []
        assert "sweep.json is no readable sweep record" in capsys.readouterr().err, text
    record.write_text(json.dumps({"runs": [done, {**done, "status": "failed"},
                                           {**done, "slots": []}, {**done, "slots": "a"}]}))
    assert sweep.previous_runs(tmp_path) == [done]
    assert capsys.readouterr().err == ""


def test_a_changed_config_is_refused_before_any_run(grid):
    """The same sweep with another learning rate finds runs of the old config in its folders:
    one line naming the first point and the difference; the manifest is not rewritten."""
    workdir = grid["workdir"]
    before = (workdir / "sweep.json").stat().st_mtime_ns
    with pytest.raises(UserError, match=r"^grid point 1 \(model.hidden=8 missing.rates=0.5,0.3\): "
                                        r".*different config \(optim.lr: 0.001 there, 0.01 now\)"):
        sweep.run(_args(*_sweep_argv(workdir), "--set", "optim.lr=0.01"))
    assert (workdir / "sweep.json").stat().st_mtime_ns == before


def _md_rows(text: str) -> dict[str, list[str]]:
    """{first cell: other cells} of the markdown table rows in ``text`` (header included)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def test_table_pools_each_points_seeds(grid, capsys):
    """The printed table: one row per rate, one column per subset and the average; each cell the
    mean ± sample std of the two seeds' accuracies of the runs alone. Rerun with ``--col-order
    average`` (the runs are read back), the table holds that column alone."""
    alone, rows = grid["alone"], _md_rows(grid["out"])
    assert rows["model.hidden missing.rates"] == ["fac+pix", "fac", "pix", "average"]
    assert all(label in rows for label in LABELS)
    for rate, label in zip(RATES, LABELS[2:]):
        results = [_json(alone[rate, seed] / "eval.json") for seed in (0, 1)]
        expected = []
        for condition in ("fac+pix", "fac", "pix"):
            values = [r["subsets"][condition]["accuracy"] for r in results]
            expected.append(f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}")
        values = [r["average"]["accuracy"] for r in results]
        expected.append(f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}")
        assert rows[label] == expected
    capsys.readouterr()
    assert sweep.run(_args(*_sweep_argv(grid["workdir"]), "--col-order", "average")) == 0
    averages = _md_rows(capsys.readouterr().out)
    assert averages["model.hidden missing.rates"] == ["average"]
    assert [averages[label] for label in LABELS] == [rows[label][-1:] for label in LABELS]


def test_the_command_line_runs_a_dry_sweep(capsys, tmp_path):
    """``mmjax sweep ... --dry-run`` through the CLI lists the points and their runs, writes
    nothing, and a bad grid key is one line with exit 2."""
    from mmjax import cli

    code = cli.main(["sweep", *_sweep_argv(tmp_path / "sw"), "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert all(d in out for d in DIRS) and not (tmp_path / "sw").exists()
    code = cli.main(["sweep", "--config", CONFIG, "--workdir", str(tmp_path / "bad"),
                     "--grid", "train.nope=1,2"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nope" in err
    assert not (tmp_path / "bad").exists()
