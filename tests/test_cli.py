"""Tests of the ``mmjax`` command line: user errors, ``eval`` protocols, ``data info``, ``bench``.

The contract (mmjax/cli.py, DESIGN §8): every mistake a user can fix exits with code 2 and exactly
one line ``mmjax: error: ...`` on stderr, with no traceback, before any training starts and without
creating or touching a workdir. A few cases run the real console entry point in a subprocess (exit
code, stderr, an 8-device process); the rest call ``mmjax.cli.main`` in-process, which is what
``python -m mmjax`` runs (``sys.exit(main())``) and is much cheaper.
"""

import contextlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import mmjax.data
from mmjax import cli, evaluate, train
from mmjax.config import DataConfig, TrainConfig
from mmjax.data.base import Dataset, Split

from toy import run_cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
MFEAT_CONCAT = str(ROOT / "configs" / "mfeat" / "concat.py") + ":quick"
MFEAT_AUG = str(ROOT / "configs" / "mfeat" / "augmentation.py") + ":quick"
MFEAT_LOWER = str(ROOT / "configs" / "mfeat" / "lower_bound.py") + ":quick"
HEADLINE = ("accuracy", "weighted_f1", "macro_f1")  # the columns `mmjax train|eval` print
# A short run on two of mfeat's six views: 3 evaluation subsets, a fast compile.
SMALL = ["--set", "data.views=fac,pix", "--set", "train.steps=20", "--set", "train.log_every=10",
         "--set", "train.checkpoint_every=10", "--set", "train.unroll=1"]


def run_mmjax(*args: str, env: dict | None = None, timeout: float = 300):
    """Runs ``python -m mmjax ARGS`` (inheriting conftest's data and compile caches)."""
    return subprocess.run([sys.executable, "-m", "mmjax", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def assert_one_line_error(stderr: str, *fragments: str) -> str:
    """Asserts ``stderr`` is one ``mmjax...: error: ...`` line, no traceback, with ``fragments``."""
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one stderr line, got:\n{stderr}"
    assert "Traceback" not in stderr
    assert lines[0].startswith("mmjax") and ": error: " in lines[0], lines[0]
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]



def snapshot(directory: pathlib.Path) -> dict:
    """Every file under ``directory`` -> (bytes, mtime_ns): detects any write, even a same one."""
    return {str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(directory.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------
# Bad input -> exit 2, one line, nothing created (subprocess: the real entry point).
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["--set", "train.stpes=5"], ["unknown config key 'train.stpes'", "steps", "batch_size"]),
    (["--set", "train.steps=abc"], ["train.steps", "expects int", "'abc'"]),
    (["--set", "method.name=nope"], ["unknown method 'nope'", "concat"]),
])
def test_bad_config_exits_2_in_a_subprocess(tmp_path, args, fragments):
    """Unknown key, wrong type, unknown method: exit 2, one stderr line, no workdir."""
    workdir = tmp_path / "run"
    result = run_mmjax("train", "--config", MFEAT_CONCAT, "--workdir", str(workdir), *args)
    assert result.returncode == 2
    assert_one_line_error(result.stderr, *fragments)
    assert result.stdout == ""
    assert not workdir.exists()


def test_eval_protocols_are_listed_once():
    """The CLI's --protocol choices are config.EVAL_PROTOCOLS, and each has its runner."""
    from mmjax.config import EVAL_PROTOCOLS
    assert tuple(evaluate.RUNNERS) == EVAL_PROTOCOLS
    action = next(a for a in cli._parser()._subparsers._group_actions[0].choices["eval"]._actions
                  if a.dest == "protocol")
    assert tuple(action.choices) == EVAL_PROTOCOLS


def test_missing_config_file_and_usage_errors_exit_2(tmp_path):
    """A config path that does not exist, and an argparse usage error, both end in one line."""
    workdir = tmp_path / "run"
    result = run_mmjax("train", "--config", str(tmp_path / "nope.py"), "--workdir", str(workdir))
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "config file not found", "nope.py")
    result = run_mmjax("train", "--config", MFEAT_CONCAT)  # no --workdir
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "--workdir")
    assert not workdir.exists()


