"""The research workflow (issue 23): model selection on the validation split, TensorBoard and plain
progress lines, extending a finished run, starting from another run's parameters, and the library
path (your own arrays, optimiser and encoders).

The selection checks train concat on two mfeat views for 30 steps with a large learning rate, so
the validation curve peaks before the end; an extended run must then select exactly as an
uninterrupted one (the best value so far is restored on resume).
"""

import contextlib
import importlib.util
import io
import json
import pathlib
import re
import shutil
import struct
import sys

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from mmjax import cli, data, log, methods, train
from mmjax import config as config_lib
from mmjax.config import ExperimentConfig, MethodConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.errors import UserError

from test_cli import MFEAT_CONCAT, assert_one_line_error
from toy import run_cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
HAVE_TENSORBOARD = importlib.util.find_spec("tensorboardX") is not None
STEPS = 30
# lr 0.03 makes the validation accuracy of this short run peak before step 30 (step 22 on the
# 2-core CPU); eval every 2 steps, a checkpoint every 10.
SELECT_ARGS = ["--set", "data.views=fac,pix", "--set", "train.steps_per_call=2",
               "--set", "train.log_every=10", "--set", "train.checkpoint_every=10",
               "--set", "train.eval_every=2", "--set", "train.unroll=1",
               "--set", "train.keep_checkpoints=3", "--set", "optim.lr=0.03",
               *(["--tensorboard"] if HAVE_TENSORBOARD else [])]


def _train(capsys, workdir, steps, *extra):
    code, out, err = run_cli(capsys, ["train", "--config", MFEAT_CONCAT, "--workdir",
                                      str(workdir), *SELECT_ARGS, "--set", f"train.steps={steps}",
                                      *extra])
    assert code == 0, err
    return out, err


def _rows(workdir) -> list[dict]:
    """metrics.jsonl without the wall-clock ``steps_per_sec``."""
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k != "steps_per_sec"} for row in rows]


@pytest.fixture(scope="module")
def selected_run(tmp_path_factory):
    """The 30-step run with selection on val accuracy: (workdir, stdout)."""
    workdir = tmp_path_factory.mktemp("select") / "run"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["train", "--config", MFEAT_CONCAT, "--workdir", str(workdir),
                         *SELECT_ARGS, "--set", f"train.steps={STEPS}"])
    assert code == 0
    return workdir, out.getvalue()


@pytest.mark.slow
def test_selected_step_is_the_validation_optimum(selected_run):
    """val/<metric> is logged every eval_every steps; eval.json's selected_step is the first
    argmax of the logged val/accuracy curve; the best slot holds that step only."""
    workdir, stdout = selected_run
    rows = _rows(workdir)
    curve = {r["step"]: r["val/accuracy"] for r in rows if "val/accuracy" in r}
    assert sorted(curve) == list(range(2, STEPS + 1, 2))
    assert all(set(r) >= {"val/accuracy", "val/macro_f1", "val/weighted_f1", "val/macro_recall"}
               for r in rows if r["step"] in curve)
    steps = sorted(curve)
    first_argmax = steps[int(np.argmax([curve[s] for s in steps]))]
    result = json.loads((workdir / "eval.json").read_text())
    assert result["select"] == "best:val/accuracy"
    assert result["selected_step"] == result["step"] == first_argmax
    assert 2 <= first_argmax < STEPS, "the curve must peak before the end for this test"
    assert result["last"]["step"] == STEPS and result["split"] == "test"
    assert [p.name for p in (workdir / train.BEST).iterdir() if p.name.isdigit()] == [
        str(first_argmax)]
    assert f"step {first_argmax}, selected by best:val/accuracy" in stdout
    # The "last" block is the test evaluation of the newest checkpoint (step 30): mmjax eval's.
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["eval", "--workdir", str(workdir)]) == 0
    newest = json.loads((workdir / "eval-test.json").read_text())
    for name in ("eval-test.json", "eval-test.md"):
        (workdir / name).unlink()
    assert newest["step"] == STEPS
    assert {k: newest[k] for k in ("subsets", "average", "std", "seeds")} == {
        k: result["last"][k] for k in ("subsets", "average", "std", "seeds")}


