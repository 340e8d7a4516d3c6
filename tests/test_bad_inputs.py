"""Bad inputs, damaged files, two writers and signals: one line, the right exit code, nothing lost.

A table of (command, expected exit, message fragment, what happens to the workdir) runs through
``mmjax.cli.main`` in-process against copies of one tiny finished run (mfeat concat on two views,
2 steps of one step per call, checkpoints 1 and 2), damaged per case. Every case that must fail
checks that every file that was there is byte-identical afterwards. Each dataset is read from the
cache once per module (``_read_each_dataset_once``). Two subprocesses, started together so that
their start-ups overlap, are used only where a second process or a real signal is the point
(issue 25's four data losses each have a test here).
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from mmjax import data as data_lib
from mmjax import train
from mmjax.checkpoint import Checkpointer
from mmjax.errors import UserError
from mmjax.workdir import LOCK_NAME, WorkdirLock

from toy import run_cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONCAT = str(ROOT / "configs" / "mfeat" / "concat.py") + ":quick"
SMIL = str(ROOT / "configs" / "avmnist_offline" / "smil.py") + ":quick"
# One step per call: the chunk is straight-line code (no scan to trace); unroll and vmap_seeds set
# so that the policy does not trace the network to choose them.
SETTINGS = ["data.views=fac,pix", "train.steps_per_call=1", "train.log_every=1",
            "train.checkpoint_every=1", "train.unroll=1", "train.vmap_seeds=true"]
SMALL = [x for setting in ["train.steps=2", *SETTINGS] for x in ("--set", setting)]
CONFIG_FILE = '''
from mmjax.config import *

def get_config(arg=None):
    return ExperimentConfig(data=DataConfig(name="mfeat", views=("fac", "pix")),
                            train=TrainConfig(steps=20, log_every=10, checkpoint_every=10,
                                              unroll=1), {section})
'''


def files(directory: pathlib.Path) -> dict:
    """Every file under ``directory`` -> its bytes."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def one_line(err: str, *fragments: str) -> str:
    """``err`` is one ``mmjax`` line, no traceback, holding every fragment."""
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("mmjax"), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module", autouse=True)
def _read_each_dataset_once():
    """``mmjax.data.load`` memoised for this module: decoding mfeat from the tfds cache is about
    a quarter of every in-process command. Keyed by ``$MMJAX_DATA_DIR``, so a test pointing it at
    a damaged copy reads that copy."""
    real, memo = data_lib.load, {}

    def load(name, **options):
        key = (os.environ.get("MMJAX_DATA_DIR"), name, repr(sorted(options.items())))
        if key not in memo:
            memo[key] = real(name, **options)
        return memo[key]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data_lib, "load", load)
        yield


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The shared tiny finished run (trained once per module)."""
    workdir = tmp_path_factory.mktemp("bad") / "run"
    from mmjax import cli

    assert cli.main(["train", "--config", CONCAT, "--workdir", str(workdir), *SMALL]) == 0
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["1", "2"]
    return workdir


@pytest.fixture
def run_copy(finished, tmp_path):
    """A private copy of the finished run."""
    workdir = tmp_path / "run"
    shutil.copytree(finished, workdir)
    return workdir


def _config_file(tmp_path, section):
    path = tmp_path / "bad_config.py"
    path.write_text(CONFIG_FILE.format(section=section))
    return str(path)


# ----------------------------------------------------------------------------------------------
# Config values, from a file or --set: exit 2 before any workdir exists.
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source, fragments", [
    ("optim=OptimConfig(lr='1e-3')", ["optim.lr must be float", "'1e-3'"]),
    ("model=ModelConfig(dropout=1.5)", ["model.dropout must be in [0, 1)", "1.5"]),
    ("model=ModelConfig(hidden=0)", ["model.hidden must be > 0", "got 0"]),
    ("eval=EvalConfig(missing_rates=(0.1, 2.0))", ["eval.missing_rates[1] must be in [0, 1]"]),
    (["train.keep_checkpoints=0"], ["train.keep_checkpoints must be > 0", "got 0"]),
    (["model.dropout=1.5"], ["model.dropout must be in [0, 1)", "1.5"]),
    (["optim.lr=-0.001"], ["optim.lr must be > 0", "-0.001"]),
    (["train.seed=-1"], ["train.seed must be >= 0", "-1"]),
    (["model.hidden=0"], ["model.hidden must be > 0"]),
    (["train.batch_size=0"], ["train.batch_size must be > 0"]),
])
def test_bad_config_value_exits_2(capsys, tmp_path, source, fragments):
    """A config file or --set giving a wrong type or a value out of its declared range."""
    workdir = tmp_path / "run"
    if isinstance(source, str):
        args = ["--config", _config_file(tmp_path, source)]
    else:
        args = ["--config", CONCAT, *SMALL, *(x for s in source for x in ("--set", s))]
    code, out, err = run_cli(capsys, ["train", *args, "--workdir", str(workdir)])
    assert code == 2 and out == ""
    one_line(err, "mmjax: error: ", *fragments)
    assert not workdir.exists()


def test_config_file_types_are_checked_strictly(tmp_path):
    """``TrainConfig(steps='100')`` and ``DataConfig(views='fac')`` (a string where a tuple is
    meant) are refused by the config layer with the field and its type."""
    from mmjax import config as config_lib

    assert config_lib.load(_config_file(tmp_path, "")).train.steps == 20  # the file is valid
    bad = CONFIG_FILE.replace("steps=20", "steps='100'").format(section="")
    (tmp_path / "steps.py").write_text(bad)
    with pytest.raises(UserError, match=r"train.steps must be int, got '100'"):
        config_lib.load(str(tmp_path / "steps.py"))
    bad = CONFIG_FILE.replace('views=("fac", "pix")', 'views="fac"').format(section="")
    (tmp_path / "views.py").write_text(bad)
    with pytest.raises(UserError, match=r"data.views must be tuple\[str, ...\], got 'fac'"):
        config_lib.load(str(tmp_path / "views.py"))


def test_smil_needs_paired_data(capsys, tmp_path):
    """SMIL declares ``requires = ("paired_data",)``: ``missing.paired_fraction=0`` is refused."""
    workdir = tmp_path / "run"
    code, _, err = run_cli(capsys, ["train", "--config", SMIL, "--workdir", str(workdir),
                                    "--set", "missing.paired_fraction=0"])
    assert code == 2
    one_line(err, "smil needs paired", "missing.paired_fraction must be in (0, 1]")
    assert not workdir.exists()


def test_keep_checkpoints_below_one_is_refused_by_the_checkpointer(tmp_path):
    """Data loss (3): ``keep=0`` kept nothing; the checkpointer itself now refuses it."""
    with pytest.raises(UserError, match="keep_checkpoints must be >= 1"):
        Checkpointer(tmp_path / "checkpoints", keep=0)
    assert not (tmp_path / "checkpoints").exists()


# ----------------------------------------------------------------------------------------------
# Damaged workdirs: exit 2, one line, every file byte-identical.
# ----------------------------------------------------------------------------------------------


def _checkpoints_file(w):
    shutil.rmtree(w / "checkpoints")
    (w / "checkpoints").write_text("not a directory\n")


def _config_garbage(w):
    (w / "config.json").write_text('{"data": {"name": "mfe')


def _metrics_dir(w):
    (w / "metrics.jsonl").unlink()
    (w / "metrics.jsonl").mkdir()


def _all_checkpoints_empty(w):
    for step in ("1", "2"):
        shutil.rmtree(w / "checkpoints" / step)
        (w / "checkpoints" / step).mkdir()
    (w / "eval.json").unlink()  # as if killed before the final evaluation


TRAIN = ["train", "--config", CONCAT, *SMALL]


@pytest.mark.parametrize("command, damage, fragments", [
    (TRAIN, _checkpoints_file, ["checkpoints is not a directory"]),  # data loss (4)
    (["eval"], _checkpoints_file, ["checkpoints is not a directory"]),
    (TRAIN, _config_garbage, ["config.json is damaged", "JSONDecodeError"]),
    (["eval"], _config_garbage, ["config.json is damaged"]),
    (TRAIN, _metrics_dir, ["metrics.jsonl is not a file"]),
    (TRAIN, _all_checkpoints_empty, ["no readable checkpoint", "2 (", "1 ("]),
    (["eval"], _all_checkpoints_empty, ["no readable checkpoint"]),
    (["eval", "--set", "train.steps=5"], lambda w: None, ["eval.*"]),
])
@pytest.mark.slow
def test_damaged_workdir_exits_2_and_changes_nothing(capsys, run_copy, command, damage,
                                                     fragments):
    damage(run_copy)
    before = files(run_copy)
    start = time.monotonic()
    code, _, err = run_cli(capsys, [*command[:1], "--workdir", str(run_copy), *command[1:]])
    assert code == 2
    one_line(err, "mmjax: error: ", *fragments)
    assert files(run_copy) == before
    assert time.monotonic() - start < 60  # no orbax barrier timeout (it waited ~300 s)


def test_unwritable_places_are_one_line(capsys, tmp_path, monkeypatch):
    """A workdir under a regular file, and MMJAX_DATA_DIR pointing at a regular file: one line
    naming the path (an OSError, exit 2)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run_cli(capsys, [*TRAIN[:1], "--workdir", str(blocker / "run"), *TRAIN[1:]])
    assert code == 2
    one_line(err, "mmjax: error: ", str(blocker))
    monkeypatch.setenv("MMJAX_DATA_DIR", str(blocker))
    code, _, err = run_cli(capsys, ["data", "build", "mfeat"])
    assert code == 2
    one_line(err, "mmjax: error: ", str(blocker))
    assert blocker.read_text() == "x"


