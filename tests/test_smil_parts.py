"""SMIL's parts that the whole-objective tests reach only through sums: the per-sample KL of
every reconstruction and regulariser form, the paired memory (duplicate test near zero, the
weight of a one-sample memory, sequence lengths, the two modalities' fingerprint directions),
the priors' source rows, and the length each phase's optimiser is built for.

Each test pins one fact a one-token bug would break (tools/mutate.py, issue 21).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import smil, smil_priors
from mmjax.methods.smil import SmilConfig
from mmjax.models.encoders import encode

SPEC = DatasetSpec("toy", ("a", "b"), ((6,), (5,)), "classification", 3)
B = 4


def _config(spec=SPEC, steps=8, **method):
    method = {"phase1_steps": 2, "phase2_steps": 2, "memory_size": 16, "num_priors": 3, **method}
    return ExperimentConfig(method=SmilConfig(**method), model=ModelConfig(hidden=8, feature_dim=4),
                            optim=OptimConfig(lr=1e-2), train=TrainConfig(steps=steps,
                                                                           batch_size=B))


def _net(config=None):
    config = config or _config()
    model = smil.NNXModel(lambda rngs: smil.SmilNet(SPEC, config.model, 3, rngs=rngs))
    state = model.init(jax.random.key(0))
    return model.bind(*state)


def _complete_batch(x1, x2, label=None):
    n = x1.shape[0]
    return {"inputs": {"a": jnp.asarray(x1, jnp.float32), "b": jnp.asarray(x2, jnp.float32)},
            "present": jnp.ones((n, 2), bool),
            "label": jnp.zeros((n,), jnp.int32) if label is None else label}


# --- the KL of every form is one number per sample ----------------------------------------------

@pytest.mark.parametrize("mc", [SmilConfig(reconstruction="paper"),
                                SmilConfig(reconstruction="released"),
                                SmilConfig(reconstruction="direct")], ids=str)
def test_reconstruction_kl_has_one_entry_per_sample(mc):
    """Eq. 2's KL is per sample ``[B]``; the released and direct forms have none (zeros [B])."""
    net = _net()
    h1 = jax.random.normal(jax.random.key(1), (B, 4))
    priors = jax.random.normal(jax.random.key(2), (3, 4))
    _, kl = smil.reconstruct(net, mc, h1, priors, jax.random.normal(jax.random.key(3), (B, 3)))
    assert kl.shape == (B,)
    assert (np.asarray(kl) > 0).all() == (mc.reconstruction == "paper")


@pytest.mark.parametrize("mc", [SmilConfig(), SmilConfig(regularization="none"),
                                SmilConfig(fixed_gaussian=True)], ids=str)
def test_regulariser_kl_has_one_entry_per_sample(mc):
    """Eq. 3's KL is per sample ``[B]``; without a regulariser and with the input-independent
    fixed Gaussian (whose KL to the prior is 0) it is zeros [B]."""
    net = _net()
    h_prev = jax.random.normal(jax.random.key(1), (B, 4))
    h = jax.random.normal(jax.random.key(2), (B, 8))
    eps = jax.random.normal(jax.random.key(3), (B, 8))
    _, kl = smil.regularize(net.reg1_mu, net.reg1_sigma, mc, h_prev, h, eps)
    assert kl.shape == (B,)
    learned = mc.regularization != "none" and not mc.fixed_gaussian
    assert (np.asarray(kl) > 0).all() == learned


@pytest.mark.parametrize("regularize_on", [True, False])
def test_fusion_kl_has_one_entry_per_sample(regularize_on):
    """g's KL (both sites) is per sample; the released clean pass (no regulariser) gives zeros."""
    net = _net()
    h1, h2 = (jax.random.normal(jax.random.key(i), (B, 4)) for i in (1, 2))
    noise = smil.draw_noise(jax.random.key(3), B, 3, net.dims)
    _, _, _, kl = smil.fusion(net, SmilConfig(), h1, h2, noise, regularize_on)
    assert kl.shape == (B,)
    assert (np.asarray(kl) > 0).all() == regularize_on


# --- the paired memory ---------------------------------------------------------------------------

def _empty_memory(size=16, lengths=False):
    extra = {"x1": jnp.zeros((size, 6)), "x2": jnp.zeros((size, 5)),
             "y": jnp.zeros((size,), jnp.int32), "fp": jnp.zeros((size,)),
             "count": jnp.zeros((), jnp.int32)}
    if lengths:
        extra.update(len1=jnp.zeros((size,), jnp.int32), len2=jnp.zeros((size,), jnp.int32))
    return extra


def test_memory_recognises_a_stored_sample_whose_fingerprint_is_near_zero():
    """The duplicate tolerance has an absolute part, 1e-4 (1 + |fp|): a stored fingerprint of
    0 that comes back as 1e-6 is the same sample, not a new one."""
    r1, r2 = jnp.ones(6), jnp.ones(5)
    batch = _complete_batch(np.array([[1.0, -1.0, 0, 0, 0, 0]]), np.zeros((1, 5)))
    extra = smil.memory_insert(_empty_memory(), batch, SPEC.modalities, r1, r2)
    assert int(extra["count"]) == 1 and float(extra["fp"][0]) == 0.0
    extra = {**extra, "fp": extra["fp"].at[0].set(1e-6)}
    extra = smil.memory_insert(extra, batch, SPEC.modalities, r1, r2)
    assert int(extra["count"]) == 1


