"""Tests of the training runtime (``mmjax.train``): no retracing when masks change, the metrics log,
and stopping on a non-finite loss.

DESIGN §2: methods read ``present`` arithmetically, so a new missing pattern must never retrace or
recompile. These checks trace on random data of mfeat's shapes (``mmjax.bench.random_dataset``), so
no dataset is needed; the log and divergence checks train on the real mfeat data for a few steps.
"""

import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import bench, cli, methods, parallel, train
from mmjax import config as config_lib
from mmjax.config import DataConfig, ExperimentConfig, MethodConfig, ModelConfig, TrainConfig
from mmjax.data import pipeline
from mmjax.data.base import DatasetSpec
from mmjax.methods.base import Method, Phase, one_phase
from mmjax.methods.baselines import AugmentationConfig, LowerBoundConfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Three of mfeat's views (a vector, a long vector, a 6-d one): 7 non-empty subsets, fast compiles.
SPEC = DatasetSpec("mfeat", ("fac", "fou", "mor"), ((216,), (76,), (6,)), "classification", 10)
BATCH = 16


def _config(method: MethodConfig, **train_kwargs) -> ExperimentConfig:
    train_cfg = TrainConfig(**{"steps": 20, "batch_size": BATCH, "steps_per_call": 2,
                               "unroll": 1, "log_every": 2, "checkpoint_every": 2, **train_kwargs})
    return ExperimentConfig(data=DataConfig(name="mfeat"), method=method, train=train_cfg,
                            model=ModelConfig(hidden=16, feature_dim=8))


def _masks(n: int, seed: int = 0) -> list[np.ndarray]:
    """Several different ``bool[n, M]`` masks: complete, random, one view only, alternating."""
    rng = np.random.default_rng(seed)
    random = rng.random((n, SPEC.num_modalities)) < 0.5
    random[np.arange(n), rng.integers(0, SPEC.num_modalities, n)] = True  # never empty
    only_first = np.zeros((n, SPEC.num_modalities), bool)
    only_first[:, 0] = True
    alternating = np.tile(np.arange(SPEC.num_modalities) % 2 == 0, (n, 1))
    alternating[::2] = ~alternating[::2]
    return [np.ones((n, SPEC.num_modalities), bool), random, only_first, alternating]


@pytest.mark.parametrize("method_config", [
    MethodConfig(name="concat"), MethodConfig(name="late"), AugmentationConfig(dropout_p=0.3),
    LowerBoundConfig(modality="mor"),
], ids=lambda c: c.name)
@pytest.mark.slow
def test_train_step_and_predict_trace_once_for_any_mask(method_config):
    """A jitted ``train_step``/``predict`` is traced once for every ``present`` mask, and the masks
    really reach the computation (the outputs change with them)."""
    method = methods.make(_config(method_config), SPEC)
    split = bench.random_dataset(SPEC, BATCH).splits["train"]
    batch = {"inputs": split.inputs, "present": split.present, "label": split.label}
    state = jax.jit(method.init)(jax.random.key(0), batch)

    chex.clear_trace_counter()
    train_step = jax.jit(chex.assert_max_traces(method.train_step, n=1))
    predict = jax.jit(chex.assert_max_traces(method.predict, n=1))
    losses, outputs = [], []
    for mask in _masks(BATCH):
        masked = {**batch, "present": jnp.asarray(mask)}
        new_state, metrics = train_step(state, masked)
        losses.append(float(metrics["loss"]))
        outputs.append(np.asarray(predict(state, masked)))
        assert int(new_state.step) == int(state.step) + 1
    assert train_step._cache_size() == 1 and predict._cache_size() == 1
    assert all(math.isfinite(v) for v in losses)
    # Each mask gives its own loss and outputs (lower_bound only sees 'mor': its outputs change
    # between masks where mor is present or not).
    assert len({round(v, 7) for v in losses}) > 1
    assert any(not np.allclose(outputs[0], o) for o in outputs[1:])


