"""MLA: the RLS projector (eq. 3-4), dynamic fusion (eq. 5-7) and the alternating step (eq. 1-2)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods import mla
from mmjax.methods.base import make_optimizer

SPEC = DatasetSpec("toy", ("a", "b", "c"), ((5,), (4,), (3,)), "classification", 4)
B = 8


def _config(dropout=0.0, **method):
    return ExperimentConfig(model=ModelConfig(hidden=8, feature_dim=8, dropout=dropout),
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
    # With missing samples: the softmax runs over the samples that have the modality only (here
    # modality 0 is absent from samples 1 and 3), and the sum leaves the others out.
    present = np.ones((5, 2), bool)
    present[[1, 3], 0] = False
    got = np.asarray(mla.entropies(jnp.asarray(logits, jnp.float32), jnp.asarray(present),
                                   "per_batch"))
    for m in range(2):
        x = logits[present[:, m], m]
        p = np.exp(x - x.max(0)) / np.exp(x - x.max(0)).sum(0)
        np.testing.assert_allclose(got[:, m], -(p * np.log(p)).sum(), rtol=1e-5)


def _leaves(tree):
    return {mla.path_names(p): np.asarray(x)
            for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _mod(names):
    """The modality whose encoder (or projection) the leaf named ``names`` belongs to."""
    for i, n in enumerate(names[:-1]):
        if n in ("encoders", "project"):
            return names[i + 1]
    return None


def _changed(before, after, mod):
    """Whether any leaf of modality ``mod``'s encoder (or projection) changed."""
    return any(not np.array_equal(v, before[p]) for p, v in after.items()
               if _mod(p) == mod)


def test_one_step_is_a_round_of_unimodal_updates_in_order():
    """Step s = paper iterations 3s, 3s+1, 3s+2 (modalities a, b, c in turn) on one batch: every
    encoder and the head move, P takes one eq. 3 update per modality in order, and each modality's
    forward pass sees the head as the previous modality's update left it."""
    method = mla.make(_config(), SPEC)
    batch = _batch()
    state = method.init(jax.random.key(0), batch)
    step = jax.jit(method.train_step)
    embed = jax.jit(mla.make_embed(_config(), SPEC))
    start = state
    for s in range(3):
        before = _leaves(state.params)
        feats = np.asarray(embed(state, batch), np.float64)  # [B, M, s]
        P_before = np.asarray(state.opt_state[0].P)
        state, metrics = step(state, batch)
        assert int(state.step) == s + 1
        assert int(state.opt_state[0].count) == 3 * (s + 1)  # M projector calls per step
        after = _leaves(state.params)
        for mod in "abc":  # every encoder moved this step
            assert _changed(before, after, mod), (s, mod)
        assert not np.array_equal(after[("head", "kernel")], before[("head", "kernel")])
        # Eq. 3 once per modality; each hbar is its encoder's feature at the start of the round
        # (encoder m is moved only by its own update). At t = 0 (the first update of step 0) P
        # is left alone. (With a constant alpha, RLS does not depend on the order of the
        # features; the losses below pin the order.)
        P = P_before
        for c in range(3) if s else (1, 2):
            P = _rls_numpy(P, feats[:, c].mean(0), 0.1)
        np.testing.assert_allclose(np.asarray(state.opt_state[0].P), P, atol=1e-4)
        np.testing.assert_allclose(float(metrics["projector_trace"]), np.trace(P), rtol=1e-4)
    # Step 0 by hand: a's loss uses the initial head; b's the head after a's SGD update
    # (momentum trace starts at 0: head -= lr * grad; no projection at t = 0); c's the head after
    # b's (trace = 0.9 g_a + P_1 g_b on the kernel, P_1 = eq. 3 with b's feature).
    params0 = _leaves(start.params)
    W, b = params0[("head", "kernel")], params0[("head", "bias")]
    feats0 = jnp.asarray(embed(start, batch))
    labels = batch["label"]

    def ce(head, h):
        logp = jax.nn.log_softmax(h @ head[0] + head[1][None], -1)
        return -jnp.take_along_axis(logp, labels[:, None], -1).mean()

    state1, metrics0 = step(start, batch)
    np.testing.assert_allclose(float(metrics0["loss_a"]), float(ce((W, b), feats0[:, 0])),
                               rtol=1e-5)
    gW, gb = jax.grad(ce)((jnp.asarray(W), jnp.asarray(b)), feats0[:, 0])
    head_a = (W - 0.1 * np.asarray(gW), b - 0.1 * np.asarray(gb))
    np.testing.assert_allclose(float(metrics0["loss_b"]), float(ce(head_a, feats0[:, 1])),
                               rtol=1e-5)
    assert abs(float(ce((W, b), feats0[:, 1])) - float(metrics0["loss_b"])) > 1e-4
    gW_b, gb_b = jax.grad(ce)((jnp.asarray(head_a[0]), jnp.asarray(head_a[1])), feats0[:, 1])
    P1 = _rls_numpy(np.eye(6), np.asarray(feats0[:, 1], np.float64).mean(0), 0.1)
    head_ab = (head_a[0] - 0.1 * (0.9 * np.asarray(gW) + P1 @ np.asarray(gW_b)),
               head_a[1] - 0.1 * (0.9 * np.asarray(gb) + np.asarray(gb_b)))
    np.testing.assert_allclose(float(metrics0["loss_c"]), float(ce(head_ab, feats0[:, 2])),
                               rtol=1e-5)
    assert abs(float(ce(head_a, feats0[:, 2])) - float(metrics0["loss_c"])) > 1e-4
    np.testing.assert_allclose(float(metrics0["loss"]),
                               np.mean([float(metrics0[f"loss_{m}"]) for m in "abc"]), rtol=1e-6)


