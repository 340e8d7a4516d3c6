"""Autoencoder imputation: only missing inputs are imputed, and each phase trains its own part."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mmjax import config as config_lib
from mmjax import methods, train
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data import missing
from mmjax.data.base import DatasetSpec
from mmjax.methods import ae_imputation
from mmjax.methods.ae_imputation import AeImputationConfig

SPEC = DatasetSpec("toy", ("a", "b"), ((6,), (5,)), "classification", 3)


def _config(ae_steps=2, steps=4):
    return ExperimentConfig(method=AeImputationConfig(ae_steps=ae_steps, ae_hidden=8),
                            model=ModelConfig(hidden=8, feature_dim=4), optim=OptimConfig(lr=1e-2),
                            train=TrainConfig(steps=steps, batch_size=8))


def _batch(key, n=8):
    k1, k2, k3 = jax.random.split(key, 3)
    present = jnp.ones((n, 2), bool).at[n // 2:, 1].set(False)
    inputs = missing.apply({"a": jax.random.normal(k1, (n, 6)), "b": jax.random.normal(k2, (n, 5))},
                           present, SPEC.modalities)
    return {"inputs": inputs, "present": present, "label": jax.random.randint(k3, (n,), 0, 3)}


def _module(method_state):
    model = ae_imputation.NNXModel(
        lambda rngs: ae_imputation.AeFusion(SPEC, _config(), rngs=rngs))
    return nnx.merge(model.graphdef, method_state.params, method_state.model_state)


def _part(params, name):
    return [x for p, x in jax.tree_util.tree_leaves_with_path(params)
            if getattr(p[0], "key", None) == name]


@pytest.mark.slow
def test_imputation_replaces_only_missing_inputs():
    method = methods.make(_config(), SPEC)
    batch = _batch(jax.random.key(0))
    state = method.init(jax.random.key(1), batch)
    ae = _module(state).ae
    out = ae_imputation.impute(ae, batch, SPEC.modalities)
    np.testing.assert_array_equal(out["inputs"]["b"][:4], batch["inputs"]["b"][:4])
    np.testing.assert_allclose(out["inputs"]["b"][4:], ae(batch["inputs"]["a"])[4:], rtol=1e-6)
    np.testing.assert_array_equal(out["inputs"]["a"], batch["inputs"]["a"])
    np.testing.assert_array_equal(out["present"], np.ones((8, 2), bool))
    # predict: complete samples do not depend on the autoencoder, imputed ones not on x2.
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + 0.5 if getattr(p[0], "key", None) == "ae" else x, state.params)
    base = method.predict(state, batch)
    moved = method.predict(state.replace(params=params), batch)
    np.testing.assert_allclose(base[:4], moved[:4], rtol=1e-6)
    assert np.abs(np.asarray(base[4:] - moved[4:])).max() > 1e-4
    noisy = {**batch, "inputs": {**batch["inputs"], "b": batch["inputs"]["b"] + 3.0}}
    np.testing.assert_allclose(method.predict(state, noisy)[4:], base[4:], rtol=1e-6)


def test_phase1_trains_the_autoencoder_on_complete_samples_phase2_only_the_fusion_model():
    """Phase-1 loss = mean over complete samples of ||AE(x1) - x2||^2 / 5, fusion untouched;
    phase 2 leaves the autoencoder untouched. One trace per phase; each phase advances only its
    own optimiser state."""
    traces = [0, 0]
    method = methods.make(_config(ae_steps=1, steps=2), SPEC)
    assert [(p.name, p.steps, p.enter) for p in method.phases] == [
        ("autoencoder", 1, None), ("fusion", None, None)]

    def counted(index):
        def step(state, batch):
            traces[index] += 1
            return method.phases[index].step(state, batch)
        return jax.jit(step)

    step1, step2 = counted(0), counted(1)
    batch = _batch(jax.random.key(0))
    state0 = method.init(jax.random.key(1), batch)
    recon = np.asarray(_module(state0).ae(batch["inputs"]["a"]))
    expected = ((recon[:4] - np.asarray(batch["inputs"]["b"][:4])) ** 2).mean()
    state1, m1 = step1(state0, batch)
    assert float(m1["phase"]) == 1 and float(m1["loss_fused"]) == 0
    np.testing.assert_allclose(m1["loss_ae"], expected, rtol=1e-5)
    for a, b in zip(_part(state0.params, "net"), _part(state1.params, "net")):
        np.testing.assert_array_equal(a, b)
    assert any(np.abs(np.asarray(a - b)).max() > 0
               for a, b in zip(_part(state0.params, "ae"), _part(state1.params, "ae")))
    jax.tree.map(np.testing.assert_array_equal, state1.opt_state[1], state0.opt_state[1])
    state2, m2 = step2(state1, _batch(jax.random.key(1)))
    assert float(m2["phase"]) == 2  # its loss is pinned by test_objective_imputation.py
    assert float(m2["loss_ae"]) == 0 and set(m1) == set(m2)
    for a, b in zip(_part(state1.params, "ae"), _part(state2.params, "ae")):
        np.testing.assert_array_equal(a, b)
    jax.tree.map(np.testing.assert_array_equal, state2.opt_state[0], state1.opt_state[0])
    assert traces == [1, 1]


def test_samples_without_modality_1_neither_train_the_autoencoder_nor_get_an_imputed_x2():
    """A sample with x1 missing has nothing to impute from: its x2 stays missing (present False,
    zero input) and, when its x2 is present, it does not enter the autoencoder's loss."""
    method = methods.make(_config(ae_steps=1, steps=2), SPEC)
    batch = _batch(jax.random.key(0))  # rows 0-3 complete, rows 4-7 lack modality 2
    present = batch["present"].at[0, 0].set(False).at[4, 0].set(False)  # row 0: x2 only; 4: none
    batch = {**batch, "present": present,
             "inputs": missing.apply(batch["inputs"], present, SPEC.modalities)}
    state = method.init(jax.random.key(1), batch)
    ae = _module(state).ae
    out = ae_imputation.impute(ae, batch, SPEC.modalities)
    np.testing.assert_array_equal(out["present"][:, 1], [True] * 4 + [False] + [True] * 3)
    np.testing.assert_array_equal(out["inputs"]["b"][4], 0.0)
    recon = np.asarray(ae(batch["inputs"]["a"]))
    expected = ((recon[1:4] - np.asarray(batch["inputs"]["b"][1:4])) ** 2).mean()
    _, metrics = jax.jit(method.phases[0].step)(state, batch)
    np.testing.assert_allclose(metrics["loss_ae"], expected, rtol=1e-5)


@pytest.mark.slow
def test_mfeat_short_run_trains_through_the_boundary(tmp_path):
    """The quick mfeat config through ``train.train``: 40 autoencoder steps, then 60 fusion
    steps on fou -> kar (100% fou, 20% kar paired); the fusion model, trained only in phase 2,
    learns (chance 0.1; measured, seed 0: fou+kar 0.910, fou alone with kar imputed 0.768)."""
    config = config_lib.override(config_lib.load("configs/mfeat/ae_imputation.py:quick"), [
        "train.steps=100", "train.log_every=50", "train.checkpoint_every=100"])
    result = train.train(config, tmp_path / "run")
    assert set(result["subsets"]) >= {"fou+kar", "fou"}
    assert result["subsets"]["fou+kar"]["accuracy"] > 0.85
    assert result["subsets"]["fou"]["accuracy"] > 0.65