def test_damaged_dataset_cache_names_the_rebuild_command(capsys, tmp_path, monkeypatch):
    """A truncated array_record in the cache: one line with the command that rebuilds it."""
    cache = pathlib.Path(os.environ["MMJAX_DATA_DIR"])
    data_lib.build("mfeat")  # the copied cache must exist whichever test ran first
    copy = tmp_path / "data"
    shutil.copytree(cache / "tfds" / "mmjax_mfeat", copy / "tfds" / "mmjax_mfeat")
    record = next((copy / "tfds" / "mmjax_mfeat").rglob("mmjax_mfeat-train.array_record*"))
    record.write_bytes(record.read_bytes()[:5000])
    monkeypatch.setenv("MMJAX_DATA_DIR", str(copy))
    before = files(copy)
    workdir = tmp_path / "run"
    code, _, err = run_cli(capsys, [*TRAIN[:1], "--workdir", str(workdir), *TRAIN[1:]])
    assert code == 2
    one_line(err, "cached copy of mfeat", "is damaged", "mmjax data build mfeat")
    assert files(copy) == before and not workdir.exists()


# ----------------------------------------------------------------------------------------------
# The workdir lock (data loss 1).
# ----------------------------------------------------------------------------------------------


def test_a_locked_workdir_refuses_train_and_eval_at_once(capsys, run_copy):
    """While another writer holds the lock, ``train`` and ``eval`` exit 2 naming its pid, before
    loading any data; nothing changes."""
    with WorkdirLock(run_copy) as lock:
        lock.acquire()
        before = files(run_copy)
        for command in (TRAIN, ["eval"]):
            code, _, err = run_cli(capsys, [*command[:1], "--workdir", str(run_copy),
                                            *command[1:]])
            assert code == 2
            one_line(err, "is in use by pid", str(os.getpid()), "lock file")
        assert files(run_copy) == before
    assert not (run_copy / LOCK_NAME).exists()  # released: removed


