"""Replicas of one run that differ in data only (``train.Replica``): each trains and evaluates
exactly as its point alone, in one compiled program.

One packed run of concat on mfeat's views fac and pix (10 steps, 3 replicas): seed 3 at training
missing rates (0.5, 0.3); seed 4 at (0.2, 0.6) with learning rate 3e-3 (the config's is 1e-3);
seed 3 at (0.2, 0.6). The same three points are trained alone. The packed run's step is traced
once (``chex.assert_max_traces``) though its replicas have two learning rates and two missing
protocols; its evaluation, and its re-evaluation under the random protocols (missing-rate,
corruption, paired-fraction: each replica draws from its own seed's key), equal the points alone.

``make_optimizer`` with the learning rate as state (``optax.inject_hyperparams``) gives the same
float32 updates as with the rate a constant, for every schedule and optimiser.
"""

import dataclasses
import json
import pathlib

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmjax import config as config_lib
from mmjax import evaluate, methods, train
from mmjax.config import MissingConfig, OptimConfig
from mmjax.errors import UserError
from mmjax.methods import base

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIG = str(ROOT / "configs" / "mfeat" / "concat.py") + ":quick"
SMALL = ["data.views=fac,pix", "missing.protocol=independent", "missing.rates=[0.5,0.3]",
         "train.steps=10", "train.steps_per_call=5", "train.log_every=5",
         "train.checkpoint_every=10", "train.unroll=1", "train.vmap_seeds=true",
         "eval.noise_sigmas=[0.3]", "eval.mask_probs=[0.2]"]
A = MissingConfig(protocol="independent", rates=(0.5, 0.3))
B = MissingConfig(protocol="independent", rates=(0.2, 0.6))
REPLICAS = (train.Replica(3, A), train.Replica(4, B, (("optim.lr", 3e-3),)), train.Replica(3, B))


def _config(num_seeds: int = 3, **train_fields):
    config = config_lib.override(config_lib.load(CONFIG), SMALL)
    return dataclasses.replace(config, train=dataclasses.replace(
        config.train, num_seeds=num_seeds, **train_fields))


def _json(path: pathlib.Path) -> dict:
    return json.loads(path.read_text())