def _random_setup(method: Method, config: ExperimentConfig, n: int = 64) -> train.Setup:
    """A ``train.Setup`` on random data of mfeat's shapes, like ``mmjax bench`` builds it."""
    dataset = bench.random_dataset(SPEC, n)
    seeds = np.arange(config.train.num_seeds)
    roots = jax.vmap(lambda s: jax.random.split(jax.random.key(s), 3))(seeds)
    masks = np.ones((config.train.num_seeds, n, SPEC.num_modalities), bool)
    return train.Setup(config, dataset, method, parallel.make_mesh(), roots[:, 0], roots[:, 1],
                       masks)


def _run_chunk(vmap_seeds: bool, masks: list[np.ndarray]):
    """One ``make_train_chunk`` program (2 seeds) called from fresh states with each training
    mask; returns (train_step traces, jit cache entries, losses [K, S] per mask)."""
    config = _config(MethodConfig(name="concat"), num_seeds=2, vmap_seeds=vmap_seeds)
    real = methods.make(config, SPEC)
    traces = []

    def counting_step(state, batch):
        traces.append(1)
        return real.train_step(state, batch)

    s = _random_setup(real._replace(phases=one_phase(counting_step)), config)
    data, _ = train.device_data(s)
    chunk = train.make_train_chunk(s)
    losses = []
    for mask in masks:
        present = jax.device_put(np.stack([mask, mask[::-1]]), parallel.replicated(s.mesh))
        states = train.init_states(s, data)
        states, metrics = chunk(states, present, s.data_keys, data)
        assert metrics["loss"].shape == (config.train.steps_per_call, 2)
        assert states.step.tolist() == [2, 2]
        losses.append(np.asarray(metrics["loss"]))
    return len(traces), chunk._cache_size(), losses


@pytest.mark.slow
@pytest.mark.parametrize("vmap_seeds", [True, False])
def test_train_chunk_does_not_retrace_when_training_masks_change(vmap_seeds):
    """``make_train_chunk`` (scan over steps; 2 seeds vmapped or as 2 copies) compiles once; new
    training masks change the losses, not the program."""
    traces, cache_size, losses = _run_chunk(vmap_seeds, _masks(64))
    assert traces == (1 if vmap_seeds else 2)  # one trace of the step per seed copy
    assert cache_size == 1
    for other in losses[1:]:
        assert not np.allclose(losses[0], other)


def test_vmapped_and_copied_seeds_train_the_same():
    """``train.vmap_seeds=False`` (one step copy per seed) computes what the vmapped program does.

    rtol 1e-5: the two programs differ only in how XLA:CPU batches the matmuls (a batched dot
    versus one dot per seed), i.e. in float32 summation order, ~1e-7 relative per reduction;
    two steps of Adam at lr 1e-3 cannot grow that to 1e-5. Mixing up seeds' keys, masks or
    states would change the losses at the 1e-2 level."""
    masks = _masks(64)[1:2]
    _, _, (vmapped,) = _run_chunk(True, masks)
    _, _, (copied,) = _run_chunk(False, masks)
    np.testing.assert_allclose(copied, vmapped, rtol=1e-5)
    assert not np.allclose(vmapped[:, 0], vmapped[:, 1])  # the two seeds do differ


def test_check_finite_names_step_seed_and_quantity():
    """``check_finite`` reports the first bad (step, seed) of the first bad quantity by name."""
    metrics = {"loss": np.ones((5, 3)), "grad_norm": np.ones((5, 3))}
    train.check_finite(metrics, first_step=40)  # all finite: no error
    metrics["loss"][3, 2] = np.inf
    metrics["loss"][4, 0] = np.nan
    with pytest.raises(train.TrainingDiverged, match=r"non-finite loss \(inf\) at step 44, "
                                                     r"seed replica 2"):
        train.check_finite(metrics, first_step=40)


MFEAT_CONCAT = str(ROOT / "configs" / "mfeat" / "concat.py") + ":quick"