def test_batch_not_divisible_by_devices_exits_2(tmp_path):
    """On 8 (simulated) devices a batch of 60 cannot be split evenly: exit 2 before training."""
    workdir = tmp_path / "run"
    result = run_mmjax("train", "--config", MFEAT_CONCAT, "--workdir", str(workdir),
                       "--set", "train.batch_size=60",
                       env={"XLA_FLAGS": "--xla_force_host_platform_device_count=8"})
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "train.batch_size=60", "8 devices")
    assert not workdir.exists()


# ----------------------------------------------------------------------------------------------
# Bad input -> exit 2 (in-process).
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("config, args, fragments", [
    (MFEAT_CONCAT, ["--set", "missing.protocol=independent",
                    "--set", "missing.rates=[1.5,0,0,0,0,0]"], ["missing.rates[0]", "1.5"]),
    (MFEAT_CONCAT, ["--set", "missing.protocol=independent", "--set", "missing.rates=0.1,0.2"],
     ["one rate per modality (6)"]),
    (MFEAT_CONCAT, ["--set", "missing.protocol=at_least_one", "--set", "missing.rate=-0.1"],
     ["missing.rate", "-0.1"]),
    (MFEAT_CONCAT, ["--set", "missing.protocol=dropout"],
     ["'missing.protocol' expects one of none, independent, at_least_one, paired; got 'dropout'"]),
    (MFEAT_CONCAT, ["--set", "missing.protocol=independent", "--set", "missing.rates=1,1,1,1,1,1",
                    "--set", "missing.forbid_empty=false"], ["no modality"]),
    (MFEAT_AUG, ["--set", "method.dropout_p=2"], ["method.dropout_p", "2"]),
    (MFEAT_CONCAT, ["--set", "data.views=fac,nope"], ["nope", "fac, fou, kar, mor, pix, zer"]),
    (MFEAT_LOWER, ["--set", "method.modality=nope"], ["method.modality 'nope'", "fac"]),
    (MFEAT_CONCAT, ["--set", "data.name=nope"], ["unknown dataset 'nope'", "mfeat"]),
    (MFEAT_CONCAT, ["--set", "method.name=augmentation"], ["AugmentationConfig"]),
    (MFEAT_CONCAT, ["--set", "train.steps=25"], ["train.steps=25", "steps_per_call=10"]),
    (MFEAT_CONCAT, ["--set", "train.batch_size=5000"], ["5000", "1400 training examples"]),
    (MFEAT_CONCAT, ["--set", "optim.name=rmsprop"],
     ["'optim.name' expects one of adam, adamw, sgd; got 'rmsprop'"]),
    (MFEAT_CONCAT, ["--set", "train.dtype=float16"],
     ["'train.dtype' expects one of float32, bfloat16; got 'float16'"]),
])
def test_bad_config_exits_2(capsys, tmp_path, config, args, fragments):
    """Rates outside [0, 1], unknown modality/dataset/method, bad loop settings: one line, exit 2,
    and the workdir is never created (the checks run before training)."""
    workdir = tmp_path / "run"
    code, out, err = run_cli(
        capsys, ["train", "--config", config, "--workdir", str(workdir), *args])
    assert code == 2
    assert_one_line_error(err, *fragments)
    assert out == ""
    assert not workdir.exists()


def _corrupt(split_name: str, how: str):
    """A replacement for ``mmjax.data.load`` returning mfeat with one defect in one split."""
    real_load = mmjax.data.load

    def load(name, **options):
        ds = real_load(name, **options)
        s = ds.splits[split_name]
        inputs, present, label = dict(s.inputs), s.present.copy(), s.label.copy()
        if how == "shape":
            inputs["fac"] = inputs["fac"][:, :-1]
        elif how == "dtype":
            inputs["pix"] = inputs["pix"].astype(np.int32)
        elif how == "nan":
            inputs["fac"] = inputs["fac"].copy()
            inputs["fac"][17, 3] = np.nan
        elif how == "inf":
            inputs["pix"] = inputs["pix"].copy()
            inputs["pix"][5, 0] = np.inf
        elif how == "label_high":
            label[3] = ds.spec.num_classes
        elif how == "label_negative":
            label[3] = -1
        elif how == "label_dtype":
            label = label.astype(np.float32)
        elif how == "no_modality":
            present[11] = False
        elif how == "present_shape":
            present = present[:, :1]
        elif how == "missing_input":
            del inputs["pix"]
        return Dataset(ds.spec, {**ds.splits, split_name: Split(inputs, present, label)})

    return load


