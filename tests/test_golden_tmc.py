"""TMC and ETMC against numbers recorded from the authors' code (tools/golden/record_tmc.py).

The recordings ran the released TMC ``forward`` (TMC ICLR) and ETMC ``model_forward`` (ETMC
TPAMI) with Adam(weight_decay 1e-5) for 5 epochs of one batch, the annealing over 3 epochs (TMC
counting epochs from 1, ETMC from 0), on twins of mmjax's encoders and heads. mmjax's released
switches must give the same fused Dirichlet, per-step losses (through the annealing ramp) and
weights.
"""

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import tmc
from mmjax.methods.base import NNXModel
from tools.golden import params as golden_params

GOLDEN = Path(__file__).parent / "golden"
CASES = {  # recording: (views and dims, config class, released annealing_offset)
    "tmc_iclr": ({"v0": 5, "v1": 4, "v2": 3}, tmc.TmcConfig, 1),
    "tmc_etmc": ({"rgb": 5, "depth": 5}, tmc.EtmcConfig, 0),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_released_steps_reproduce_recorded_losses_and_weights(name):
    dims, config_class, offset = CASES[name]
    rec = dict(np.load(GOLDEN / f"{name}.npz"))
    spec = DatasetSpec("golden", tuple(dims), tuple((d,) for d in dims.values()),
                       "classification", 4)
    config = ExperimentConfig(
        model=ModelConfig(hidden=8, feature_dim=6, dropout=0.0),
        method=config_class(annealing_steps=3, annealing_epoch_steps=1, annealing_offset=offset),
        optim=OptimConfig(name="adam", lr=0.01, weight_decay=1e-5), train=TrainConfig(steps=5))
    method = tmc.make(config, spec)
    state = method.init(jax.random.key(0), None)
    state = state.replace(params=golden_params.load(state.params, rec, "before/"))
    batch = {"inputs": {m: jnp.asarray(rec[f"x/{m}"]) for m in dims},
             "present": jnp.ones((8, len(dims)), bool), "label": jnp.asarray(rec["label"])}
    # forward: the fused Dirichlet (reduced Dempster-Shafer over the views, ETMC's pseudo-view last)
    net = NNXModel(lambda rngs: tmc.EvidenceNet(spec, config.model,
                                                pseudo_view=config.method.pseudo_view, rngs=rngs))
    (_, aux), _ = net.apply(state.params, state.model_state, batch["inputs"], batch["present"],
                            train=False)
    np.testing.assert_allclose(np.asarray(aux["fused_alpha"]), rec["fused_alpha"], rtol=1e-6)
    step = jax.jit(method.train_step)
    for t in range(5):  # lambda: TMC 1/3, 2/3, 1, 1, 1; ETMC 0, 1/3, 2/3, 1, 1
        state, metrics = step(state, batch)
        np.testing.assert_allclose(float(metrics["kl_weight"]), min(1.0, (t + offset) / 3),
                                   rtol=1e-6)
        np.testing.assert_allclose(float(metrics["loss"]), rec["loss"][t], rtol=1e-5)
    for key, value in golden_params.named(state.params).items():
        np.testing.assert_allclose(np.asarray(value), rec[f"after/{key}"], rtol=1e-5, atol=1e-6,
                                   err_msg=key)

