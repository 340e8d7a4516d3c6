"""MLA's released mode against numbers recorded from the authors' code (tools/golden/record_mla.py).

The recording ran the released ``train_epoch(gs_flag=True)`` for 3 rounds (one batch each; per
round CE of a, v[, t] through the shared head, one SGD(momentum 0.9, weight_decay 1e-4) step each,
GSPlugin's projection as released) and the released ``valid`` fusions, on twins of mmjax's
encoders. mmjax's ``:released`` switches (head_projection=none, SGD with weight decay, fusion
fixed / dynamic per-batch) must give the same per-update losses, the same weights after the last
update, and the same fused test logits.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import mla
from tools.golden import params as golden_params

GOLDEN = Path(__file__).parent / "golden"
CASES = {"av": {"a": 5, "v": 4}, "m3": {"a": 5, "v": 4, "t": 3}}
CLASSES = {"av": 6, "m3": 4}


def _setup(case: str, fusion: str, entropy: str = "per_sample"):
    rec = dict(np.load(GOLDEN / f"mla_{case}.npz"))
    dims = CASES[case]
    spec = DatasetSpec("golden", tuple(dims), tuple((d,) for d in dims.values()),
                       "classification", CLASSES[case])
    config = ExperimentConfig(
        model=ModelConfig(hidden=8, feature_dim=8, dropout=0.0),
        method=mla.MlaConfig(head_dim=6, head_projection="none", fusion=fusion, entropy=entropy),
        optim=OptimConfig(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4),
        train=TrainConfig(steps=3))
    method = mla.make(config, spec)
    state = method.init(jax.random.key(0), None)
    # SGD's momentum starts at zero whatever the weights, so init's optimiser state stays valid.
    state = state.replace(params=golden_params.load(state.params, rec, "before/"))
    return rec, dims, method, state


@pytest.mark.parametrize("case", sorted(CASES))
def test_released_round_reproduces_recorded_losses_and_weights(case):
    rec, dims, method, state = _setup(case, "fixed")
    step = jax.jit(method.train_step)
    losses = []
    for r in range(3):
        batch = {"inputs": {m: jnp.asarray(rec[f"round{r}/x/{m}"]) for m in dims},
                 "present": jnp.ones((8, len(dims)), bool),
                 "label": jnp.asarray(rec[f"round{r}/label"])}
        state, metrics = step(state, batch)
        losses += [float(metrics[f"loss_{m}"]) for m in dims]
    # M unimodal updates per round, in modality order, each on the weights the previous left
    np.testing.assert_allclose(losses, rec["loss"], rtol=1e-5)
    got = golden_params.named(state.params)
    for name, value in got.items():
        np.testing.assert_allclose(np.asarray(value), rec[f"after/{name}"], rtol=1e-5, atol=1e-7,
                                   err_msg=name)
    # the released GSPlugin never modifies the head gradient: P is still the identity
    assert bool(rec["P_is_identity"]) and int(rec["exp_count"]) == 3 * len(dims)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("fusion,entropy,key", [("fixed", "per_sample", "fixed"),
                                                ("dynamic", "per_batch", "dynamic")])
def test_released_fusion_reproduces_recorded_test_logits(case, fusion, entropy, key):
    rec, dims, method, _ = _setup(case, fusion, entropy)
    state = method.init(jax.random.key(0), None)
    state = state.replace(params=golden_params.load(state.params, rec, "after/"))
    batch = {"inputs": {m: jnp.asarray(rec[f"test/x/{m}"]) for m in dims},
             "present": jnp.ones((8, len(dims)), bool), "label": jnp.zeros(8, jnp.int32)}
    got = np.asarray(method.predict(state, batch))
    np.testing.assert_allclose(got, rec[f"test/fused_{key}"], rtol=1e-6, atol=1e-6)


def test_fixed_fusion_renormalises_the_released_weights_over_present_modalities():
    # our choice where the released code has no missing modality: 0.35 f_a + 0.40 f_t over 0.75
    logits = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4)), jnp.float32)
    present = jnp.array([[True, True, True], [True, False, True]])
    got = np.asarray(mla.fuse(logits, present, "fixed"))
    x = np.asarray(logits, np.float64)
    np.testing.assert_allclose(got[0], 0.35 * x[0, 0] + 0.25 * x[0, 1] + 0.40 * x[0, 2],
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[1], (0.35 * x[1, 0] + 0.40 * x[1, 2]) / 0.75, rtol=1e-6,
                               atol=1e-6)