@pytest.mark.parametrize("split_name, how, fragments", [
    ("train", "shape", ["mfeat/train", "'fac'", "shape (1400, 215)", "expected (1400, 216)"]),
    ("train", "dtype", ["mfeat/train", "'pix'", "int32"]),
    ("train", "nan", ["mfeat/train", "NaN", "sample 17"]),
    ("test", "inf", ["mfeat/test", "'pix'", "sample 5"]),
    ("train", "label_high", ["mfeat/train", "labels must lie in [0, 9]", "0..10"]),
    ("val", "label_negative", ["mfeat/val", "labels must lie in [0, 9]", "-1..9"]),
    ("train", "label_dtype", ["mfeat/train", "labels must be int"]),
    ("train", "no_modality", ["mfeat/train", "sample 11 has no modality"]),
    ("test", "present_shape", ["mfeat/test", "present must be bool[400, 2]"]),
    ("train", "missing_input", ["mfeat/train", "modality 'pix' is missing"]),
])
def test_bad_data_exits_2(capsys, monkeypatch, tmp_path, split_name, how, fragments):
    """Wrong shape/dtype, NaN/inf inputs, labels out of range, a sample with no modality: one line
    naming the split and the problem, exit 2, before any training or workdir write."""
    monkeypatch.setattr(mmjax.data, "load", _corrupt(split_name, how))
    workdir = tmp_path / "run"
    code, out, err = run_cli(
        capsys, ["train", "--config", MFEAT_CONCAT, "--workdir", str(workdir), *SMALL])
    assert code == 2
    assert_one_line_error(err, *fragments)
    assert not workdir.exists()


def test_workdir_with_foreign_files_is_left_alone(capsys, tmp_path):
    """A non-empty directory that is not an mmjax run: exit 2, its files untouched."""
    workdir = tmp_path / "mine"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("my thesis\n")
    before = snapshot(workdir)
    code, _, err = run_cli(
        capsys, ["train", "--config", MFEAT_CONCAT, "--workdir", str(workdir), *SMALL])
    assert code == 2
    assert_one_line_error(err, "is not an mmjax run", str(workdir))
    assert snapshot(workdir) == before


