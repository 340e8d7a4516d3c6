"""MLA: the RLS projector (eq. 3-4), dynamic fusion (eq. 5-7) and the alternating step (eq. 1-2)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import mla

SPEC = DatasetSpec("toy", ("a", "b", "c"), ((5,), (4,), (3,)), "classification", 4)
B = 8


def _config(**method):
    return ExperimentConfig(model=ModelConfig(hidden=8, feature_dim=8, dropout=0.0),
                            method=mla.MlaConfig(head_dim=6, **method),
                            optim=OptimConfig(name="sgd", lr=0.1, momentum=0.9),
                            train=TrainConfig(steps=20))


def _batch(present=None):
    ks = jax.random.split(jax.random.key(1), 3)
    inputs = {m: jax.random.normal(k, (B, *s)) for m, k, s in zip(SPEC.modalities, ks,
                                                                    SPEC.shapes)}
    present = jnp.ones((B, 3), bool) if present is None else present
    return {"inputs": inputs, "present": present, "label": jnp.arange(B) % 4}


def _rls_numpy(P, h, alpha):
    P, h = np.asarray(P, np.float64), np.asarray(h, np.float64)
    return P - np.outer(P @ h, h @ P) / (alpha + h @ P @ h)


def test_rls_step_equals_closed_form():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 6))
    P = A @ A.T + np.eye(6)
    h = rng.normal(size=6)
    got = mla.rls_step(jnp.asarray(P, jnp.float32), jnp.asarray(h, jnp.float32), 0.1)
    np.testing.assert_allclose(np.asarray(got), _rls_numpy(P, h, 0.1), rtol=1e-4, atol=1e-4)
    # h = 0 stores nothing.
    np.testing.assert_array_equal(np.asarray(mla.rls_step(jnp.eye(6), jnp.zeros(6), 0.1)),
                                  np.eye(6))


def _kernel_only(path):
    return mla.path_names(path)[-1:] == ("kernel",)


def test_projected_gradient_is_orthogonal_to_stored_feature():
    tx = mla.head_gradient_projection(6, _kernel_only, alpha=1e-4)
    rng = np.random.default_rng(1)
    grads = {"kernel": jnp.asarray(rng.normal(size=(6, 4)), jnp.float32),
             "bias": jnp.asarray(rng.normal(size=4), jnp.float32)}
    h = jnp.asarray(rng.normal(size=6), jnp.float32)
    state = tx.init(grads)
    # t = 0 (eq. 4, first case): the gradient passes unchanged and P stays the identity.
    out0, state = tx.update(grads, state, feature=h)
    np.testing.assert_array_equal(np.asarray(out0["kernel"]), np.asarray(grads["kernel"]))
    np.testing.assert_array_equal(np.asarray(state.P), np.eye(6))
    # t = 1: P is updated with h, the kernel gradient is projected, the bias is not.
    out1, state = tx.update(grads, state, feature=h)
    np.testing.assert_allclose(np.asarray(state.P), _rls_numpy(np.eye(6), h, 1e-4), atol=1e-5)
    np.testing.assert_allclose(np.asarray(out1["kernel"]),
                               np.asarray(state.P) @ np.asarray(grads["kernel"]), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(out1["bias"]), np.asarray(grads["bias"]))
    # The update along h vanishes: |h^T (P G)| << |h| |G| (ratio alpha / |h|^2 in theory).
    along = np.abs(np.asarray(h) @ np.asarray(out1["kernel"]))
    before = np.abs(np.asarray(h) @ np.asarray(grads["kernel"]))
    scale = np.linalg.norm(h) * np.linalg.norm(np.asarray(grads["kernel"]), axis=0)
    assert np.all(along <= 1e-3 * scale), (along, scale)
    assert np.any(before > 0.1 * scale)  # the raw gradient was not orthogonal already


def test_projector_stays_symmetric_psd():
    rng = np.random.default_rng(2)
    P = jnp.eye(8)
    for _ in range(60):
        P = mla.rls_step(P, jnp.asarray(rng.normal(size=8) * rng.uniform(0.1, 3.0),
                                        jnp.float32), 0.1)
    P = np.asarray(P)
    np.testing.assert_allclose(P, P.T, atol=1e-7)
    assert np.linalg.eigvalsh(P.astype(np.float64)).min() >= -1e-6
    assert np.trace(P) < 8.0  # it did shrink


def test_fusion_weights_match_eq7_and_ignore_missing():
    # Probabilities given directly (logits = log p), entropies by hand.
    p0 = np.array([0.25, 0.25, 0.25, 0.25])       # e0 = ln 4 = 1.3862944
    p1 = np.array([0.7, 0.1, 0.1, 0.1])           # e1 = 0.9404479
    p2 = np.array([0.97, 0.01, 0.01, 0.01])       # e2 = 0.1677005
    e = np.array([1.3862944, 0.9404479, 0.1677005])
    logits = jnp.asarray(np.log(np.stack([[p0, p1, p2], [p0, p1, p2]])), jnp.float32)
    present = jnp.array([[True, True, True], [True, True, False]])
    got_e = mla.entropies(logits, present)
    np.testing.assert_allclose(np.asarray(got_e[0]), e, atol=1e-5)
    w = np.asarray(mla.fusion_weights(got_e, present))
    full = np.exp(e.max() - e) / np.exp(e.max() - e).sum()  # eq. 7
    np.testing.assert_allclose(w[0], full, atol=1e-5)
    e01 = e[:2]
    part = np.exp(e01.max() - e01) / np.exp(e01.max() - e01).sum()
    np.testing.assert_allclose(w[1], [part[0], part[1], 0.0], atol=1e-5)
    assert w[1, 2] == 0.0
    fused = np.asarray(mla.fuse(logits, present))
    np.testing.assert_allclose(fused[1], part[0] * np.log(p0) + part[1] * np.log(p1), atol=1e-5)
    # A single present modality: its own logits; none present: zeros.
    only = jnp.array([[False, True, False], [False, False, False]])
    out = np.asarray(mla.fuse(logits, only))
    np.testing.assert_allclose(out[0], np.log(p1), atol=1e-6)
    np.testing.assert_array_equal(out[1], 0.0)


def test_per_batch_entropy_is_the_released_rule():
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(5, 2, 3))
    got = np.asarray(mla.entropies(jnp.asarray(logits, jnp.float32), jnp.ones((5, 2), bool),
                                   "per_batch"))
    for m in range(2):  # calculate_entropy: softmax over dim 0, -sum p log p over [B, C]
        x = logits[:, m]
        p = np.exp(x - x.max(0)) / np.exp(x - x.max(0)).sum(0)
        np.testing.assert_allclose(got[:, m], -(p * np.log(p)).sum(), rtol=1e-5)
    # the same weights for every sample, unlike per_sample
    w = np.asarray(mla.fusion_weights(jnp.asarray(got), jnp.ones((5, 2), bool)))
    np.testing.assert_allclose(w, np.broadcast_to(w[0], w.shape), atol=1e-7)


def _leaves(tree):
    return {mla.path_names(p): np.asarray(x)
            for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_alternation_visits_each_modality_once_per_cycle_and_trains_only_it():
    method = mla.make(_config(), SPEC)
    batch = _batch()
    state = method.init(jax.random.key(0), batch)
    step = jax.jit(method.train_step)
    embed = jax.jit(mla.make_embed(_config(), SPEC))
    seen = []
    for t in range(6):
        before = _leaves(state.params)
        hbar = np.asarray(embed(state, batch))[:, t % 3].mean(0)
        P_before = np.asarray(state.opt_state[0].P)
        state, metrics = step(state, batch)
        seen.append(int(metrics["modality"]))
        after = _leaves(state.params)
        for path, value in after.items():
            mod = next((n for n in ("a", "b", "c") if n in path[1:3]), None)
            changed = not np.array_equal(value, before[path])
            if mod is not None:
                assert changed == (mod == "abc"[t % 3]), (t, path)
        if t >= 1:
            np.testing.assert_allclose(np.asarray(state.opt_state[0].P),
                                       _rls_numpy(P_before, hbar, 0.1), atol=1e-4)
    assert seen == [0, 1, 2, 0, 1, 2]


def test_absent_modality_contributes_nothing():
    present = jnp.ones((B, 3), bool).at[:, 0].set(False)  # step 0 trains "a", absent everywhere
    method = mla.make(_config(), SPEC)
    batch = _batch(present)
    state = method.init(jax.random.key(0), batch)
    new, metrics = jax.jit(method.train_step)(state, batch)
    assert float(metrics["loss"]) == 0.0
    for path, value in _leaves(new.params).items():
        np.testing.assert_array_equal(value, _leaves(state.params)[path])


def test_none_projection_and_switches():
    method = mla.make(_config(head_projection="none", fusion="average", entropy="per_batch"),
                      SPEC)
    batch = _batch()
    state = method.init(jax.random.key(0), batch)
    assert not any(isinstance(s, mla.ProjectionState) for s in state.opt_state)
    state, metrics = jax.jit(method.train_step)(state, batch)
    assert "projector_trace" not in metrics
    out = method.predict(state, batch)
    assert out.shape == (B, 4) and bool(jnp.isfinite(out).all())
    with pytest.raises(Exception, match="head_projection"):
        mla.make(_config(head_projection="released"), SPEC)
    # alpha schedule as released: 0.1 at the start of an epoch, 0.01 at its end
    np.testing.assert_allclose(float(mla.alpha_at(0.1, 10, jnp.array(0))), 0.1, rtol=1e-6)
    np.testing.assert_allclose(float(mla.alpha_at(0.1, 10, jnp.array(5))), 0.1 ** 1.5, rtol=1e-5)
    np.testing.assert_allclose(float(mla.alpha_at(0.1, 10, jnp.array(10))), 0.1, rtol=1e-6)


def test_config_files_build():
    from mmjax import config as config_lib
    for ds in ("mfeat", "avmnist_offline"):
        cfg = config_lib.load(f"configs/{ds}/mla.py")
        assert cfg.method.name == "mla" and cfg.optim.name == "sgd"
        assert dataclasses.replace(cfg.method).head_projection == "paper"


def test_select_all_equals_switch():
    batch = _batch(jnp.ones((B, 3), bool).at[:3, 1].set(False))
    states = []
    for select in ("switch", "all"):
        method = mla.make(_config(select=select), SPEC)
        state = method.init(jax.random.key(0), batch)
        step = jax.jit(method.train_step)
        for _ in range(4):
            state, _ = step(state, batch)
        states.append(state)
    for a, b in zip(jax.tree.leaves(states[0].params), jax.tree.leaves(states[1].params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(states[0].opt_state[0].P),
                               np.asarray(states[1].opt_state[0].P), rtol=1e-5, atol=1e-6)
