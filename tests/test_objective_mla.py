"""MLA's whole training step (a round of M unimodal updates) against an independent reference.

Zhang et al., ICLR 2024 (papers/002), Algorithm 1. The reference redoes, from the parameters,
each modality's encoder (MLP, then Linear to s and ReLU) and the shared head g; paper iteration
t = M s + c trains modality m_t = c (eq. 1) on L_t = mean over the samples that have it of
CE(g(h_c(x_c)), y) (eq. 2), updates the projector with that modality's batch-mean feature,
P <- P - P h h^T P / (alpha + h^T P h) (eq. 3; not at t = 0), and applies P grad_W to the head
kernel (eq. 4), the bias unprojected, SGD on encoder c and the head only. Two rounds from the
initial state, with alpha constant (paper) and with the released per-epoch schedule
alpha ** (1 + (s mod E) / E) of ``alpha_epoch_steps`` = E, s the training step.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.methods.mla import MlaConfig
from objective_ref import (assert_close, assert_trees_close, cross_entropy, jitter, linear,
                           masked_mean, mlp_encoder, pure, sgd, sgd_gradient, to64)
from toy import TOY_SPEC

MODS = TOY_SPEC.modalities
LR, ALPHA, ROUNDS = 0.1, 0.1, 2
# Every masking rule: complete rows, each modality missing, each alone, an empty row.
PRESENT = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1],
                    [0, 0, 0], [1, 1, 1]], bool)


@functools.cache
def _method(epoch_steps):
    config = ExperimentConfig(
        method=MlaConfig(head_dim=3, alpha=ALPHA, alpha_epoch_steps=epoch_steps),
        model=ModelConfig(hidden=5, feature_dim=4), optim=sgd(LR),
        train=TrainConfig(steps=ROUNDS, batch_size=len(PRESENT)))
    method = methods.make(config, TOY_SPEC)
    return method, jax.jit(method.train_step)


def _features(p, m, x):
    """h_m(x): the modality's MLP encoder, then its projection to s and ReLU."""
    return jax.nn.relu(linear(p["enc"]["project"][m], mlp_encoder(p["enc"]["encoders"][m], x)))


def _unimodal_loss(p, c, batch):
    """Eq. 2 for modality c: ``(loss, h_c(x_c))``."""
    m, w = MODS[c], batch["present"][:, c]
    h = _features(p, m, batch["inputs"][m])
    return masked_mean(cross_entropy(linear(p["head"], h), batch["label"]), w), h


def _reference(p, batch, epoch_steps):
    """ROUNDS rounds of Algorithm 1: ``(params, [P after each round], [losses of each round])``."""
    s_dim = p["head"]["kernel"].shape[0]
    P, Ps, losses, t = jnp.eye(s_dim), [], [], 0
    for s in range(ROUNDS):
        round_losses = []
        for c in range(len(MODS)):
            (loss, h), g = jax.value_and_grad(_unimodal_loss, has_aux=True)(p, c, batch)
            w = batch["present"][:, c].astype(h.dtype)
            hbar = (h * w[:, None]).sum(0) / jnp.maximum(w.sum(), 1.0)
            if t > 0:  # eq. 3 then eq. 4 (the first iteration does neither)
                alpha = ALPHA ** (1 + (s % epoch_steps) / epoch_steps) if epoch_steps else ALPHA
                P = P - jnp.outer(P @ hbar, hbar @ P) / (alpha + hbar @ P @ hbar)
                P = 0.5 * (P + P.T)
                g = {**g, "head": {**g["head"], "kernel": P @ g["head"]["kernel"]}}
            p = jax.tree.map(lambda a, b: a - LR * b, p, g)
            round_losses.append(loss)
            t += 1
        Ps.append(P)
        losses.append(round_losses)
    return p, Ps, losses


@pytest.mark.slow
@pytest.mark.parametrize("epoch_steps", [0, 3])
def test_two_rounds_are_algorithm_1_with_the_projected_head_gradient(epoch_steps):
    """After each round: P (the optax state) and every modality's loss; after two rounds the
    total update of every parameter group (encoder c moved only by its own loss, the head by
    the P-projected gradients), all to 1e-6 relative."""
    method, step = _method(epoch_steps)
    rng = np.random.default_rng(3)
    batch = {"inputs": {m: jnp.asarray(rng.normal(size=(len(PRESENT), *s)))
                        for m, s in zip(MODS, TOY_SPEC.shapes)},
             "present": jnp.asarray(PRESENT),
             "label": jnp.asarray(rng.integers(0, 3, len(PRESENT)))}
    with jax.enable_x64(True):
        state = to64(method.init(jax.random.key(0), batch))
        state = state.replace(params=jitter(state.params, jax.random.key(4)))
        batch = to64(batch)
        p_ref, Ps, losses = _reference(pure(state.params), batch, epoch_steps)
        new = state
        for s in range(ROUNDS):
            new, metrics = step(new, batch)
            assert_close(new.opt_state[0].P, Ps[s], 1e-6, f"P after round {s}")
            for c, m in enumerate(MODS):
                assert_close(metrics[f"loss_{m}"], losses[s][c], 1e-6, f"round {s} loss {m}")
        assert int(new.step) == ROUNDS
        total = jax.tree.map(lambda a, b: (a - b) / LR, pure(state.params), p_ref)
        assert_trees_close(sgd_gradient(state.params, new.params, LR), total, 1e-6, "updates")