@pytest.mark.slow
def test_extending_a_run_selects_as_an_uninterrupted_one(capsys, tmp_path, selected_run):
    """A run of train.steps=<selected step>, extended to 30 steps: the log and eval.json equal the
    30-step run's (the best value so far comes back on resume: every later value is lower, so a
    lost best would select a later step). Before extending, its last step's test evaluation is
    the 30-step run's selected one: the selected result is the state at that step."""
    full_dir, _ = selected_run
    full = json.loads((full_dir / "eval.json").read_text())
    best = full["selected_step"]
    curve = {r["step"]: r["val/accuracy"] for r in _rows(full_dir) if "val/accuracy" in r}
    assert all(v < curve[best] for s, v in curve.items() if s > best)  # the case that matters

    workdir = tmp_path / "run"
    _train(capsys, workdir, best)
    short = json.loads((workdir / "eval.json").read_text())
    assert {k: short["last"][k] for k in ("subsets", "average", "std", "seeds")} == {
        k: full[k] for k in ("subsets", "average", "std", "seeds")}

    _, err = _train(capsys, workdir, STEPS)
    assert err.splitlines() == [f"mmjax: extending the run in {workdir} from {best} to "
                                f"{STEPS} steps"]
    assert _rows(workdir) == _rows(full_dir)
    assert json.loads((workdir / "eval.json").read_text()) == full
    assert json.loads((workdir / "config.json").read_text())["train"]["steps"] == STEPS


def test_resume_with_the_best_slot_ahead_of_the_checkpoint(capsys, tmp_path, selected_run):
    """A run killed after its best step but before the next checkpoint: resumed from step 10
    while checkpoint-best/ holds a later step (and metrics.jsonl rows past 10), it trains and
    selects exactly as the uninterrupted run: same rows, same eval.json."""
    full_dir, _ = selected_run
    full = json.loads((full_dir / "eval.json").read_text())
    assert full["selected_step"] > 10
    workdir = tmp_path / "run"
    shutil.copytree(full_dir, workdir)
    for step in (20, 30):
        shutil.rmtree(workdir / "checkpoints" / str(step))
    for name in ("eval.json", "eval.md"):
        (workdir / name).unlink()
    _train(capsys, workdir, STEPS)
    assert _rows(workdir) == _rows(full_dir)
    assert json.loads((workdir / "eval.json").read_text()) == full


@pytest.mark.skipif(not HAVE_TENSORBOARD, reason="tensorboardX (the tensorboard extra) absent")
def test_tensorboard_events_hold_the_logged_rows(selected_run):
    """--tensorboard: one scalar per metrics.jsonl column and logged step, same values (float32)."""
    from tensorboardX.proto import event_pb2

    workdir, _ = selected_run
    scalars = {}
    for file in (workdir / "tensorboard").glob("events.out.tfevents.*"):
        raw, i = file.read_bytes(), 0
        while i < len(raw):  # TFRecord: u64 length, u32 crc, payload, u32 crc
            (n,) = struct.unpack("<Q", raw[i:i + 8])
            event = event_pb2.Event.FromString(raw[i + 12:i + 12 + n])
            i += 12 + n + 4
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    expected = {}
    for row in rows:
        for k, v in row.items():
            if k != "step":
                expected.setdefault(k, {})[row["step"]] = float(np.float32(v))
    assert scalars == expected


def test_tensorboard_without_tensorboardx_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # find_spec -> None: "not installed"
    code, out, err = run_cli(capsys, ["train", "--config", MFEAT_CONCAT, "--workdir",
                                      str(tmp_path / "run"), "--tensorboard"])
    assert code == 2
    assert_one_line_error(err, "tensorboardX", "pip install 'mmjax[tensorboard]'")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("sets, fragments", [
    (["train.eval_every=10", "train.select=best:test/accuracy"], ("refused", "test split")),
    (["train.select=best:val/accuracy"], ("needs train.eval_every > 0",)),
    (["train.eval_every=10", "train.select=best:val/auc"], ("not 'auc'", "accuracy")),
    (["train.eval_every=10", "train.select=best:dev/accuracy"], ("no 'dev' split",)),
    (["train.eval_every=10", "train.select=best:val/accuracy", "eval.split=val"],
     ("selects on eval.split=val",)),
    (["train.eval_every=3"], ("train.eval_every=3", "multiple of train.steps_per_call")),
    (["train.select=best"], ("best:<split>/<metric>",)),
])
def test_selection_mistakes_are_one_line(capsys, tmp_path, sets, fragments):
    args = [a for s in sets for a in ("--set", s)]
    code, out, err = run_cli(capsys, ["train", "--config", MFEAT_CONCAT, "--workdir",
                                      str(tmp_path / "run"), "--set", "data.views=fac,pix", *args])
    assert code == 2
    assert_one_line_error(err, *fragments)
    assert not (tmp_path / "run").exists()