def test_metrics_log_has_one_line_per_logged_step(tmp_path):
    """``metrics.jsonl``: one JSON object per ``log_every`` steps with finite loss, grad_norm,
    param_norm and steps_per_sec (mean over the 2 seed replicas); eval.json has both seeds."""
    config = config_lib.override(config_lib.load(MFEAT_CONCAT), [
        "data.views=fac,pix", "train.num_seeds=2", "train.steps=20", "train.steps_per_call=5",
        "train.log_every=10", "train.checkpoint_every=10", "train.unroll=1"])
    result = train.train(config, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text()
            .splitlines()]
    assert [r["step"] for r in rows] == [10, 20]
    for row in rows:
        assert {"loss", "grad_norm", "param_norm", "steps_per_sec"} <= set(row)
        for k, v in row.items():
            assert isinstance(v, (int, float)) and math.isfinite(v), (k, v)
        assert row["loss"] > 0 and row["grad_norm"] > 0 and row["param_norm"] > 0
        assert row["steps_per_sec"] > 0
    assert rows[1]["loss"] < rows[0]["loss"]  # 20 steps of Adam on mfeat do learn
    assert result["num_seeds"] == 2
    # Two seeds train different replicas: the std over seeds is not zero everywhere.
    assert any(v > 0 for v in result["std"]["average"].values())
    assert json.loads((tmp_path / "run" / "eval.json").read_text()) == result


@pytest.mark.slow
def test_non_finite_loss_stops_with_exit_1_and_keeps_last_good_checkpoint(capsys, tmp_path):
    """A run whose learning rate jumps to 1e27 after step 15 stops in its second call with one line
    naming the step and the quantity, exit 1; the step-10 checkpoint stays and still evaluates."""
    workdir = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "mmjax", "train", "--config", MFEAT_CONCAT, "--workdir",
         str(workdir), "--set", "data.views=fac,pix", "--set", "train.steps=40",
         "--set", "train.log_every=10", "--set", "train.checkpoint_every=10",
         "--set", "train.unroll=1", "--set", "optim.schedule=step",
         "--set", "optim.decay_steps=15", "--set", "optim.decay_rate=1e30"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    prefix = "mmjax: training stopped: non-finite "
    assert lines[0].startswith(prefix), lines[0]
    quantity = lines[0][len(prefix):].split()[0]
    assert quantity in ("loss", "grad_norm", "param_norm")
    step = int(lines[0].split(" at step ")[1].split(",")[0])
    assert 16 <= step <= 20  # lr is 1e-3 for the first 15 updates, then 1e27
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["10"]
    rows = (workdir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [10]
    assert not (workdir / "eval.json").exists()

    # The kept checkpoint is the good one: it evaluates to finite, better-than-chance accuracy.
    capsys.readouterr()
    assert cli.main(["eval", "--workdir", str(workdir)]) == 0
    evaluated = json.loads((workdir / "eval-test.json").read_text())
    assert evaluated["average"]["accuracy"] > 0.5


def test_position_mask_rows_train_as_the_rows_moved_to_their_epoch_samples():
    """``missing.mask_rows=position`` in the compiled chunk: within epoch 0 it trains exactly as
    the default ``sample`` rows would with each row moved to the sample at its position
    (row p -> sample perm0[p]), and not as the unmoved rows."""
    config = _config(MethodConfig(name="concat"), num_seeds=2)
    by_position = dataclasses.replace(
        config, missing=dataclasses.replace(config.missing, mask_rows="position"))
    rows = np.stack([_masks(64)[1], _masks(64, seed=1)[1]])

    def losses(cfg, present):
        s = _random_setup(methods.make(cfg, SPEC), cfg)
        data, _ = train.device_data(s)
        present = jax.device_put(present, parallel.replicated(s.mesh))
        _, metrics = train.make_train_chunk(s)(train.init_states(s, data), present,
                                               s.data_keys, data)
        return np.asarray(metrics["loss"])

    s = _random_setup(methods.make(config, SPEC), config)  # its data keys: both configs'
    n = len(s.dataset.splits["train"])
    moved = np.empty_like(rows)
    for i in range(2):  # the samples epoch 0 visits, in order
        perm0 = np.concatenate([np.asarray(pipeline.batch_indices(
            s.data_keys[i], jnp.int32(k), n, BATCH)) for k in range(n // BATCH)])
        moved[i][perm0] = rows[i]
    by_position_losses = losses(by_position, rows)
    np.testing.assert_array_equal(by_position_losses, losses(config, moved))
    assert not np.allclose(by_position_losses, losses(config, rows))