def _losses(run_dir: pathlib.Path) -> np.ndarray:
    return np.array([json.loads(line)["loss"]
                     for line in (run_dir / "metrics.jsonl").read_text().splitlines()])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The packed run (``traces``: how often its step was traced) and each replica alone."""
    root = tmp_path_factory.mktemp("replicas")
    config = _config()
    real_make, traces = methods.make, []

    def counted(*args, **kwargs):
        method = real_make(*args, **kwargs)

        def step(state, batch, _step=method.phases[0].step):
            traces.append(1)
            return _step(state, batch)

        return method._replace(phases=(method.phases[0]._replace(
            step=chex.assert_max_traces(step, n=1)),))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(methods, "make", counted)
        packed = train.train(config, root / "packed", replicas=REPLICAS)
    alone = []
    for i, r in enumerate(REPLICAS):
        alone.append(root / f"alone-{i}")
        train.train(train.replica_config(config, r), alone[-1])
    return {"config": config, "packed": root / "packed", "result": packed, "alone": alone,
            "traces": len(traces)}


@pytest.mark.slow
def test_one_trace_for_two_learning_rates_and_protocols(runs):
    assert runs["traces"] == 1


def test_each_replica_evaluates_as_its_point_alone(runs):
    """Every subset and metric of replica k equals the run of replica k alone; the packed run's
    logged loss is the mean over its replicas (to float32 rounding); its evaluation is not
    eval.json (its config.json is not what every replica trained) but eval-replicas.json."""
    packed = runs["packed"]
    result = _json(packed / "eval-replicas.json")
    assert result == runs["result"] and not (packed / "eval.json").exists()
    assert train.read_replicas(packed, runs["config"]) == REPLICAS
    for k, alone in enumerate(runs["alone"]):
        single = _json(alone / "eval.json")
        for condition, metrics in single["seeds"]["subsets"].items():
            for metric, (value,) in metrics.items():
                assert result["seeds"]["subsets"][condition][metric][k] == value, (k, metric)
        assert evaluate.select_replicas(result, [k]) == {**single, "num_seeds": 1}
    mean = np.mean([_losses(a) for a in runs["alone"]], axis=0)
    np.testing.assert_allclose(_losses(packed), mean, rtol=2e-7)
    losses = [_losses(a) for a in runs["alone"]]
    assert not np.allclose(losses[0], losses[2]) and not np.allclose(losses[1], losses[2])


def test_select_replicas_recomputes_mean_and_std(runs):
    """Replicas (2, 0) of the packed run: their values, mean and sample std."""
    result = runs["result"]
    picked = evaluate.select_replicas(result, [2, 0])
    values = [result["seeds"]["average"]["accuracy"][i] for i in (2, 0)]
    assert picked["num_seeds"] == 2 and picked["seeds"]["average"]["accuracy"] == values
    assert picked["average"]["accuracy"] == pytest.approx(np.mean(values), abs=1e-15)
    assert picked["std"]["average"]["accuracy"] == pytest.approx(np.std(values, ddof=1),
                                                                 abs=1e-15)


@pytest.mark.parametrize("protocol", ["missing-rate", "corruption", "paired-fraction"])
def test_random_protocols_draw_from_each_replicas_seed(runs, protocol):
    """Re-evaluating the packed run (its setup from replicas.json, as ``mmjax eval`` needs)
    under a random protocol gives each replica the values of its point alone, re-evaluated."""
    config = runs["config"]
    replicas = train.read_replicas(runs["packed"], config)
    s = train.setup(config, replicas=replicas)
    states = train.restore_states(s, runs["packed"])
    packed = evaluate.RUNNERS[protocol](s.method, states, s.dataset, config, s.mesh,
                                        seeds=[r.seed for r in replicas])
    for k, (r, alone) in enumerate(zip(replicas, runs["alone"])):
        own = train.replica_config(config, r)
        t = train.setup(own)
        single = evaluate.RUNNERS[protocol](t.method, train.restore_states(t, alone), t.dataset,
                                            own, t.mesh)
        assert evaluate.select_replicas(packed, [k]) == {**single, "num_seeds": 1}, k
    # Replicas 0 and 2 share seed 3 and so their test draws; with seed 4 another draw: its
    # values differ from those of the run's first seed's draws.
    first = dataclasses.replace(config, train=dataclasses.replace(config.train, seed=3))
    shared = evaluate.RUNNERS[protocol](s.method, states, s.dataset, first, s.mesh)
    assert shared["seeds"] != packed["seeds"]


def test_resume_with_other_replicas_is_refused(runs):
    """The finished packed run again with other (or the config's own) replicas: one line, and
    nothing written; ``restore_states`` of a setup of other replicas too (``mmjax eval``)."""
    config, packed = runs["config"], runs["packed"]
    before = {f: f.stat().st_mtime_ns for f in packed.rglob("*") if f.is_file()}
    other = (REPLICAS[0], REPLICAS[1], train.Replica(5, B))
    for replicas, what in ((other, "differs"), (None, "absent here")):
        with pytest.raises(UserError, match=f"other replicas \\(replicas.json {what}\\)"):
            train.train(config, packed, replicas=replicas)
    with pytest.raises(UserError, match="other replicas"):
        train.restore_states(train.setup(config), packed)
    assert {f: f.stat().st_mtime_ns for f in packed.rglob("*") if f.is_file()} == before
    alone = runs["alone"][0]
    with pytest.raises(UserError, match=r"other replicas \(replicas.json absent there\)"):
        train.train(train.replica_config(config, REPLICAS[0]), alone, replicas=(
            train.Replica(3, B),))


def test_bad_replicas_are_one_line_before_anything_runs():
    config = _config()
    for replicas, message in (
            (REPLICAS[:2], "2 replicas for train.num_seeds=3"),
            ((*REPLICAS[:2], train.Replica(3, A, (("model.hidden", 8),))),
             "model.hidden is not a traced field"),
            ((*REPLICAS[:2], train.Replica(3, A, (("optim.lr", "big"),))), "must be a number"),
            ((*REPLICAS[:2], train.Replica(3, MissingConfig("independent", rates=(0.5,)))),
             "replica 2 \\(seed 3\\)")):
        with pytest.raises(UserError, match=message):
            train.setup(config, replicas=replicas)
    with pytest.raises(UserError, match="user optimiser"):
        train.setup(config, replicas=REPLICAS, tx=optax.sgd(0.1))
    assert train.Replica(1, A, {"optim.lr": 1}) == train.Replica(1, A, (("optim.lr", 1.0),))


@pytest.mark.parametrize("optim", [
    OptimConfig(),
    OptimConfig(name="adamw", lr=3e-3, weight_decay=1e-2, schedule="cosine", warmup_steps=4),
    OptimConfig(name="sgd", lr=0.1, momentum=0.9, schedule="step", decay_steps=3,
                decay_rate=0.5, warmup_steps=2, grad_clip=0.5),
    OptimConfig(name="adam", lr=2e-3, weight_decay=1e-4, schedule="cosine"),
], ids=["adam", "adamw-warmup-cosine", "sgd-warmup-step-clip", "adam-l2-cosine"])
def test_learning_rate_as_state_gives_the_same_updates(optim):
    """12 jitted updates (past warm-up, decay steps and the cosine's end) of the traced-rate
    optimiser equal the constant-rate one's bit for bit; the rate is in the state."""
    total = 10
    plain = base.make_optimizer(optim, total)
    with base.traced_hyperparameters({base.TRACED_LR}):
        traced = base.make_optimizer(optim, total)
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4), "b": jnp.arange(4.0)}
    grads = [jax.tree.map(lambda x, i=i: jnp.sin(x * (i + 1)) + 0.1 * i, params)
             for i in range(12)]

    def run(tx):
        update = jax.jit(tx.update)
        p, state = params, tx.init(params)
        out = []
        for g in grads:
            u, state = update(g, state, p)
            p = optax.apply_updates(p, u)
            out.append(p)
        return out, state

    want, _ = run(plain)
    got, state = run(traced)
    assert float(state.hyperparams["learning_rate"]) == np.float32(optim.lr)
    for a, b in zip(want, got):
        jax.tree.map(np.testing.assert_array_equal, a, b)


