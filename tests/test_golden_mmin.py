"""MMIN's stage-2 step against numbers recorded from the authors' code
(tools/golden/record_mmin.py).

The recording ran the released ``MMINModel.optimize_parameters`` for 3 steps (each sample with one
of the 6 incomplete patterns; CE on the latents + 4 MSE to the frozen teacher's embeddings of the
missing modalities + 2 MSE of the cycle, per-network clipping to norm 1, Adam with beta1 0.5), on
twins of mmjax's MLP encoders and the released ResidualAE and FcClassifier (one hidden layer);
a second recording ran the released AE variant ``MMINAEModel`` (one SimpleFcAE per imagination).
mmjax's released switches (``student_clip=1``, ``optim.beta1=0.5``; ``imagination=ae`` for the
second) must give the same logits, loss terms and weights, with the recorded patterns in place of
mmjax's sampled ones.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import mmin
from mmjax.methods.base import NNXModel
from tools.golden import params as golden_params

GOLDEN = Path(__file__).parent / "golden"
DIMS = {"A": 5, "L": 3, "V": 4}  # the released concatenation order [A, L, V]
# recording -> the imagination it ran: MMINModel's two CRA blocks, MMINAEModel's one AE
IMAGINATIONS = {"mmin_steps.npz": {"imagination": "cra", "ae_blocks": 2},
                "mmin_ae_steps.npz": {"imagination": "ae"}}


@pytest.mark.slow
@pytest.mark.parametrize("recording", sorted(IMAGINATIONS))
def test_released_student_steps_reproduce_recorded_losses_and_weights(monkeypatch, recording):
    rec = dict(np.load(GOLDEN / recording))
    spec = DatasetSpec("golden", tuple(DIMS), tuple((d,) for d in DIMS.values()),
                       "classification", 4)
    config = ExperimentConfig(
        model=ModelConfig(hidden=8, feature_dim=6, dropout=0.0),
        method=mmin.MminConfig(ae_layers=(6, 4), teacher_steps=1, student_clip=1.0,
                               **IMAGINATIONS[recording]),
        optim=OptimConfig(name="adam", lr=0.01, beta1=0.5), train=TrainConfig(steps=4))
    patterns = iter([jnp.asarray(rec[f"step{s}/present"]) for s in range(3)])
    # the recorded missing patterns in place of mmjax's draw (sim = pattern & present)
    monkeypatch.setattr(mmin, "sample_patterns", lambda key, b, m: next(patterns))
    method = mmin.make(config, spec)
    state = method.init(jax.random.key(0), None)
    init = golden_params.named(state.params)
    recorded = {k[len("before/"):]: v for k, v in rec.items() if k.startswith("before/")}
    # the teacher's head is not used by stage 2 and not recorded: it keeps its initial values
    state = state.replace(params=golden_params.load(state.params, {**init, **recorded}))
    for s in range(3):
        # traced afresh each step: the patched draw is read at trace time
        step = jax.jit(lambda st, b: method.phases[1].step(st, b))
        batch = {"inputs": {m: jnp.asarray(rec[f"step{s}/x/{m}"]) for m in DIMS},
                 "present": jnp.ones((8, 3), bool), "label": jnp.asarray(rec[f"step{s}/label"])}
        if s == 0:  # forward: the classifier's logits on the latents, with the recorded pattern
            out = method_forward(state, batch, config, spec, rec["step0/present"])
            np.testing.assert_allclose(out, rec["step0/logits"], rtol=1e-5, atol=1e-6)
        state, metrics = step(state, batch)
        got = [float(metrics["ce"]), 4.0 * float(metrics["mse_forward"]),
               2.0 * float(metrics["cycle"])]
        np.testing.assert_allclose(got, rec["terms"][s], rtol=1e-5, err_msg=f"step {s}")
    assert rec["grad_norms"].max() > 1.0  # the recording's clipping did act
    # Adam divides by each element's gradient RMS, so an element whose gradient is near zero
    # (a modality few samples have) amplifies float32 rounding: the absolute floor is 1e-5, a
    # thousandth of one step's size (lr 0.01).
    for name, value in golden_params.named(state.params).items():
        want = rec.get(f"after/{name}", init[name])
        np.testing.assert_allclose(np.asarray(value), want, rtol=1e-5, atol=1e-5, err_msg=name)


def method_forward(state, batch, config, spec, pattern):
    """Stage 2's logits with the first recorded ``pattern`` as the batch's mask."""
    net = NNXModel(lambda rngs: mmin.MminNet(spec, config.model, config.method, rngs=rngs))
    module = net.bind(state.params, state.model_state)
    present = jnp.asarray(pattern)
    return np.asarray(module(batch["inputs"], present, deterministic=True)["logits"])