def test_a_stale_lock_is_taken_over_with_one_line(capsys, run_copy):
    """A lock file left by a dead process (pid 999999 holds no flock) is taken over, saying so."""
    (run_copy / LOCK_NAME).write_text(json.dumps({"pid": 999999, "host": "elsewhere",
                                                  "since": "then"}))
    before = files(run_copy)
    del before[LOCK_NAME]
    code, out, err = run_cli(capsys, [*TRAIN[:1], "--workdir", str(run_copy), *TRAIN[1:]])
    assert code == 0, err
    one_line(err, "taking over the lock", "pid 999999 on host elsewhere", "no longer running")
    assert files(run_copy) == before  # a finished run: nothing rewritten, eval.md included


# ----------------------------------------------------------------------------------------------
# Damaged newest checkpoint and log: fall back, say so, end where an intact run ends.
# ----------------------------------------------------------------------------------------------


def test_fall_back_past_an_unreadable_newest_checkpoint_then_a_signal_in_the_last_call(
        capsys, run_copy, finished, monkeypatch):
    """Checkpoint 2 emptied: ``eval`` evaluates 1 (one skip line, one not-finished line);
    ``train`` moves 2 aside and resumes from 1. A SIGTERM during that last training call is not
    absorbed: checkpoint 2 is saved, exit 143 with a line saying training is done but not
    evaluated, no eval.json. The rerun only evaluates, and ends with the intact run's log and
    eval.json."""
    shutil.rmtree(run_copy / "checkpoints" / "2")
    (run_copy / "checkpoints" / "2").mkdir()
    (run_copy / "eval.json").unlink()
    (run_copy / "eval.md").unlink()
    code, _, err = run_cli(capsys, ["eval", "--workdir", str(run_copy)])
    assert code == 0, err
    lines = err.splitlines()
    assert len(lines) == 2 and "Traceback" not in err, err
    assert "skipping checkpoint 2" in lines[0] and "unreadable" in lines[0]
    assert "not finished" in lines[1] and "step 1 of 2" in lines[1]
    assert json.loads((run_copy / "eval-test.json").read_text())["step"] == 1

    real = train.check_finite

    def check_finite(metrics, first_step):  # runs on the host right after each call
        if first_step == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(metrics, first_step)

    monkeypatch.setattr(train, "check_finite", check_finite)
    code, _, err = run_cli(capsys, [*TRAIN[:1], "--workdir", str(run_copy), *TRAIN[1:]])
    assert code == 143, err
    lines = err.splitlines()
    assert len(lines) == 2 and "Traceback" not in err, err
    for fragment in ("checkpoint 2", "unreadable", "checkpoints-unreadable",
                     "resuming from step 1"):
        assert fragment in lines[0], (fragment, lines[0])
    for fragment in ("stopped by signal 15 at step 2 (training done, not yet evaluated)",
                     "checkpoint saved"):
        assert fragment in lines[1], (fragment, lines[1])
    assert not (run_copy / "eval.json").exists()
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == ["1", "2"]
    assert (run_copy / "checkpoints-unreadable" / "2").is_dir()

    monkeypatch.setattr(train, "check_finite", real)
    code, _, err = run_cli(capsys, [*TRAIN[:1], "--workdir", str(run_copy), *TRAIN[1:]])
    assert code == 0 and err == "", err
    assert (run_copy / "eval.json").read_bytes() == (finished / "eval.json").read_bytes()
    rows = lambda w: [{k: v for k, v in json.loads(line).items() if k != "steps_per_sec"}
                      for line in (w / "metrics.jsonl").read_text().splitlines()]
    assert rows(run_copy) == rows(finished)