def test_memory_keeps_each_modalitys_lengths():
    """Sequence lengths go into the memory with their samples and come back with them, each
    modality's its own."""
    batch = _complete_batch(np.arange(18.0).reshape(3, 6), np.arange(15.0).reshape(3, 5) + 1)
    batch["inputs"].update(a_len=jnp.array([1, 2, 3]), b_len=jnp.array([7, 8, 9]))
    extra = smil.memory_insert(_empty_memory(lengths=True), batch, SPEC.modalities,
                               jnp.ones(6), jnp.full((5,), 0.5))
    np.testing.assert_array_equal(extra["len1"][:3], [1, 2, 3])
    np.testing.assert_array_equal(extra["len2"][:3], [7, 8, 9])
    mem = smil.memory_batch(extra, jax.random.key(0), 32)
    rows = np.asarray(mem.x1[:, 0]).astype(int) // 6  # which stored sample each draw is
    np.testing.assert_array_equal(mem.len1, rows + 1)
    np.testing.assert_array_equal(mem.len2, rows + 7)


@pytest.mark.parametrize("count", [0, 1, 3])
def test_memory_batch_draws_only_filled_slots_and_weighs_any_nonempty_memory(count):
    """Draws come from slots [0, count) only (all of them, over enough draws); the weight is 1
    as soon as one sample is stored, 0 for an empty memory (whose draws are slot 0)."""
    extra = {**_empty_memory(), "count": jnp.asarray(count, jnp.int32),
             "y": jnp.arange(16, dtype=jnp.int32)}
    mem = smil.memory_batch(extra, jax.random.key(0), 256)
    np.testing.assert_array_equal(mem.weight, np.full(256, count > 0))
    assert set(np.asarray(mem.y).tolist()) == set(range(max(count, 1)))


def test_the_two_modalities_fingerprint_along_different_directions():
    """With equal-size modalities, the samples (a, b) and (b, a) are two different samples: the
    step's fingerprint weighs x1 and x2 with different random vectors."""
    spec = DatasetSpec("toy", ("a", "b"), ((5,), (5,)), "classification", 3)
    method = methods.make(_config(spec), spec)
    a, b = (jax.random.normal(jax.random.key(i), (B, 5)) for i in (1, 2))
    step = jax.jit(method.phases[0].step)
    state = method.init(jax.random.key(0), _complete_batch(a, b))
    for batch in (_complete_batch(a, b), _complete_batch(b, a)):
        state, _ = step(state, batch)
    assert int(state.extra["count"]) == 2 * B


# --- the priors ----------------------------------------------------------------------------------

def test_priors_come_from_the_filled_memory_slots_only():
    """Eq. 2's M (here PCA) is computed from the eval-mode f2 features of the stored samples;
    the empty slots (zeros) take no part."""
    config = _config(priors="pca")
    method = methods.make(config, SPEC)
    x1, x2 = (jax.random.normal(jax.random.key(i), (6, s)) for i, s in ((1, 6), (2, 5)))
    batch = _complete_batch(x1, x2)
    state = method.init(jax.random.key(0), batch)
    state, _ = jax.jit(method.phases[0].step)(state, batch)
    assert int(state.extra["count"]) == 6
    state = jax.jit(method.phases[2].enter)(state)
    model = smil.NNXModel(lambda rngs: smil.SmilNet(SPEC, config.model, 3, rngs=rngs))
    enc2 = model.bind(state.params, state.model_state).enc2
    feats = encode(enc2, state.extra["x2"][:6], None, deterministic=True)
    expected = smil_priors.pca(feats, jnp.ones(6), 3)
    np.testing.assert_allclose(state.extra["priors"], expected, rtol=1e-4, atol=1e-5)


# --- each phase's optimiser ----------------------------------------------------------------------

def _seen_optimisers(config):
    seen = []

    def factory(optim, total_steps):
        seen.append((optim, total_steps))
        return optax.sgd(optim.lr)

    methods.make(config, SPEC, tx=factory)
    return seen


@pytest.mark.parametrize("p1, p2, steps, lengths", [
    (3, 2, 10, [3, 2, 5]),
    (0, 0, 4, [1, 1, 4]),  # an empty phase still gets a valid (length-1) schedule
    (3, 2, 5, [3, 2, 1]),  # no meta steps
])
def test_each_phase_builds_its_optimiser_for_its_own_length(p1, p2, steps, lengths):
    """tx1 spans phase 1, tx2 phase 2, tx3 the meta steps left, so a schedule decays over its
    own phase (a user's optimiser factory sees the same lengths)."""
    seen = _seen_optimisers(_config(steps=steps, phase1_steps=p1, phase2_steps=p2))
    assert [n for _, n in seen] == lengths


def test_released_meta_optimiser_is_torch_adam_with_weight_decay_and_step_decay():
    """meta_optimizer=released: tx3 is Adam (0.9, 0.999) with L2 weight decay 1e-4, the rate
    x0.1 every 5,000 meta steps, no warm-up or clipping; tx1 and tx2 keep the config's."""
    config = _config(meta_optimizer="released")
    config = dataclasses.replace(config, optim=dataclasses.replace(
        config.optim, name="sgd", warmup_steps=3, grad_clip=1.0))
    (o1, _), (o2, _), (o3, _) = _seen_optimisers(config)
    assert o1 == o2 == config.optim
    assert (o3.name, o3.beta1, o3.weight_decay, o3.schedule, o3.decay_steps, o3.decay_rate,
            o3.warmup_steps, o3.grad_clip, o3.lr) == ("adam", 0.9, 1e-4, "step", 5000, 0.1, 0,
                                                      0.0, config.optim.lr)
