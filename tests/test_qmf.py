"""QMF: energy-confidence fusion and the ranking regulariser against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import qmf

SPEC = DatasetSpec("toy", ("a", "b"), ((5,), (3,)), "classification", 3)


def test_fusion_is_energy_confidence_weighted_and_skips_missing():
    la = np.array([[2.0, 0.0, -1.0]])
    lb = np.array([[0.5, 1.5, 0.0]])
    logits = jnp.asarray(np.stack([la, lb], 1), jnp.float32)  # [1, 2, 3]
    ca = np.log(np.exp(la).sum()) / 10.0  # logsumexp / T
    cb = np.log(np.exp(lb).sum()) / 10.0
    got = np.asarray(qmf.fuse(logits, jnp.array([[True, True]])))
    np.testing.assert_allclose(got[0], ca * la[0] + cb * lb[0], rtol=1e-5)
    got = np.asarray(qmf.fuse(logits, jnp.array([[True, False]])))
    np.testing.assert_allclose(got[0], ca * la[0], rtol=1e-5)
    # the confidence is a stop-gradient weight: d fused / d logits_a = conf_a only
    g = jax.grad(lambda x: qmf.fuse(x, jnp.array([[True, True]]))[0, 0])(logits)
    np.testing.assert_allclose(np.asarray(g)[0, 0], [ca, 0, 0], rtol=1e-5)


def test_ranking_loss_hand_example():
    conf = jnp.array([0.5, 0.2, 0.9])
    hist = jnp.array([1.2, 1.0, 3.0])
    # pairs (0,1): t=+1, d=0.2 -> max(0, 0.3-0.2)=0.1; (1,2): t=-1, d=2 -> max(0, 0.7-2)=0;
    # (2,0): t=+1, d=1.8 -> max(0, 0.4-1.8)=0
    got = float(qmf.ranking_loss(conf, hist, jnp.array([True, True, True])))
    np.testing.assert_allclose(got, 0.1 / 3, rtol=1e-5)
    # equal histories give no target; a pair with a missing sample is dropped
    assert float(qmf.ranking_loss(conf, jnp.ones(3), jnp.ones(3, bool))) == 0.0
    got = float(qmf.ranking_loss(conf, hist, jnp.array([True, True, False])))
    np.testing.assert_allclose(got, 0.1 / 1, rtol=1e-5)
    # no pair has both samples: the mean over no pair is 0, not 0 / 0
    assert float(qmf.ranking_loss(conf, hist, jnp.array([True, False, False]))) == 0.0


def test_training_step_runs_the_training_forward_pass():
    """With dropout on, the step's losses depend on its dropout key (train=True): two states
    that differ only in their key give different losses."""
    from mmjax import methods
    from mmjax.methods.qmf import QmfConfig
    from toy import random_batch

    config = ExperimentConfig(method=QmfConfig(), model=ModelConfig(hidden=8, feature_dim=4,
                                                                    dropout=0.5),
                              train=TrainConfig(steps=2))
    method = methods.make(config, SPEC)
    batch = random_batch(jax.random.key(0), SPEC)
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    _, one = step(state, batch)
    _, other = step(state.replace(key=jax.random.key(9)), batch)
    assert float(one["loss"]) != float(other["loss"])


def test_released_history_normalisation_is_min_and_max_of_the_table():
    # released History.correctness_normalize: (c - table.min()) / (table.max() - table.min())
    table = jnp.array([0.5, 1.0, 2.0, 3.0, 5.0])
    hist = jnp.array([1.0, 2.0, 3.0, 4.0])  # the batch's min (1) is not the table's (0.5)
    got = qmf.normalize_history(hist, table)
    np.testing.assert_allclose(np.asarray(got), [0.5 / 4.5, 1.5 / 4.5, 2.5 / 4.5, 3.5 / 4.5],
                               rtol=1e-6)
    # with normalised targets the margins stay in [0, 1] however long the training
    np.testing.assert_allclose(
        float(qmf.ranking_loss(jnp.array([0.5, 0.2, 0.9]),
                               qmf.normalize_history(jnp.array([12.0, 10.0, 30.0]),
                                                     jnp.array([10.0, 12.0, 30.0])),
                               jnp.ones(3, bool))),
        (0.3 - 0.1) / 3, rtol=1e-5)  # pair (0,1): t=+1, d=0.1; others inactive
    assert float(qmf.normalize_history(hist, jnp.zeros(5)).sum()) == 0.0


def test_history_normalisation_of_a_table_with_a_range_below_one():
    """Early in training the cumulative losses span less than 1: the scale is still
    1 / (max - min) (only an empty range gives 0), so the normalised histories fill [0, 1]."""
    for table, scale in (([0.2, 0.45, 0.7], 2.0), ([3.0, 3.001, 3.0005], 1000.0),
                         ([0.0, 1.0], 1.0)):
        table = jnp.asarray(table, jnp.float32)
        span = float(np.ptp(np.asarray(table, np.float64)))
        np.testing.assert_allclose(float(qmf.history_scale(table)), 1.0 / span, rtol=1e-6)
        np.testing.assert_allclose(1.0 / span, scale, rtol=1e-3)  # the case is what it says
        np.testing.assert_allclose(np.asarray(qmf.normalize_history(table, table)),
                                   (np.asarray(table, np.float64) - float(table.min())) / span,
                                   rtol=1e-5, atol=1e-6)


def test_input_hash_is_the_documented_one():
    """Without ``"index"`` a sample's history slot is the hash of its float32 inputs: per modality
    c, h <- h * B + sum_k bits(x_k) * ((k A + 2c + 1) | 1), then h ^= h >> 15 (mod 2^32); slot =
    h mod size. The history table (checkpointed with the state) is indexed by it, so the hash
    must not change; evaluated here in numpy with explicit 64-bit wrap-around."""
    rng = np.random.default_rng(3)
    present = np.ones((5, 2), bool)
    present[1, 1] = False
    inputs = {"a": rng.normal(size=(5, 5)).astype(np.float32),
              "b": rng.normal(size=(5, 3)).astype(np.float32) * present[:, 1:]}
    batch = {"inputs": {m: jnp.asarray(x) for m, x in inputs.items()},
             "present": jnp.asarray(present), "label": jnp.zeros(5, jnp.int32)}
    mask = (1 << 32) - 1
    want = []
    for i in range(5):
        h = 0
        for c, m in enumerate(SPEC.modalities):
            bits = inputs[m][i].view(np.uint32).astype(np.uint64)
            total = sum(int(v) * (((k * qmf._MUL_A + 2 * c + 1) & mask) | 1)
                        for k, v in enumerate(bits))
            h = (h * qmf._MUL_B + total) & mask
            h ^= h >> 15
        want.append(h % 1000)
    np.testing.assert_array_equal(np.asarray(qmf.sample_slots(batch, SPEC.modalities, 1000)),
                                  want)


def test_history_accumulates_losses_of_present_samples():
    config = ExperimentConfig(model=ModelConfig(hidden=8, feature_dim=8, dropout=0.0),
                              method=qmf.QmfConfig(head_dim=6, history_size=1024),
                              optim=OptimConfig(name="sgd", lr=0.1), train=TrainConfig(steps=4))
    method = qmf.make(config, SPEC)
    ks = jax.random.split(jax.random.key(0), 2)
    present = jnp.ones((6, 2), bool).at[0, 1].set(False)
    batch = {"inputs": {"a": jax.random.normal(ks[0], (6, 5)),
                        "b": jax.random.normal(ks[1], (6, 3)) * present[:, 1:]},
             "present": present, "label": jnp.array([0, 1, 2, 0, 1, 2])}
    state = method.init(jax.random.key(1), batch)
    slots = qmf.sample_slots(batch, SPEC.modalities, 1024)
    assert len(set(np.asarray(slots).tolist())) == 6  # distinct samples, distinct slots
    np.testing.assert_array_equal(np.asarray(slots),
                                  np.asarray(qmf.sample_slots(batch, SPEC.modalities, 1024)))
    new, metrics = jax.jit(method.train_step)(state, batch)
    hist = np.asarray(new.extra["history"])
    # the b-history of sample 0 (b missing) stays zero; the a-history sums to the mean loss * 6
    assert hist[1, int(slots[0])] == 0.0
    np.testing.assert_allclose(hist[0].sum(), 6 * float(metrics["loss_a"]), rtol=1e-5)
    np.testing.assert_allclose(hist[1].sum(), 5 * float(metrics["loss_b"]), rtol=1e-5)
    out = method.predict(new, batch)
    assert out.shape == (6, 3) and bool(jnp.isfinite(out).all())