def test_damaged_metrics_lines_are_dropped_and_reported(capsys, run_copy, finished):
    """A garbage line in metrics.jsonl: resume drops it with one line and appends after the
    complete ones."""
    log = (run_copy / "metrics.jsonl").read_text().splitlines()
    (run_copy / "metrics.jsonl").write_text(log[0] + "\n{\"step\": 1\x00garbage\n" + log[1] + "\n")
    (run_copy / "eval.json").unlink()
    code, _, err = run_cli(capsys, [*TRAIN[:1], "--workdir", str(run_copy), *TRAIN[1:]])
    assert code == 0, err
    one_line(err, "metrics.jsonl: dropped 1 damaged line(s) (line 2)")
    assert (run_copy / "metrics.jsonl").read_text() == (finished / "metrics.jsonl").read_text()


# ----------------------------------------------------------------------------------------------
# Evaluation files (training's are written once, never overwritten by mmjax eval).
# ----------------------------------------------------------------------------------------------


def test_eval_on_another_split_keeps_trainings_files(capsys, run_copy):
    """``mmjax eval --set eval.split=val`` writes eval-val.json recording split and step; the
    training's eval.json and eval.md stay byte-identical."""
    before = files(run_copy)
    code, out, err = run_cli(capsys, ["eval", "--workdir", str(run_copy),
                                      "--set", "eval.split=val"])
    assert code == 0, err
    result = json.loads((run_copy / "eval-val.json").read_text())
    assert (result["split"], result["step"], result["protocol"]) == ("val", 2, "subsets")
    assert "(val split, step 2)" in out
    after = files(run_copy)
    assert {k: after[k] for k in before} == before


# ----------------------------------------------------------------------------------------------
# Signals.
# ----------------------------------------------------------------------------------------------


