"""OGM-GE's released mode against numbers recorded from the authors' code
(tools/golden/record_ogm_ge.py).

The recording ran the released ``train_epoch`` for 4 epochs of one batch (window epochs 1-2,
``starts <= epoch <= ends``), on twins of mmjax's sound CNN (audio) and LeNet-5 (visual) with the
projection and the linear concat head, SGD(momentum 0.9, weight_decay 1e-4). mmjax's released
switches (window in epochs, closed; 4-d kernels only; the n - 1 std) must give the same losses,
ratios, coefficients and weights; GE's noise law is checked against the std the released code drew
it with.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import ogm_ge
from tools.golden import params as golden_params

GOLDEN = Path(__file__).parent / "golden"
SPEC = DatasetSpec("golden", ("audio", "visual"), ((20, 20, 1), (28, 28, 1)), "classification", 4)
WINDOW = (1, 2)  # released modulation_starts / modulation_ends, in epochs of one step


def _method(ge: bool):
    config = ExperimentConfig(
        model=ModelConfig(encoders=("sound_cnn", "lenet5"), dropout=0.0),
        method=ogm_ge.OgmGeConfig(head_dim=8, alpha=0.5, ge=ge, modulation_start=WINDOW[0],
                                  modulation_end=WINDOW[1], modulation_epoch_steps=1,
                                  modulate="conv"),
        optim=OptimConfig(name="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4),
        train=TrainConfig(steps=4))
    return ogm_ge.make(config, SPEC)


@pytest.mark.slow
def test_released_ogm_reproduces_recorded_steps():
    rec = dict(np.load(GOLDEN / "ogm_ge_ogm.npz"))
    method = _method(ge=False)
    state = method.init(jax.random.key(0), None)
    state = state.replace(params=golden_params.load(state.params, rec, "before/"),
                          model_state=golden_params.load(state.model_state, rec, "before_state/"))
    batch = {"inputs": {"audio": jnp.asarray(rec["x/audio"]),
                        "visual": jnp.asarray(rec["x/visual"])},
             "present": jnp.ones((8, 2), bool), "label": jnp.asarray(rec["label"])}
    step = jax.jit(method.train_step)
    for t in range(4):
        state, metrics = step(state, batch)
        np.testing.assert_allclose(float(metrics["loss"]), rec["loss"][t], rtol=1e-5)
        np.testing.assert_allclose(float(metrics["ratio_visual"]), rec["ratio_v"][t], rtol=1e-5)
        inside = WINDOW[0] <= t <= WINDOW[1]  # the released closed window of epochs
        want = (rec["coeff_a"][t], rec["coeff_v"][t]) if inside else (1.0, 1.0)
        np.testing.assert_allclose([float(metrics["coeff_audio"]), float(metrics["coeff_visual"])],
                                   want, rtol=1e-5)
    assert rec["coeff_a"][3] < 1.0  # epoch 3 would be modulated but is outside the window
    for name, value in golden_params.named(state.params).items():
        np.testing.assert_allclose(np.asarray(value), rec[f"after/{name}"], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    # BatchNorm running means; the running variances differ by design (Flax averages the biased
    # batch variance, PyTorch the unbiased one)
    for name, value in golden_params.named(state.model_state).items():
        if name.endswith("/mean"):
            np.testing.assert_allclose(np.asarray(value), rec[f"after_state/{name}"], rtol=1e-5,
                                       atol=1e-6, err_msg=name)


def test_released_ge_noise_scale_and_tensors():
    rec = dict(np.load(GOLDEN / "ogm_ge_ge.npz"))
    names = sorted(k[3:-4] for k in rec if k.startswith("ge/") and k.endswith("/std"))
    # the released code adds noise to every 4-d encoder kernel of both modalities, no other
    assert names == sorted([f"enc/encoders/audio/convs/{i}/kernel" for i in range(3)]
                           + [f"enc/encoders/visual/conv{i}/kernel" for i in (1, 2)])
    raw = {n: jnp.asarray(rec[f"ge/{n}/raw"]) for n in names}
    for n in names:  # std of the raw gradient (n - 1 divisor) + 1e-8, as the recording drew it
        np.testing.assert_allclose(float(ogm_ge.noise_std(raw[n])), rec[f"ge/{n}/std"], rtol=1e-4)
    # mmjax's conv filter noises exactly these tensors of a full gradient tree
    method = _method(ge=True)
    state = method.init(jax.random.key(0), None)
    zeros = jax.tree.map(jnp.zeros_like, state.params)
    grads = golden_params.load(zeros, {**{k: np.zeros(v.shape) for k, v in
                                          golden_params.named(zeros).items()},
                                       **{n: np.asarray(v) for n, v in raw.items()}})
    out = golden_params.named(ogm_ge.modulate(grads, jnp.ones(2), SPEC.modalities,
                                              jax.random.key(1), "conv"))
    changed = sorted(n for n, v in golden_params.named(grads).items()
                     if not np.array_equal(np.asarray(out[n]), np.asarray(v)))
    assert changed == names