# ----------------------------------------------------------------------------------------------
# A method's loss weight as a traced field: RedCore's gamma (RedCoreConfig.traceable).
# ----------------------------------------------------------------------------------------------

REDCORE = str(ROOT / "configs" / "mfeat" / "redcore.py") + ":quick"
REDCORE_SMALL = ["data.views=fou,kar,zer", "missing.protocol=independent",
                 "missing.rates=[0.5,0.3,0.2]", "method.latent_dim=16", "method.xenc_layers=16,8",
                 "method.xenc_blocks=2", "train.steps=10", "train.steps_per_call=5",
                 "train.log_every=5", "train.checkpoint_every=10", "train.unroll=1",
                 "train.vmap_seeds=true", "train.num_seeds=2"]
GAMMAS = (train.Replica(0, MissingConfig("independent", rates=(0.5, 0.3, 0.2)),
                        (("method.gamma", 0.008),)),
          train.Replica(0, MissingConfig("independent", rates=(0.5, 0.3, 0.2)),
                        (("method.gamma", 2.0),)))


@pytest.mark.slow
def test_redcore_gamma_packs_into_one_program_and_each_replica_trains_as_alone(tmp_path):
    """Two replicas of one seed and mask that differ only in RedCore's gamma (eq. 3's VIB
    weight): the packed step is traced once, the state holds each replica's gamma, and each
    replica's evaluation equals the run with that gamma alone (a Python float there, as in every
    single run) and its logged loss to float32 rounding; the two gammas give different models."""
    config = config_lib.override(config_lib.load(REDCORE), REDCORE_SMALL)
    real_make, traces = methods.make, []

    def counted(*args, **kwargs):
        method = real_make(*args, **kwargs)

        def step(state, batch, _step=method.phases[0].step):
            traces.append(1)
            return _step(state, batch)

        return method._replace(phases=(method.phases[0]._replace(
            step=chex.assert_max_traces(step, n=1)),))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(methods, "make", counted)
        result = train.train(config, tmp_path / "packed", replicas=GAMMAS)
    assert len(traces) == 1
    s = train.setup(config, replicas=GAMMAS)
    states = train.restore_states(s, tmp_path / "packed")
    np.testing.assert_array_equal(states.extra["gamma"], np.float32([0.008, 2.0]))
    packed_losses = [json.loads(line)["loss"] for line in
                     (tmp_path / "packed" / train.PER_REPLICA_LOG).read_text().splitlines()]
    for k, r in enumerate(GAMMAS):
        alone = tmp_path / f"alone-{k}"
        single = train.train(train.replica_config(config, r), alone)
        assert "gamma" not in train.restore_states(
            train.setup(train.replica_config(config, r)), alone).extra
        assert evaluate.select_replicas(result, [k]) == {**single, "num_seeds": 1}
        # The batched program sums the loss's terms in another order: float32 rounding.
        np.testing.assert_allclose([row[k] for row in packed_losses], _losses(alone), rtol=2e-7)
    assert result["seeds"]["average"]["accuracy"][0] != result["seeds"]["average"]["accuracy"][1]