def test_the_step_never_branches_and_one_trace_serves_every_mask_and_step():
    method = mla.make(_config(), SPEC)
    batch = _batch()
    jaxpr = str(jax.make_jaxpr(method.train_step)(method.init(jax.random.key(0), batch), batch))
    assert " cond[" not in jaxpr and "switch" not in jaxpr
    traces = []

    def counted(state, batch):
        traces.append(1)
        return method.train_step(state, batch)

    step = jax.jit(counted)
    state = method.init(jax.random.key(0), batch)
    for t in range(4):
        present = jnp.ones((B, 3), bool).at[: t + 1, t % 3].set(False)
        state, metrics = step(state, _batch(present))
        assert bool(jnp.isfinite(metrics["loss"]))
    assert len(traces) == 1


def test_absent_modality_contributes_nothing():
    present = jnp.ones((B, 3), bool).at[:, 0].set(False)  # "a" absent everywhere
    method = mla.make(_config(), SPEC)
    batch = _batch(present)
    state = method.init(jax.random.key(0), batch)
    new, metrics = jax.jit(method.train_step)(state, batch)
    assert float(metrics["loss_a"]) == 0.0 and float(metrics["train_acc_a"]) == 0.0
    before, after = _leaves(state.params), _leaves(new.params)
    for path, value in after.items():  # a's encoder, its projection and optimiser state held
        if _mod(path) == "a":
            np.testing.assert_array_equal(value, before[path])
    for path, value in _leaves(new.opt_state).items():
        if _mod(path) == "a":
            np.testing.assert_array_equal(value, _leaves(state.opt_state)[path])
    assert _changed(before, after, "b") and _changed(before, after, "c")
    # a's update stored nothing in P (and was t = 0 anyway): P saw b's and c's features only.
    feats = np.asarray(mla.make_embed(_config(), SPEC)(state, batch), np.float64)
    P = _rls_numpy(_rls_numpy(np.eye(6), feats[:, 1].mean(0), 0.1), feats[:, 2].mean(0), 0.1)
    np.testing.assert_allclose(np.asarray(new.opt_state[0].P), P, atol=1e-4)


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