def test_extension_refused_when_the_schedule_depends_on_the_total(tmp_path):
    """A cosine schedule decays over train.steps: extending would change the steps taken."""
    def config(steps, schedule):
        return ExperimentConfig(method=MethodConfig(name="concat"),
                                optim=OptimConfig(schedule=schedule),
                                train=TrainConfig(steps=steps, steps_per_call=10))

    workdir = tmp_path / "run"
    train.prepare_workdir(config(20, "cosine"), workdir)
    with pytest.raises(UserError, match="from 20 to 40 steps is refused: optim.schedule=cosine"):
        train.prepare_workdir(config(40, "cosine"), workdir)
    with pytest.raises(UserError, match="extended, not shortened"):
        train.prepare_workdir(config(10, "cosine"), workdir)
    assert json.loads((workdir / "config.json").read_text())["train"]["steps"] == 20
    constant = tmp_path / "constant"
    train.prepare_workdir(config(20, "constant"), constant)
    train.prepare_workdir(config(40, "constant"), constant)  # allowed: rewritten
    assert json.loads((constant / "config.json").read_text())["train"]["steps"] == 40




def test_init_from_takes_the_other_runs_parameters(capsys, selected_run):
    """init_from DIR:STEP: params and model_state are that checkpoint's (its one replica
    broadcast to both here); opt_state, step and keys are this run's own; another width is one
    line naming the parameter; the CLI flag reaches the config."""
    workdir, _ = selected_run
    s = train.setup(config_lib.override(config_lib.load(MFEAT_CONCAT), [
        "data.views=fac,pix", "train.num_seeds=2", "train.unroll=1"]))
    data_, _ = train.device_data(s)
    fresh = train.init_states(s, data_)
    stored = train.Checkpointer(workdir / "checkpoints").restore_raw(20)
    started = train.init_from(fresh, f"{workdir}:20")
    there = jax.tree.leaves(stored["params"])
    here = jax.tree.leaves(started.params)
    assert len(there) == len(here) > 0
    for a, b in zip(there, here):
        assert b.shape == (2, *a.shape[1:]) and a.shape[0] == 1
        np.testing.assert_array_equal(np.asarray(b), np.broadcast_to(a, b.shape))
    for a, b in zip(jax.tree.leaves(fresh.opt_state), jax.tree.leaves(started.opt_state)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    np.testing.assert_array_equal(jax.random.key_data(fresh.key), jax.random.key_data(started.key))

    with pytest.raises(UserError, match="no checkpoint of step 7"):
        train.init_from(fresh, f"{workdir}:7")
    code, out, err = run_cli(capsys, ["train", "--config", MFEAT_CONCAT, "--workdir",
                                      str(workdir.parent / "narrow"), "--set", "data.views=fac,pix",
                                      "--set", "model.hidden=16", "--init-from", f"{workdir}:20"])
    assert code == 2
    assert_one_line_error(err, f"train.init_from={workdir}:20: params encoders/fac/fc1/",
                          "has shape", "the shapes must match")


def test_plain_progress_lines_when_stderr_is_not_a_terminal():
    """Not a terminal: nothing before ``seconds``, then a line at most every ``seconds`` and a
    last one at close; a run shorter than ``seconds`` writes nothing."""
    now = [0.0]
    stream = io.StringIO()
    bar = log.Progress(100, 0, "concat on mfeat", seconds=10, stream=stream, clock=lambda: now[0])
    for t in range(1, 11):  # 10 steps per 3 s
        now[0] = 3.0 * t
        bar.update(10, loss=1.0 / t)
    bar.close()
    lines = stream.getvalue().splitlines()
    # Lines at t = 12 s (step 40), 24 s (step 80), and the close (step 100, t = 30 s).
    assert lines == [
        "mmjax: concat on mfeat: step 40/100 (40%), loss 0.2500, 3.3 steps/s, eta 00:00:18",
        "mmjax: concat on mfeat: step 80/100 (80%), loss 0.1250, 3.3 steps/s, eta 00:00:06",
        "mmjax: concat on mfeat: step 100/100 (100%), loss 0.1000, 3.3 steps/s, eta 00:00:00"]
    quiet = io.StringIO()
    bar = log.Progress(100, 0, "x", seconds=60, stream=quiet, clock=lambda: now[0])
    bar.update(100, loss=0.5)
    bar.close()
    assert quiet.getvalue() == ""


# ----------------------------------------------------------------------------------------------
# Library: your own arrays, optimiser and encoders.
# ----------------------------------------------------------------------------------------------


def _library_snippet() -> str:
    """The README's "Your own data" Python block."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Your own data", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_library_example_trains_on_arrays(monkeypatch, tmp_path):
    """The README's ten lines run: from_arrays -> train.train(dataset=, tx=) -> eval.json."""
    monkeypatch.chdir(tmp_path)
    code = _library_snippet()
    body = [line for line in code.splitlines() if line and not line.startswith(("import", "from"))]
    assert len(body) <= 10  # "in ten lines", imports aside
    scope = {}
    exec(compile(code, "README.md", "exec"), scope)
    result = scope["result"]
    assert result["dataset"] == "arrays" and set(result["subsets"]) == {"a+b", "a", "b"}
    written = json.loads((tmp_path / "runs" / "own_arrays" / "eval.json").read_text())
    assert written == result and result["select"] == "best:val/accuracy"


def test_a_run_on_users_data_needs_that_data_to_resume_or_evaluate(capsys, tmp_path):
    """A run trained on from_arrays data writes dataset.json; mmjax eval (which would load
    config.data.name, mfeat, instead) refuses it in one line, as do a resume without the data
    or with other data; setup with the same data restores its checkpoint."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3)).astype(np.float32)
    ds = data.from_arrays({"u": x}, np.arange(24) % 2, splits=(0.5, 0.25, 0.25))
    config = ExperimentConfig(method=MethodConfig(name="concat"),
                              model=ModelConfig(hidden=8, feature_dim=4),
                              train=TrainConfig(steps=2, batch_size=4, log_every=1,
                                                checkpoint_every=2, steps_per_call=1))
    workdir = tmp_path / "own"
    train.train(config, workdir, dataset=ds)
    record = json.loads((workdir / train.USER_DATA).read_text())
    assert record["name"] == "arrays" and record["splits"] == {"train": 12, "val": 6, "test": 6}
    code, _, err = run_cli(capsys, ["eval", "--workdir", str(workdir)])
    assert code == 2
    assert_one_line_error(err, "trained on your own data", "pass the same dataset=")
    with pytest.raises(UserError, match="trained on your own data"):
        train.train(config, workdir)
    other = data.from_arrays({"u": x + 1}, np.arange(24) % 2, splits=(0.5, 0.25, 0.25))
    with pytest.raises(UserError, match="trained on other data"):
        train.train(config, workdir, dataset=other)
    with pytest.raises(UserError, match="trained on other data"):
        train.restore_states(train.setup(config, other), workdir)
    step, _ = train.restore_states(train.setup(config, ds), workdir, with_step=True)
    assert step == 2
    # A dataset of the config's own registry load (as mmjax sweep passes) is not a user's.
    mfeat = config_lib.override(config_lib.load(MFEAT_CONCAT), ["data.views=fac,pix"])
    assert train.setup(mfeat, data.load("mfeat", views=("fac", "pix"))).user_data is None
    assert train.setup(mfeat, data.load("mfeat", views=("pix", "fac"))).user_data is not None
    with pytest.raises(UserError, match="dataset must be a mmjax.data.Dataset"):
        train.setup(config, 42)


def test_from_arrays_splits_zero_fills_and_validates():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 3)).astype(np.float32)
    present = np.ones((20, 2), bool)
    present[3, 1] = False
    ds = data.from_arrays({"u": x, "v": x + 1}, np.arange(20) % 4, present, splits=(0.5, 0.25,
                                                                                      0.25))
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 10, "val": 5, "test": 5}
    # The rows of x are distinct: find each split's samples, a partition of the 20.
    rows = {name: [int(np.flatnonzero((x == r).all(1))[0]) for r in s.inputs["u"]]
            for name, s in ds.splits.items()}
    assert sorted(sum(rows.values(), [])) == list(range(20))
    assert ds.spec.num_classes == 4 and ds.spec.shapes == ((3,), (3,))
    for name, samples in rows.items():
        split = ds.splits[name]
        np.testing.assert_array_equal(split.label, np.array(samples) % 4)
        np.testing.assert_array_equal(split.present, present[samples])
        if 3 in samples:  # the sample without v: its v input is zero-filled
            assert (split.inputs["v"][samples.index(3)] == 0).all()
    given = data.from_arrays({"u": x}, np.arange(20) % 4, splits={"train": [0, 1, 2], "test": [5]})
    assert set(given.splits) == {"train", "test"} and len(given.splits["train"]) == 3
    with pytest.raises(UserError, match="input 'u' has 19 samples, label has 20"):
        data.from_arrays({"u": x[:19]}, np.arange(20))
    with pytest.raises(UserError, match="sample 0 has no modality present"):
        data.from_arrays({"u": x}, np.arange(20) % 4, np.zeros((20, 1), bool))
    with pytest.raises(UserError, match="three fractions"):
        data.from_arrays({"u": x}, np.arange(20) % 4, splits=(0.5, 0.5))


def test_batch_helper_masks_and_zero_fills():
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    ds = data.from_arrays({"u": x, "v": -x}, np.array([0, 1, 0, 1]),
                          splits={"train": [0, 1, 2, 3]})
    b = data.batch(ds, "train", np.array([2, 0]), present=np.array([[True, False], [True, True]]))
    np.testing.assert_array_equal(b["inputs"]["u"], x[[2, 0]])
    np.testing.assert_array_equal(b["inputs"]["v"], np.stack([np.zeros(3), -x[0]]))
    np.testing.assert_array_equal(b["present"], [[True, False], [True, True]])
    np.testing.assert_array_equal(b["label"], [0, 0])
    with pytest.raises(UserError, match="no 'val' split"):
        data.batch(ds, "val")


class _Tiny(nnx.Module):
    """A user's encoder: one linear layer to 4 features."""

    def __init__(self, shape, *, rngs):
        self.proj = nnx.Linear(int(np.prod(shape)), 4, rngs=rngs)
        self.out_dim = 4

    def __call__(self, x, *, deterministic, rngs=None):
        return jax.nn.relu(self.proj(x.reshape(x.shape[0], -1)))


def test_make_accepts_a_users_optimiser_and_encoders():
    """tx= replaces the config's optimiser (SGD with lr 0 leaves the parameters as they were;
    the factory form gets the OptimConfig and the total steps); encoders= builds the user's
    module for that modality (its 8x4 kernel is in the parameters); a modality the dataset lacks
    is one line."""
    rng = np.random.default_rng(0)
    ds = data.from_arrays({"u": rng.normal(size=(16, 8)), "v": rng.normal(size=(16, 5))},
                          np.arange(16) % 2, splits={"train": np.arange(16)})
    config = ExperimentConfig(method=MethodConfig(name="concat"),
                              model=ModelConfig(hidden=8, feature_dim=4),
                              train=TrainConfig(steps=7))
    batch = data.batch(ds, "train")
    seen = []

    def factory(optim, total_steps):
        seen.append((optim, total_steps))
        return optax.sgd(0.0)

    method = methods.make(config, ds.spec, tx=optax.sgd(0.0), encoders={"u": _Tiny})
    state = jax.jit(method.init)(jax.random.key(0), batch)
    assert sorted(x.shape for x in jax.tree.leaves(state.params["encoders"]["u"])) == [
        (4,), (8, 4)]
    new, _ = jax.jit(method.train_step)(state, batch)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.jit(method.predict)(new, batch).shape == (16, 2)
    methods.make(config, ds.spec, tx=factory)
    assert seen == [(config.optim, 7)]
    default = methods.make(config, ds.spec)  # the config's adam does move them
    state = jax.jit(default.init)(jax.random.key(0), batch)
    moved, _ = jax.jit(default.train_step)(state, batch)
    assert any((np.asarray(a) != np.asarray(b)).any()
               for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(moved.params)))
    with pytest.raises(UserError, match="'w', not a modality"):
        methods.make(config, ds.spec, encoders={"w": _Tiny})