# ----------------------------------------------------------------------------------------------
# A finished run: resume guards, re-running, eval protocols.
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 20-step concat run on two mfeat views, trained through ``cli.main``; (workdir, stdout)."""
    workdir = tmp_path_factory.mktemp("cli") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["train", "--config", MFEAT_CONCAT, "--workdir", str(workdir), *SMALL])
    assert code == 0
    return workdir, out.getvalue()


def test_train_writes_the_workdir_layout(finished_run):
    """config.json, metrics.jsonl, checkpoints/, eval.json and eval.md; the table is printed."""
    workdir, stdout = finished_run
    assert {p.name for p in workdir.iterdir()} == {
        "config.json", "metrics.jsonl", "checkpoints", "eval.json", "eval.md"}
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["10", "20"]
    assert "| fac+pix |" in stdout and "| average |" in stdout
    # The printed table is eval.json's headline metrics; eval.md has every metric.
    result = json.loads((workdir / "eval.json").read_text())
    assert stdout == evaluate.to_markdown(result, HEADLINE) + "\n"
    assert (workdir / "eval.md").read_text() == evaluate.to_markdown(result)


def test_one_seed_tables_show_the_mean_alone(finished_run):
    """A one-seed run's table has no ``± 0.0000`` (a std of one value is not a spread); with two
    seeds every cell is ``mean ± std``."""
    workdir, stdout = finished_run
    result = json.loads((workdir / "eval.json").read_text())
    assert result["num_seeds"] == 1 and "±" not in stdout and ", 1 seed" in stdout
    two = {**result, "num_seeds": 2}
    table = evaluate.to_markdown(two, HEADLINE)
    mean, std = result["average"]["accuracy"], result["std"]["average"]["accuracy"]
    assert f"| average | {mean:.4f} ± {std:.4f} |" in table and "2 seeds, mean ± std" in table


def test_resume_with_a_different_config_is_refused(capsys, finished_run):
    """Re-running a workdir with another --set: exit 2 naming the differing key; nothing written."""
    workdir, _ = finished_run
    before = snapshot(workdir)
    code, out, err = run_cli(
        capsys, ["train", "--config", MFEAT_CONCAT, "--workdir", str(workdir), *SMALL,
                 "--set", "optim.lr=0.01"])
    assert code == 2
    assert_one_line_error(err, "different config", "optim.lr", "0.001", "0.01")
    assert out == ""
    assert snapshot(workdir) == before


def test_rerunning_a_finished_run_does_not_train(capsys, monkeypatch, finished_run):
    """``train`` on a finished workdir restores the last checkpoint, runs no training call, keeps
    the log and checkpoints, and prints the same table."""
    workdir, first_stdout = finished_run
    before = snapshot(workdir / "checkpoints")
    log = (workdir / "metrics.jsonl").read_text()

    def no_chunk(s):
        def chunk(*args):
            raise AssertionError("a finished run was trained again")
        return chunk

    monkeypatch.setattr(train, "make_train_chunk", no_chunk)
    code, out, err = run_cli(
        capsys, ["train", "--config", MFEAT_CONCAT, "--workdir", str(workdir), *SMALL])
    assert code == 0, err
    assert out == first_stdout
    assert (workdir / "metrics.jsonl").read_text() == log
    assert snapshot(workdir / "checkpoints") == before


def test_a_field_added_since_the_run_reads_as_its_default(capsys, tmp_path, finished_run):
    """A config.json written before a field existed (here: without ``data.seed``, whose default
    the run used) resumes as the same run, and is left as it was; without ``train.steps``, whose
    default it did not use, it is refused naming the field."""
    workdir = tmp_path / "run"
    shutil.copytree(finished_run[0], workdir)
    config_file = workdir / "config.json"
    old = json.loads(config_file.read_text())
    assert old["data"]["seed"] == DataConfig().seed and old["train"]["steps"] != TrainConfig().steps
    del old["data"]["seed"]
    config_file.write_text(json.dumps(old))
    before = config_file.read_text()
    code, out, err = run_cli(
        capsys, ["train", "--config", MFEAT_CONCAT, "--workdir", str(workdir), *SMALL])
    assert code == 0, err
    assert out == finished_run[1]
    assert config_file.read_text() == before
    del old["train"]["steps"]
    config_file.write_text(json.dumps(old))
    code, out, err = run_cli(
        capsys, ["train", "--config", MFEAT_CONCAT, "--workdir", str(workdir), *SMALL])
    assert code == 2
    assert_one_line_error(err, "different config", "train.steps")


def _check_schema(result: dict, protocol: str, conditions: list[str], metrics: set[str]):
    assert set(result) == {"dataset", "method", "protocol", "split", "step", "num_seeds",
                           "subsets", "average", "std", "seeds"}
    assert (result["split"], result["step"]) == ("test", 20)
    assert (result["dataset"], result["method"], result["protocol"]) == ("mfeat", "concat",
                                                                        protocol)
    assert result["num_seeds"] == 1
    assert list(result["subsets"]) == conditions
    assert set(result["std"]) == {"subsets", "average"}
    assert list(result["std"]["subsets"]) == conditions
    for name in conditions:
        assert set(result["subsets"][name]) == metrics
        assert set(result["std"]["subsets"][name]) == metrics
        assert all(0.0 <= v <= 1.0 for v in result["subsets"][name].values())
        assert all(v == 0.0 for v in result["std"]["subsets"][name].values())  # one seed
    assert set(result["average"]) == metrics
    for k in metrics:
        mean = np.mean([result["subsets"][c][k] for c in conditions])
        assert result["average"][k] == pytest.approx(mean, rel=1e-12)


METRICS = {"accuracy", "macro_recall", "weighted_f1", "macro_f1"}


def test_eval_protocols_write_documented_schema(capsys, finished_run):
    """``mmjax eval --protocol subsets|missing-rate|corruption|paired-fraction`` write
    ``eval-[<protocol>-]<split>.json`` and ``.md`` with the documented schema, never training's
    eval.json / eval.md;
    ``subsets`` reproduces the eval.json that training wrote."""
    workdir, _ = finished_run
    trained = json.loads((workdir / "eval.json").read_text())
    metrics = set(trained["subsets"]["fac+pix"]) & METRICS
    assert metrics == METRICS
    before = snapshot(workdir)

    code, out, err = run_cli(capsys, ["eval", "--workdir", str(workdir)])
    assert code == 0, err
    assert err == ""  # a finished run: no warning
    assert json.loads((workdir / "eval-test.json").read_text()) == trained
    _check_schema(trained, "subsets", ["fac+pix", "fac", "pix"], set(trained["average"]))

    code, out, err = run_cli(
        capsys, ["eval", "--workdir", str(workdir), "--protocol", "missing-rate"])
    assert code == 0, err
    result = json.loads((workdir / "eval-missing-rate-test.json").read_text())
    rates = ["rate=0", "rate=0.1", "rate=0.3", "rate=0.5", "rate=0.7", "rate=0.9"]
    _check_schema(result, "missing-rate", rates, set(trained["average"]))
    assert (workdir / "eval-missing-rate-test.md").read_text() == evaluate.to_markdown(result)
    assert out == evaluate.to_markdown(result, HEADLINE) + "\n"
    # Rate 0 is the complete test set: the same accuracy as the fac+pix subset.
    assert result["subsets"]["rate=0"]["accuracy"] == trained["subsets"]["fac+pix"]["accuracy"]

    code, out, err = run_cli(
        capsys, ["eval", "--workdir", str(workdir), "--protocol", "corruption",
                 "--set", "eval.noise_sigmas=0.1,0.3", "--set", "eval.mask_probs=[0.2]"])
    assert code == 0, err
    result = json.loads((workdir / "eval-corruption-test.json").read_text())
    conditions = ["clean"] + [f"{m} {c}" for m in ("fac", "pix")
                              for c in ("noise sigma=0.1", "noise sigma=0.3", "mask p=0.2")]
    _check_schema(result, "corruption", conditions, set(trained["average"]))
    assert result["subsets"]["clean"] == trained["subsets"]["fac+pix"]
    assert (workdir / "eval-corruption-test.md").read_text() == evaluate.to_markdown(result)

    code, out, err = run_cli(
        capsys, ["eval", "--workdir", str(workdir), "--protocol", "paired-fraction",
                 "--set", "eval.paired_fractions=0,0.5,1"])
    assert code == 0, err
    result = json.loads((workdir / "eval-paired-fraction-test.json").read_text())
    conditions = [f"{m} eta={e}" for m in ("pix", "fac") for e in ("0", "0.5", "1")]
    _check_schema(result, "paired-fraction", conditions, set(trained["average"]))
    # eta = 1 is the complete test set, eta = 0 the complete modality alone (every metric).
    for others, alone in (("pix", "fac"), ("fac", "pix")):
        assert result["subsets"][f"{others} eta=1"] == trained["subsets"]["fac+pix"]
        assert result["subsets"][f"{others} eta=0"] == trained["subsets"][alone]
    after = snapshot(workdir)
    assert {k: v for k, v in after.items() if k in before} == before  # nothing rewritten
    for name in ("eval-test", "eval-missing-rate-test", "eval-corruption-test",
                 "eval-paired-fraction-test"):  # leave the
        (workdir / f"{name}.json").unlink()  # fixture's workdir as training left it
        (workdir / f"{name}.md").unlink()


def test_eval_user_errors(capsys, tmp_path, finished_run):
    """eval on a directory that is no run, a non-eval override, an unknown protocol: exit 2."""
    workdir, _ = finished_run
    code, _, err = run_cli(capsys, ["eval", "--workdir", str(tmp_path)])
    assert code == 2
    assert_one_line_error(err, "is not an mmjax run")
    code, _, err = run_cli(
        capsys, ["eval", "--workdir", str(workdir), "--set", "train.steps=5"])
    assert code == 2
    assert_one_line_error(err, "eval.*")
    code, _, err = run_cli(
        capsys, ["eval", "--workdir", str(workdir), "--protocol", "nope"])
    assert code == 2
    assert_one_line_error(err, "nope")


# ----------------------------------------------------------------------------------------------
# data, bench.
# ----------------------------------------------------------------------------------------------


def test_data_info_mfeat(capsys):
    """``mmjax data info mfeat`` describes the six views and the 1400/200/400 split."""
    code, out, err = run_cli(capsys, ["data", "info", "mfeat"])
    assert code == 0, err
    assert out.startswith("mfeat: classification, 10 classes")
    for view, dim in (("fac", 216), ("fou", 76), ("kar", 64), ("mor", 6), ("pix", 240),
                      ("zer", 47)):
        assert f"modality {view:<6s} float32 [{dim}]" in out
    for split, n in (("train", 1400), ("val", 200), ("test", 400)):
        assert f"{split:<5s} {n:5d} samples" in out

    code, _, err = run_cli(capsys, ["data", "info", "nope"])
    assert code == 2
    assert_one_line_error(err, "unknown dataset 'nope'")
    code, _, err = run_cli(capsys, ["data", "info", "mfeat", "--set", "train.steps=1"])
    assert code == 2
    assert_one_line_error(err, "data.*")


def test_data_build_prints_only_the_path(capsys, monkeypatch, tmp_path):
    """On an empty cache ``mmjax data build`` prepares the data and prints one line, where it is:
    tfds' own "downloaded and prepared" line goes to stderr, so stdout can be piped (the same
    holds for the result table of a ``train`` that builds its data first)."""
    monkeypatch.setenv("MMJAX_DATA_DIR", str(tmp_path))
    code, out, err = run_cli(capsys, ["data", "build", "mfeat"])
    assert code == 0, err
    assert out.splitlines() == [str(mmjax.data.build("mfeat"))]
    assert "prepared" in err


@pytest.mark.slow
def test_bench_prints_one_json_line(capsys):
    """``mmjax bench --methods concat --dataset mfeat --repeats 2``: one JSON record on stdout
    with the documented fields (µs/step, samples/s, compile s, peak memory, device kind)."""
    code, out, err = run_cli(
        capsys, ["bench", "--methods", "concat", "--dataset", "mfeat", "--repeats", "2",
                 "--steps-per-call", "2", "--batch", "32"])
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert {"method", "dataset", "batch", "num_seeds", "steps_per_call", "dtype", "devices",
            "device_kind", "jax", "compile_s", "us_per_step_median", "us_per_step_p90",
            "samples_per_s", "flops_per_step", "gflops_per_s",
            "peak_memory_bytes"} <= set(record)
    assert (record["method"], record["dataset"], record["batch"], record["devices"]) == (
        "concat", "mfeat", 32, 1)
    assert record["us_per_step_median"] > 0 and record["compile_s"] > 0
    assert record["samples_per_s"] == pytest.approx(32 / record["us_per_step_median"] * 1e6,
                                                    rel=1e-3)

    code, _, err = run_cli(capsys, ["bench", "--methods", "nope", "--dataset", "mfeat"])
    assert code == 2
    assert_one_line_error(err, "unknown method 'nope'")


def test_version_list_and_help(capsys):
    """``--version`` names the package version; ``list`` prints the registries one name per line;
    the top-level help is plain text (no reStructuredText backticks)."""
    import mmjax
    from mmjax import methods

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"mmjax {mmjax.__version__}"
    code, out, _ = run_cli(capsys, ["list", "methods"])
    assert code == 0 and out.split() == sorted(methods.REGISTRY)
    code, out, _ = run_cli(capsys, ["list", "datasets"])
    assert code == 0 and out.split() == list(mmjax.data.NAMES)
    code, out, _ = run_cli(capsys, ["list", "configs"])
    assert code == 0 and str(ROOT / "configs" / "mfeat" / "concat.py") in out.split()
    help_text = cli._parser().format_help()
    assert "report" in help_text and "``" not in help_text


def test_compile_cache_defaults_to_the_user_cache(monkeypatch, tmp_path):
    """Without ``$JAX_COMPILATION_CACHE_DIR`` compiled programs go to ~/.cache/mmjax/jax-compile
    (``$XDG_CACHE_HOME``); ``--no-compile-cache`` turns the cache off; the variable wins."""
    import jax

    before = jax.config.jax_compilation_cache_dir
    try:
        monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
        assert cli.compile_cache(True) == str(tmp_path / "mmjax" / "jax-compile")
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "mmjax" / "jax-compile")
        assert cli.compile_cache(False) is None and jax.config.jax_compilation_cache_dir is None
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "/somewhere/else")
        assert cli.compile_cache(True) == "/somewhere/else"
    finally:
        jax.config.update("jax_compilation_cache_dir", before)