def test_select_is_gone_and_schedules_count_rounds():
    assert "select" not in {f.name for f in dataclasses.fields(mla.MlaConfig)}
    with pytest.raises(TypeError):
        mla.MlaConfig(select="all")
    # A staircase decay every 2 steps = every 2 rounds = every 6 optimiser updates (M = 3).
    optim = mla.round_optim(OptimConfig(name="sgd", lr=1.0, momentum=0.0, schedule="step",
                                        decay_steps=2, decay_rate=0.1, warmup_steps=1), 3)
    assert (optim.decay_steps, optim.warmup_steps) == (6, 3)
    tx = make_optimizer(dataclasses.replace(optim, warmup_steps=0), 30)
    g = {"w": jnp.ones(())}
    st = tx.init(g)
    lrs = []
    for _ in range(13):
        u, st = tx.update(g, st)
        lrs.append(-float(u["w"]))
    np.testing.assert_allclose(lrs, [1.0] * 6 + [0.1] * 6 + [0.01], rtol=1e-6)
    method = mla.make(_config(), SPEC)
    assert [(p.name, p.steps) for p in method.phases] == [("train", None)]
    # The released alpha is per batch: the same for the M updates of one step.
    tx = mla.head_gradient_projection(6, _kernel_only, alpha=0.1, alpha_epoch_steps=10,
                                      updates_per_step=3)
    grads = {"kernel": jnp.ones((6, 4)), "bias": jnp.ones(4)}
    hs = jnp.asarray(np.random.default_rng(4).normal(size=(17, 6)), jnp.float32)
    st = tx.init(grads)
    for h in hs[:16]:
        _, st = tx.update(grads, st, feature=h)
    P16 = np.asarray(st.P)
    _, st = tx.update(grads, st, feature=hs[16])  # update 16 = step 16 // 3 = 5: alpha 0.1 ** 1.5
    np.testing.assert_allclose(np.asarray(st.P), _rls_numpy(P16, hs[16], 0.1 ** 1.5),
                               rtol=1e-4, atol=1e-5)
    per_update = _rls_numpy(P16, hs[16], 0.1 ** 1.6)  # what counting updates would give
    assert np.abs(per_update - np.asarray(st.P)).max() > 1e-4


def test_the_optimiser_spans_every_update_of_the_run():
    """M unimodal updates per step: the optimiser is built for M * train.steps updates, its
    schedule lengths counted in rounds (tests above); a user's factory sees the same."""
    seen = []

    def factory(optim, total_steps):
        seen.append((total_steps, optim.decay_steps, optim.warmup_steps))
        return optax.sgd(optim.lr)

    config = _config()
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, decay_steps=4,
                                                                   warmup_steps=2))
    methods.make(config, SPEC, tx=factory)
    assert seen == [(3 * 20, 3 * 4, 3 * 2)]


def test_fixed_fusion_needs_one_weight_per_modality_and_other_fusions_need_none():
    with pytest.raises(UserError, match="one weight per modality"):
        mla.make(_config(fusion="fixed", fusion_weights=(1.0, 2.0)), SPEC)
    four = DatasetSpec("toy4", ("a", "b", "c", "d"), ((5,), (4,), (3,), (2,)), "classification",
                       4)
    with pytest.raises(UserError, match="released ones exist for 2 or 3 modalities"):
        mla.make(_config(fusion="fixed"), four)  # no released weights for four modalities
    mla.make(_config(fusion="dynamic"), four)  # nothing to check
    mla.make(_config(fusion="fixed", fusion_weights=(1.0, 2.0, 3.0, 4.0)), four)


def test_training_step_runs_the_training_forward_pass():
    """With dropout on, the step's loss depends on its dropout key (train=True)."""
    config = _config(dropout=0.5)
    method = mla.make(config, SPEC)
    batch = _batch()
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    assert float(step(state, batch)[1]["loss"]) != float(
        step(state.replace(key=jax.random.key(9)), batch)[1]["loss"])


