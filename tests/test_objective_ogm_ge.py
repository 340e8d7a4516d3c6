"""Whole-objective test of OGM-GE (issue 21): one step's loss, modulation coefficients and the
modulated, noised gradient it applies equal an independent float64 reference, inside and outside
the modulation window, whose start and end are checked step by step.

Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR 2022: concat
fusion with one linear layer, f = W [h_1 p_1; ...; h_M p_M] + b, L = CE(f, y); the unimodal
outputs f_m = W_m h_m + b / M (the released ``out_a``/``out_v``); eq. 9-10 the discrepancy ratio
rho and the coefficient k_m = 1 - tanh(alpha rho_m) if rho_m > 1 else 1, which scales encoder m's
gradient; GE (section 3.3) adds N(0, std(grad)^2) noise to every encoder weight's gradient, std
as released (``grad.std() + 1e-8``, PyTorch's n - 1 divisor), before the scaling. Two modalities:
rho_a = s_a / s_v (eq. 9); three: rho_m = s_m / mean_{j != m} s_j (``ogm_ge.py``'s
generalisation). Scores s_m average softmax(f_m)[y] over the samples that have modality m.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods.ogm_ge import OgmGeConfig
from objective_check import (ALL_PATTERNS_3, assert_close, assert_tree_close, cross_entropy,
                             dense, make_batch, masked_mean, mlp_encoder, pure, run_step, sgd,
                             step_keys, to_f64, value_and_grad)
from toy import TOY_SPEC

MODEL = ModelConfig(hidden=5, feature_dim=4, dropout=0.0)
HEAD_DIM, ALPHA = 3, 0.8
PAIR = DatasetSpec("toy", ("audio", "visual"), ((5,), (3,)), "classification", 3)
SPECS = {
    2: (PAIR, np.array([[1, 1], [1, 1], [1, 1], [1, 0], [0, 1], [0, 0], [1, 1]], bool)),
    3: (TOY_SPEC, np.concatenate([ALL_PATTERNS_3, np.ones((1, 3), bool)])),
}


def forward(P, batch, mods):
    """``(fused logits, unimodal logits per modality)``; h_m = relu(W'_m E_m(x_m)) p_m."""
    x, present = batch["inputs"], np.asarray(batch["present"])
    h = [jax.nn.relu(dense(P["enc"]["project"][m], mlp_encoder(P["enc"]["encoders"][m], x[m])))
         * present[:, c, None] for c, m in enumerate(mods)]
    fused = dense(P["head"], jnp.concatenate(h, -1))
    W, b = P["head"]["kernel"], P["head"]["bias"]
    uni = [h[c] @ W[c * HEAD_DIM:(c + 1) * HEAD_DIM] + b[None] / len(mods)
           for c in range(len(mods))]
    return fused, uni


def loss_fn(P, batch, mods):
    fused, _ = forward(P, batch, mods)
    return masked_mean(cross_entropy(fused, batch["label"]), batch["present"].any(1))


def coefficients(P, batch, mods):
    """Eq. 9-10: ``(k [M], rho [M])``."""
    _, uni = forward(P, batch, mods)
    present, y = np.asarray(batch["present"]), np.asarray(batch["label"])
    score = []
    for c in range(len(mods)):
        p = np.asarray(jax.nn.softmax(uni[c], -1))[np.arange(len(y)), y]
        score.append(p[present[:, c]].mean())
    score = np.array(score)
    if len(mods) == 2:
        rho = np.array([score[0] / score[1], score[1] / score[0]])
    else:
        rho = np.array([s / np.delete(score, c).mean() for c, s in enumerate(score)])
    return np.where(rho > 1.0, 1.0 - np.tanh(ALPHA * rho), 1.0), rho


def expected_update(P, state, batch, mods, active, ge):
    """The gradient with, inside the window, every encoder / projection weight (ndim >= 2) of
    modality m scaled by k_m and (GE) noised with std(grad) + 1e-8 drawn from the step's "noise"
    key split over the parameter leaves in tree order (keys: dropout, noise)."""
    _, grad = value_and_grad(loss_fn, P, batch, mods)
    k, rho = coefficients(P, batch, mods)
    if not active:
        return grad, np.ones_like(k), rho
    leaves, treedef = jax.tree_util.tree_flatten_with_path(grad)
    noise_keys = jax.random.split(step_keys(state, 2)[1], len(leaves))
    out = []
    for (path, g), key in zip(leaves, noise_keys):
        names = [p.key for p in path]
        if names[0] == "enc" and g.ndim >= 2:
            std = np.std(np.asarray(g), ddof=1) + 1e-8
            g = g * k[mods.index(names[2])]
            if ge:
                g = g + std * jax.random.normal(key, g.shape, jnp.float64)
        out.append(g)
    return jax.tree_util.tree_unflatten(treedef, out), k, rho


def _check_step(method, state, batch, mods, t, active, ge):
    at = state.replace(step=jnp.asarray(t, jnp.int32))
    _, metrics, got = run_step(method.train_step, at, batch)
    P = pure(at.params)
    want, k, rho = expected_update(P, at, batch, mods, active, ge)
    assert_close(metrics["loss"], loss_fn(P, batch, mods))
    for c, m in enumerate(mods):
        np.testing.assert_allclose(float(metrics[f"coeff_{m}"]), k[c], rtol=1e-6)
        np.testing.assert_allclose(float(metrics[f"ratio_{m}"]), rho[c], rtol=1e-6)
    assert_tree_close(got, want)
    return k


@pytest.mark.slow
@pytest.mark.parametrize("num_modalities", [2, 3])
def test_step_follows_eq10_inside_the_window_only(num_modalities):
    """Window [1, 3): steps 0 and 3 apply the plain gradient, steps 1 and 2 the modulated one."""
    spec, present = SPECS[num_modalities]
    with jax.enable_x64(True):
        config = ExperimentConfig(
            method=OgmGeConfig(head_dim=HEAD_DIM, alpha=ALPHA, modulation_start=1,
                               modulation_end=3),
            model=MODEL, optim=sgd(), train=TrainConfig(steps=8))
        method = methods.make(config, spec)
        batch = make_batch(jax.random.key(0), spec, present)
        state = method.init(jax.random.key(1), batch)
        state = state.replace(params=to_f64(state.params))
        for t in range(4):
            k = _check_step(method, state, batch, spec.modalities, t, 1 <= t < 3, ge=True)
            assert k.min() < 1.0 or not 1 <= t < 3  # one modality is slowed down


def test_default_window_is_the_first_half_of_the_run_and_plain_ogm_adds_no_noise():
    spec, present = SPECS[2]
    with jax.enable_x64(True):
        config = ExperimentConfig(method=OgmGeConfig(head_dim=HEAD_DIM, alpha=ALPHA, ge=False),
                                  model=MODEL, optim=sgd(), train=TrainConfig(steps=6))
        method = methods.make(config, spec)
        batch = make_batch(jax.random.key(0), spec, present)
        state = method.init(jax.random.key(1), batch)
        state = state.replace(params=to_f64(state.params))
        for t in (0, 2, 3):
            _check_step(method, state, batch, spec.modalities, t, t < 3, ge=False)