def _mmjax(*args):
    return subprocess.Popen([sys.executable, "-m", "mmjax", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))


def _catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has installed a SIGTERM handler (Linux: SigCgt in /proc)."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def _wait_for(condition, proc, seconds):
    deadline = time.monotonic() + seconds
    while not condition():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_second_writer_sigint_and_sigterm_during_start_up(capsys, tmp_path):
    """Two real processes, started together (their start-ups overlap):

    - ``early`` gets SIGTERM while it is still importing JAX (where it used to be swallowed by a
      gc callback, and the run went on): one line, exit 143, nothing written.
    - ``first`` trains a long run. Data loss (1): a second ``mmjax train`` on its workdir exits 2
      naming its pid and changes nothing; SIGINT then stops ``first`` with one line, exit 130,
      its checkpoint saved, the lock released and no log row past the checkpoint.
    """
    running, early_dir = tmp_path / "run", tmp_path / "early"
    long_run = ["train", "--config", CONCAT, "--workdir", str(running),
                *(x for setting in ["train.steps=100000", *SETTINGS, "train.log_every=20",
                                    "train.checkpoint_every=20"] for x in ("--set", setting))]
    first = _mmjax(*long_run)
    early = _mmjax("train", "--config", CONCAT, "--workdir", str(early_dir), *SMALL)
    try:
        _wait_for(lambda: _catches_sigterm(early.pid), early, 60)
        time.sleep(0.5)  # into the imports
        early.send_signal(signal.SIGTERM)
        _wait_for((running / "checkpoints" / "20").is_dir, first, 240)
        before = {name: (running / name).read_bytes() for name in ("config.json", LOCK_NAME)}
        code, _, err = run_cli(capsys, long_run)
        assert code == 2
        one_line(err, "is in use by pid", str(first.pid))
        assert {name: (running / name).read_bytes() for name in before} == before
        first.send_signal(signal.SIGINT)
        _, first_err = first.communicate(timeout=120)
        _, early_err = early.communicate(timeout=60)
    finally:
        for proc in (first, early):
            if proc.poll() is None:
                proc.kill()
    assert early.returncode == 143, early_err
    one_line(early_err, "stopped by signal 15")
    assert not (early_dir / "metrics.jsonl").exists()
    assert first.returncode == 130, first_err
    line = one_line(first_err, "stopped by signal 2 at step", "checkpoint saved")
    stop = int(line.split(" at step ")[1].split(";")[0])
    assert (running / "checkpoints" / str(stop)).is_dir()
    assert not (running / LOCK_NAME).exists()
    assert max(json.loads(r)["step"] for r in
               (running / "metrics.jsonl").read_text().splitlines()) <= stop


# ----------------------------------------------------------------------------------------------
# data prepare: write aside, then rename (data loss 2).
# ----------------------------------------------------------------------------------------------


def test_an_interrupted_re_prepare_keeps_the_old_copy(tmp_path):
    """Preparing again and stopping half-way (KeyboardInterrupt inside the builder, as Ctrl-C
    would) leaves the earlier prepared copy in place and readable, and no staging folder."""
    import numpy as np
    import tensorflow_datasets as tfds

    from mmjax.data import prepared

    class Tiny(tfds.core.GeneratorBasedBuilder):
        """Three examples; ``fail`` makes the generator stop after one."""

        name = "mmjax_tiny_prepare_test"
        VERSION = tfds.core.Version("1.0.0")
        fail = False

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"id": tfds.features.Scalar(np.int32)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            for i in range(3):
                if Tiny.fail and i == 1:
                    raise KeyboardInterrupt
                yield i, {"id": i}

    root = tmp_path / "data"
    prepared.prepare(Tiny, root, tmp_path)
    before = files(root)
    Tiny.fail = True
    with pytest.raises(KeyboardInterrupt):
        prepared.prepare(Tiny, root, tmp_path)
    assert files(root) == before
    assert [p.name for p in (root / "tfds").iterdir()] == [Tiny.name]
    builder = prepared.prepared(Tiny, root, "tiny", "nowhere")
    assert len(builder.as_data_source(split="train")) == 3
    Tiny.fail = False
    prepared.prepare(Tiny, root, tmp_path)  # a complete re-prepare does replace it
    assert len(prepared.prepared(Tiny, root, "tiny", "x").as_data_source(split="train")) == 3
