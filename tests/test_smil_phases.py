"""SMIL's phases as programs: pretraining runs the training forward pass (dropout on, keyed by the
step), and each phase advances only its own optimiser state (tx1, tx2, tx3).

The whole-objective tests (tests/test_objective_smil.py) run without dropout and read the losses,
so neither fact reaches them (tools/mutate.py, issue 21).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import smil
from mmjax.methods.base import step_keys
from mmjax.methods.smil import SmilConfig
from mmjax.models.encoders import encode

SPEC = DatasetSpec("toy", ("a", "b"), ((6,), (5,)), "classification", 3)
B = 8


def _config(dropout=0.0):
    return ExperimentConfig(
        method=SmilConfig(phase1_steps=1, phase2_steps=1, memory_size=16, num_priors=3),
        model=ModelConfig(hidden=8, feature_dim=4, dropout=dropout), optim=OptimConfig(lr=1e-2),
        train=TrainConfig(steps=4, batch_size=B))


def _batch(key):
    k1, k2, k3 = jax.random.split(key, 3)
    present = jnp.ones((B, 2), bool).at[B // 2:, 1].set(False)
    return {"inputs": {"a": jax.random.normal(k1, (B, 6)),
                       "b": jax.random.normal(k2, (B, 5)) * present[:, 1:]},
            "present": present, "label": jax.random.randint(k3, (B,), 0, 3)}


def _ce(logits, label, weight):
    per = -jnp.take_along_axis(jax.nn.log_softmax(logits, -1), label[:, None], -1)[:, 0]
    return float((per * weight).sum() / jnp.maximum(weight.sum(), 1.0))


def test_pretraining_runs_the_training_forward_pass_with_the_steps_dropout_key():
    """With dropout 0.5, phase 1's three losses (image CE on the batch, audio and fusion CE on
    the D^f batch) equal the dropout-on forward pass with the step's dropout key, computed here
    in the step's order (the image encoder on the batch, then both encoders on D^f)."""
    config = _config(dropout=0.5)
    method = methods.make(config, SPEC)
    batch = _batch(jax.random.key(0))
    state = method.init(jax.random.key(1), batch)
    _, metrics = jax.jit(method.phases[0].step)(state, batch)

    keys = step_keys(state, "memory", "dropout", "inner", "outer", "priors")
    # an empty memory stores every complete sample, whatever the fingerprint vectors
    extra = smil.memory_insert(state.extra, batch, SPEC.modalities, jnp.ones(6), jnp.ones(5))
    mem = smil.memory_batch(extra, keys["memory"], B)
    model = smil.NNXModel(lambda rngs: smil.SmilNet(SPEC, config.model, 3, rngs=rngs))
    net = model.bind(state.params, state.model_state)
    rngs = nnx.Rngs(dropout=keys["dropout"])
    h1 = encode(net.enc1, batch["inputs"]["a"], None, deterministic=False, rngs=rngs)
    h1m = encode(net.enc1, mem.x1, None, deterministic=False, rngs=rngs)
    h2m = encode(net.enc2, mem.x2, None, deterministic=False, rngs=rngs)
    logits = net.fc2(jax.nn.relu(net.fc1(jnp.concatenate([h1m, h2m], -1))))
    expected = {"loss_pre_image": _ce(net.head1(h1), batch["label"], batch["present"][:, 0]),
                "loss_pre_audio": _ce(net.head2(h2m), mem.y, mem.weight),
                "loss_pre_fusion": _ce(logits, mem.y, mem.weight)}
    for name, value in expected.items():
        np.testing.assert_allclose(float(metrics[name]), value, rtol=1e-5, err_msg=name)
    # and not the deterministic pass (dropout really is on)
    det = encode(net.enc1, batch["inputs"]["a"], None, deterministic=True)
    assert abs(_ce(net.head1(det), batch["label"], batch["present"][:, 0])
               - float(metrics["loss_pre_image"])) > 1e-3


def test_each_phase_advances_only_its_own_optimiser_state():
    """Phase 1 updates opt_state[0] (tx1) only, phase 2 opt_state[1] (tx2), the meta phase
    opt_state[2] (tx3): the others stay as they were (each phase starts from a fresh state)."""
    method = methods.make(_config(), SPEC)
    batch = _batch(jax.random.key(0))
    state = method.init(jax.random.key(1), batch)
    for index in range(3):
        phase = method.phases[index]
        start = state if phase.enter is None else jax.jit(phase.enter)(state)
        new, _ = jax.jit(phase.step)(start, batch)
        for i in range(3):
            same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(start.opt_state[i]),
                                                            jax.tree.leaves(new.opt_state[i])))
            assert same == (i != index), (index, i)
        state = new


def test_every_phase_reports_the_norms_of_its_gradient_and_of_the_parameters_it_updated():
    """``grad_norm`` is the global norm of the phase's gradient (> 0, unlike the parameters'
    norm), ``param_norm`` that of the parameters before the update."""
    method = methods.make(_config(), SPEC)
    batch = _batch(jax.random.key(0))
    state = method.init(jax.random.key(1), batch)
    for phase in method.phases:
        if phase.enter is not None:
            state = jax.jit(phase.enter)(state)
        new, metrics = jax.jit(phase.step)(state, batch)
        norm = np.sqrt(sum(float(jnp.sum(x.astype(jnp.float32) ** 2))
                           for x in jax.tree.leaves(state.params)))
        np.testing.assert_allclose(float(metrics["param_norm"]), norm, rtol=1e-5)
        assert 0 < float(metrics["grad_norm"]) < 0.5 * norm, phase.name
        state = new