def test_step_metrics_are_each_modalitys_masked_accuracy_and_the_rounds_gradient_norm():
    """With lr 0 every unimodal update of the round sees the initial parameters, so
    train_acc_m = accuracy of modality m's logits over its present samples, and grad_norm =
    sqrt(sum_m ||grad of loss_m||^2) over every parameter, from the network's forward pass here."""
    config = _config(head_projection="none")
    config = dataclasses.replace(config, optim=OptimConfig(name="sgd", lr=0.0, momentum=0.0))
    method = mla.make(config, SPEC)
    present = np.ones((B, 3), bool)
    present[[0, 3, 5], 0] = False
    present[[1, 2], 2] = False
    batch = _batch(jnp.asarray(present))
    state = method.init(jax.random.key(0), batch)
    _, metrics = jax.jit(method.train_step)(state, batch)
    embed = mla.make_embed(config, SPEC)
    labels = np.asarray(batch["label"])

    def loss_and_logits(params, c):
        feats = embed(state.replace(params=params), batch)[:, c]
        head = params["head"]
        logits = feats @ head["kernel"][...] + head["bias"][...][None]
        logp = jax.nn.log_softmax(logits, -1)
        nll = -jnp.take_along_axis(logp, jnp.asarray(labels)[:, None], -1)[:, 0]
        w = present[:, c]
        return (nll * w).sum() / w.sum(), logits

    grad_sq = 0.0
    for c, m in enumerate("abc"):
        (loss, logits), g = jax.value_and_grad(loss_and_logits, has_aux=True)(state.params, c)
        w = present[:, c]
        acc = ((np.asarray(logits).argmax(-1) == labels) * w).sum() / w.sum()
        np.testing.assert_allclose(float(metrics[f"loss_{m}"]), float(loss), rtol=1e-5)
        np.testing.assert_allclose(float(metrics[f"train_acc_{m}"]), acc, rtol=1e-6)
        grad_sq += sum(float(np.sum(np.asarray(x, np.float64) ** 2)) for x in jax.tree.leaves(g))
    np.testing.assert_allclose(float(metrics["grad_norm"]), np.sqrt(grad_sq), rtol=1e-5)


def test_a_modality_absent_from_the_whole_batch_leaves_the_projector_finite():
    """Its batch-mean feature is 0 / max(0 samples, 1) = 0, and eq. 3 with h = 0 leaves P."""
    method = mla.make(_config(), SPEC)
    present = jnp.ones((B, 3), bool).at[:, 0].set(False)
    batch = _batch(present)
    state = method.init(jax.random.key(0), batch)
    step = jax.jit(method.train_step)
    for _ in range(2):  # the first update of step 0 stores nothing; step 1's a-update does
        state, metrics = step(state, batch)
    assert np.isfinite(np.asarray(state.opt_state[0].P)).all()
    assert np.isfinite(float(metrics["loss"]))


def test_embed_is_the_evaluation_forward_pass():
    """With dropout on, the modality-gap features are the deterministic (train=False) ones."""
    config = _config(dropout=0.5)
    method = mla.make(config, SPEC)
    batch = _batch()
    state = method.init(jax.random.key(0), batch)
    (_, feats), _ = mla.make_net(config, SPEC).apply(state.params, state.model_state,
                                                     batch["inputs"], batch["present"],
                                                     train=False)
    np.testing.assert_array_equal(np.asarray(mla.make_embed(config, SPEC)(state, batch)),
                                  np.asarray(feats, np.float32))


@pytest.mark.parametrize("fusion", ["average", "fixed"])
def test_average_and_fixed_fusion_renormalise_per_sample_and_give_zero_without_modalities(fusion):
    logits = jnp.asarray(np.random.default_rng(5).normal(size=(3, 3, 4)), jnp.float32)
    present = jnp.array([[True, False, True], [False, False, False], [False, True, False]])
    weights = (1.0, 2.0, 3.0)
    got = np.asarray(mla.fuse(logits, present, fusion, weights=weights))
    w = np.asarray(weights) if fusion == "fixed" else np.ones(3)
    x = np.asarray(logits, np.float64)
    np.testing.assert_allclose(got[0], (w[0] * x[0, 0] + w[2] * x[0, 2]) / (w[0] + w[2]),
                               rtol=1e-6)
    np.testing.assert_array_equal(got[1], 0.0)  # nothing present: 0, not 0 / 0
    np.testing.assert_allclose(got[2], x[2, 1], rtol=1e-6)
