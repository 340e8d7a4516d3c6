"""Tests of checkpointing and exact resume (``mmjax.checkpoint``, DESIGN §8).

A checkpoint round-trip must be bit-exact (typed PRNG keys included), and a run stopped by SIGTERM
and resumed must end with exactly the metrics of an uninterrupted run: the data order and every
random draw derive from (seed, step), and the state is restored bit for bit.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from mmjax import bench, methods
from mmjax.checkpoint import Checkpointer
from mmjax.config import DataConfig, ExperimentConfig, MethodConfig, ModelConfig, TrainConfig
from mmjax.data.base import DatasetSpec

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _assert_bit_equal(a, b):
    """Same tree, dtypes, shapes and bytes (typed keys compared through their key data)."""
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        assert _is_key(x) == _is_key(y)
        if _is_key(x):
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


@pytest.fixture(scope="module")
def stacked_states():
    """Seed-stacked (3 replicas) concat TrainStates after two Adam steps: non-trivial opt state."""
    spec = DatasetSpec("mfeat", ("fac", "pix"), ((216,), (240,)), "classification", 10)
    config = ExperimentConfig(data=DataConfig(name="mfeat"), method=MethodConfig(name="concat"),
                              model=ModelConfig(hidden=16, feature_dim=8),
                              train=TrainConfig(steps=10, batch_size=16))
    method = methods.make(config, spec)
    split = bench.random_dataset(spec, 16).splits["train"]
    batch = {"inputs": split.inputs, "present": split.present, "label": split.label}
    keys = jax.random.split(jax.random.key(3), 3)
    states = jax.jit(jax.vmap(method.init, in_axes=(0, None)))(keys, batch)
    step = jax.jit(jax.vmap(lambda s: method.train_step(s, batch)[0]))
    after_one = step(states)
    return after_one, step(after_one)


@pytest.mark.slow
def test_round_trip_is_bit_exact(tmp_path, stacked_states):
    """Save -> restore of a seed-stacked TrainState gives identical bytes and typed keys back."""
    _, states = stacked_states
    assert _is_key(states.key) and states.key.shape == (3,)
    assert states.step.tolist() == [2, 2, 2]
    ckpt = Checkpointer(tmp_path / "checkpoints")
    try:
        assert ckpt.latest_step() is None
        ckpt.save(2, states)
        assert ckpt.latest_step() == 2
        restored = ckpt.restore(jax.eval_shape(lambda: states))
    finally:
        ckpt.close()
    _assert_bit_equal(restored, states)
    # A fresh manager on the same directory (a new process, in effect) sees the same checkpoint.
    ckpt = Checkpointer(tmp_path / "checkpoints")
    try:
        _assert_bit_equal(ckpt.restore(states), states)
    finally:
        ckpt.close()


def test_keep_last_n_and_restore_a_given_step(tmp_path, stacked_states):
    """``keep=2`` keeps the two newest steps; ``restore(like, step)`` returns that step's state;
    no temporary directories are left behind."""
    first, second = stacked_states
    ckpt = Checkpointer(tmp_path / "checkpoints", keep=2)
    try:
        ckpt.save(1, first)
        ckpt.save(2, second)
        ckpt.save(3, first)
        assert ckpt.latest_step() == 3
        _assert_bit_equal(ckpt.restore(second, 2), second)
        _assert_bit_equal(ckpt.restore(second), first)
    finally:
        ckpt.close()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2", "3"]


# ----------------------------------------------------------------------------------------------
# Kill and resume.
# ----------------------------------------------------------------------------------------------

# Augmentation (modality dropout: per-step random draws), encoder dropout 0.1 (the mfeat default),
# an independent training missing mask, 2 seed replicas; 200 steps of 10 per call.
STEPS = 200
TRAIN_ARGS = [
    "train", "--config", str(ROOT / "configs" / "mfeat" / "augmentation.py") + ":quick",
    "--set", "data.views=fac,pix", "--set", f"train.steps={STEPS}", "--set", "train.num_seeds=2",
    "--set", "train.log_every=10", "--set", "train.checkpoint_every=20",
    "--set", "train.unroll=1", "--set", "missing.protocol=independent",
    "--set", "missing.rates=0.2,0.3"]


def _start(workdir: pathlib.Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mmjax", *TRAIN_ARGS, "--workdir", str(workdir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ))


def _checkpoint_steps(workdir: pathlib.Path) -> list[int]:
    """Steps of the finished checkpoints (orbax renames a checkpoint to its step when complete)."""
    directory = workdir / "checkpoints"
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def _metric_rows(workdir: pathlib.Path) -> list[dict]:
    """metrics.jsonl without the wall-clock ``steps_per_sec``."""
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    for row in rows:
        row.pop("steps_per_sec")
    return rows


@pytest.mark.slow
def test_sigterm_then_resume_equals_uninterrupted_run(tmp_path):
    """SIGTERM after the first checkpoint: exit 143 with one line and a checkpoint of the stop
    step; running the same command again finishes with metrics.jsonl and eval.json exactly equal
    to an uninterrupted run's."""
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full = _start(full_dir)  # the reference run, concurrently
    cut = _start(cut_dir)
    try:
        deadline = time.monotonic() + 240
        while not _checkpoint_steps(cut_dir):
            assert cut.poll() is None, f"run ended before its first checkpoint: {cut.stderr.read()}"
            assert time.monotonic() < deadline, "no checkpoint within 240 s"
            time.sleep(0.02)
        cut.send_signal(signal.SIGTERM)
        _, err = cut.communicate(timeout=240)
    finally:
        if cut.poll() is None:
            cut.kill()
    assert cut.returncode == 128 + signal.SIGTERM, err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("mmjax: stopped by signal 15 at step "), lines[0]
    assert "run the same command to resume" in lines[0]
    stop = int(lines[0].split(" at step ")[1].split(";")[0])
    assert 20 <= stop < STEPS and stop % 10 == 0
    assert _checkpoint_steps(cut_dir)[-1] == stop  # saved on the signal, even off the 20-grid
    assert max(r["step"] for r in _metric_rows(cut_dir)) <= stop
    assert not (cut_dir / "eval.json").exists()

    resumed = subprocess.run([sys.executable, "-m", "mmjax", *TRAIN_ARGS, "--workdir",
                              str(cut_dir)], cwd=ROOT, capture_output=True, text=True,
                             timeout=300, env=dict(os.environ))
    assert resumed.returncode == 0, resumed.stderr
    full_out, full_err = full.communicate(timeout=300)
    assert full.returncode == 0, full_err

    full_rows, cut_rows = _metric_rows(full_dir), _metric_rows(cut_dir)
    assert [r["step"] for r in full_rows] == list(range(10, STEPS + 1, 10))
    assert cut_rows == full_rows  # exact: same floats, not approximately
    assert (json.loads((cut_dir / "eval.json").read_text())
            == json.loads((full_dir / "eval.json").read_text()))
    assert resumed.stdout == full_out
    assert _checkpoint_steps(cut_dir)[-1] == _checkpoint_steps(full_dir)[-1] == STEPS