def test_meta_training_runs_with_dropout_off():
    """The meta phase (eq. 4-7, and eq. 1's term) runs every network in eval mode: its metrics
    and its update are the same at dropout 0 and 0.5."""
    out = []
    for dropout in (0.0, 0.5):
        config = _config(dropout)
        config = dataclasses.replace(config, method=dataclasses.replace(
            config.method, phase1_steps=0, phase2_steps=0, recon_nll_weight=1.0))
        method = methods.make(config, SPEC)
        batch = _batch(jax.random.key(0))
        state = method.init(jax.random.key(1), batch)
        state = state.replace(extra={**state.extra,
                                     "priors": jax.random.normal(jax.random.key(5), (3, 4))})
        out.append(jax.jit(method.phases[2].step)(state, batch))
    (a, ma), (b, mb) = out
    assert float(ma["recon_nll"]) > 0
    for name in ma:
        np.testing.assert_allclose(float(ma[name]), float(mb[name]), rtol=1e-6, err_msg=name)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


def test_released_inner_rate_decays_by_ten_every_n_meta_steps():
    """``inner_lr_decay_every = n``: the inner step size at meta step m (counted from the meta
    phase's start, here step 2) is alpha * 0.1^(m // n). The meta step with n = 1 at m = 0 and 2 equals the
    one with a constant rate alpha * 0.1^m: the same outer loss and update."""
    alpha = 0.5

    def meta_step(m, **method):
        # the meta phase starts at step 2 (one step of each pretraining phase): m counts from it
        config = _config()
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, steps=6),
                                     method=dataclasses.replace(config.method, **method))
        method_ = methods.make(config, SPEC)
        batch = _batch(jax.random.key(0))
        state = method_.init(jax.random.key(1), batch)
        state = state.replace(step=jnp.asarray(2 + m, state.step.dtype), extra={
            **state.extra, "priors": jax.random.normal(jax.random.key(5), (3, 4))})
        return jax.jit(method_.phases[2].step)(state, batch)

    for m in (0, 2):
        decayed, md = meta_step(m, inner_lr=alpha, inner_lr_decay_every=1)
        constant, mc = meta_step(m, inner_lr=alpha * 0.1 ** m, inner_lr_decay_every=0)
        np.testing.assert_allclose(float(md["loss_outer"]), float(mc["loss_outer"]), rtol=1e-5)
        for x, y in zip(jax.tree.leaves(decayed.params), jax.tree.leaves(constant.params)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    # the rates differ enough to show: a step at alpha and one at alpha / 100 differ
    _, m0 = meta_step(0, inner_lr=alpha)
    _, m2 = meta_step(0, inner_lr=alpha * 0.01)
    assert abs(float(m0["loss_outer"]) - float(m2["loss_outer"])) > 1e-3


def test_released_outer_loss_with_an_empty_memory_is_finite():
    """outer_loss=released before any complete sample arrived: the D^f batch has weight 0, so its
    cross-entropy and its two feature-matching terms are 0 (each a weighted mean with the floor
    of 1), and the step stays finite."""
    config = smil.released(_config())
    config = dataclasses.replace(config, method=dataclasses.replace(
        config.method, phase1_steps=0, phase2_steps=0))
    method = methods.make(config, SPEC)
    batch = _batch(jax.random.key(0))
    batch = {**batch, "present": batch["present"].at[:, 1].set(False)}
    state = method.init(jax.random.key(1), batch)
    state = state.replace(extra={**state.extra,
                                 "priors": jax.random.normal(jax.random.key(5), (3, 4))})
    new, metrics = jax.jit(method.phases[2].step)(state, batch)
    assert float(metrics["memory"]) == 0
    assert float(metrics["loss_outer"]) == 0
    np.testing.assert_allclose(float(metrics["loss"]), float(metrics["loss_inner"]), rtol=1e-6)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(new.params))


def test_released_outer_loss_adds_kl_weight_times_the_kl():
    """outer_loss=released with kl_weight w > 0 (the released preset has 0): the loss grows by
    w * KL of the meta-train pass (the fixed-sigma regulariser's KL, > 0), everything else equal."""
    out = {}
    for weight in (0.0, 0.5):
        config = smil.released(_config())
        config = dataclasses.replace(config, method=dataclasses.replace(
            config.method, phase1_steps=0, phase2_steps=0, kl_weight=weight))
        method = methods.make(config, SPEC)
        batch = _batch(jax.random.key(0))
        state = method.init(jax.random.key(1), batch)
        state = state.replace(extra={**state.extra,
                                     "priors": jax.random.normal(jax.random.key(5), (3, 4))})
        out[weight] = jax.jit(method.phases[2].step)(state, batch)[1]
    kl = float(out[0.5]["kl"])
    assert kl > 0
    np.testing.assert_allclose(float(out[0.0]["kl"]), kl, rtol=1e-6)
    np.testing.assert_allclose(float(out[0.5]["loss"]) - float(out[0.0]["loss"]), 0.5 * kl,
                               rtol=1e-4)
