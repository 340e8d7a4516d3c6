"""RedCore's ``released`` mode against numbers recorded from the released code (no torch needed).

The files come from tools/golden/record_redcore.py (``sunjunaimer/RedCore``; commit and command in
tools/golden/README.md): ``redcore_rule.npz`` pins the eta/beta rule (RedCore eqs. 4-5, 9, 10 as
released) over 1,100 iterations, ``redcore_step.npz`` three training steps of the released model at
small widths (losses: RedCore eq. 3 and L = L_VIB + sum_m eta_m L_MSE^m).
"""

import dataclasses
import functools
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import redcore
from mmjax.methods.base import make_optimizer
from tools.golden import layout

GOLDEN = Path(__file__).parent / "golden"
MODS = ("A", "V", "L")  # the released missing-index column order
XENC = {"A": "xenc_vl2a", "V": "xenc_al2v", "L": "xenc_av2l"}
HEADS = {"A": "Cls_a", "V": "Cls_v", "L": "Cls_l"}


def _released_method(**kw) -> redcore.RedCoreConfig:
    return redcore.released(ExperimentConfig(method=redcore.RedCoreConfig(**kw))).method


# ----------------------------------------------------------------------------------------------
# The eta/beta rule.
# ----------------------------------------------------------------------------------------------


def test_released_rule_reproduces_the_recorded_beta_sequence():
    """RedCore eqs. (4)-(5), (9), (10) as released, in eta = xi2 * beta units: the moving averages
    from 0 (first 0.7 L_0), beta_0 = 1, the step 0.1 * 1.5^(k+1) on beta every 3 iterations,
    clamp at 0.1 then normalise; three exact-zero losses keep the previous average."""
    rec = np.load(GOLDEN / "redcore_rule.npz")
    mc = _released_method()
    assert (mc.xi2, mc.xi1, mc.every, mc.beta) == (float(rec["rule_mse_weight"]), 0.015,
                                                   int(rec["rule_ii"]),
                                                   float(rec["rule_loss_beta"]))
    step = jax.jit(lambda extra, mse, i: redcore.regulate(mc, extra, mse, mse != 0, i)[0])
    extra = {"eta": redcore.initial_eta(mc, 3), "mal": jnp.zeros(3)}
    np.testing.assert_allclose(extra["eta"], mc.xi2 * rec["rule_beta0"], rtol=1e-7)
    etas, mals = [], []
    for i, mse in enumerate(rec["rule_mse"]):
        extra = step(extra, jnp.asarray(mse, jnp.float32), jnp.asarray(i))
        etas.append(np.asarray(extra["eta"]))
        mals.append(np.asarray(extra["mal"]))
    np.testing.assert_allclose(mals[0], 0.7 * rec["rule_mse"][0], rtol=1e-6)
    np.testing.assert_allclose(np.array(mals), rec["rule_mal"], rtol=1e-5)
    np.testing.assert_allclose(np.array(etas), mc.xi2 * rec["rule_beta"], rtol=1e-5)
    # the released step size, x1.5 at iterations 0, 500 and 1000 (0.1 * 1.5 at iteration 0)
    got = [float(redcore.alpha_at(mc, jnp.asarray(i))) for i in (0, 499, 500, 1000)]
    np.testing.assert_allclose(got, rec["rule_eta"][[0, 499, 500, 1000]], rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Three training steps of the released model.
# ----------------------------------------------------------------------------------------------


def _config(rec, optim: OptimConfig) -> tuple[ExperimentConfig, DatasetSpec]:
    t = rec["x/A"].shape[1]
    spec = DatasetSpec("golden", MODS, tuple((t, rec[f"x/{m}"].shape[2]) for m in MODS),
                       "classification", 4)
    width = rec["mu0/a"].shape[1]
    config = redcore.released(ExperimentConfig(
        method=redcore.RedCoreConfig(latent_dim=width),
        model=ModelConfig(encoders=("transformer",) * 3, hidden=width, feature_dim=width,
                          dropout=0.0),
        optim=optim, train=TrainConfig(steps=10)))
    # the recording's small widths (tools/golden/record_redcore.py)
    method = dataclasses.replace(config.method, xenc_layers=(16, 8, 4), xenc_blocks=2,
                                 cls_layers=(8, 8))
    return dataclasses.replace(config, method=method), spec


def _torch_params(rec, key: str) -> dict:
    names, shapes = rec["names"], json.loads(str(rec["shapes"]))
    flat, out, o = rec[key], {}, 0
    for n, s in zip(names, shapes):
        k = int(np.prod(s))
        out[str(n)] = flat[o:o + k].reshape(s)
        o += k
    return out


def _linear(w, b):
    return {"kernel": layout.dense_kernel(w), "bias": b}


def _to_mmjax(tp: dict, width: int) -> dict:
    """The released weights as mmjax's pure param dict (attention heads split, joint-head rows
    reordered from the released concat [A, L, V] to mmjax's [A, V, L])."""
    heads = 8
    out = {"encoders": {}, "gauss": {}, "xenc": {}, "heads": {}}
    for m in MODS:
        g = lambda n: tp[f"{m}/{n}"]  # noqa: E731
        blocks = {}
        for i in range(3):
            p = f"resblocks.{i}."
            w, b = g(p + "attn.in_proj_weight"), g(p + "attn.in_proj_bias")
            attn = {}
            for j, part in enumerate(("query", "key", "value")):
                wj = w[j * width:(j + 1) * width]
                attn[part] = {"kernel": wj.T.reshape(width, heads, width // heads),
                              "bias": b[j * width:(j + 1) * width].reshape(heads, -1)}
            attn["out"] = {"kernel": g(p + "attn.out_proj.weight").T.reshape(heads, -1, width),
                           "bias": g(p + "attn.out_proj.bias")}
            blk = {"attn": attn, "fc1": _linear(g(p + "mlp.c_fc.weight"), g(p + "mlp.c_fc.bias")),
                   "fc2": _linear(g(p + "mlp.c_proj.weight"), g(p + "mlp.c_proj.bias"))}
            for ours, theirs in (("ln1", "ln_1"), ("ln12", "ln_12"), ("ln2", "ln_2"),
                                 ("ln22", "ln_22")):
                blk[ours] = {"scale": g(p + theirs + ".weight"), "bias": g(p + theirs + ".bias")}
            blocks[i] = blk
        out["encoders"][m] = {"proj": _linear(g("proj.weight"), g("proj.bias")),
                              "blocks": blocks}
        out["gauss"][m] = _linear(g("muvar.weight"), g("muvar.bias"))
        x = lambda n: tp[f"{XENC[m]}/{n}"]  # noqa: E731
        out["xenc"][m] = {
            "blocks": {i: {part: {j: _linear(x(f"{tn}_{i}.{2 * j}.weight"),
                                             x(f"{tn}_{i}.{2 * j}.bias")) for j in range(3)}
                           for part, tn in (("enc", "encoder"), ("dec", "decoder"))}
                       for i in range(2)},
            "trans1": _linear(x("transition.0.weight"), x("transition.0.bias")),
            "trans2": _linear(x("transition.2.weight"), x("transition.2.bias"))}
    for name, ours in [(HEADS[m], m) for m in MODS] + [("Cls", None)]:
        h = {"hidden": {0: _linear(tp[f"{name}/module.0.weight"], tp[f"{name}/module.0.bias"]),
                        1: _linear(tp[f"{name}/module.3.weight"], tp[f"{name}/module.3.bias"])},
             "out": _linear(tp[f"{name}/fc_out.weight"], tp[f"{name}/fc_out.bias"])}
        if ours is None:  # released joint input [A, L, V] -> mmjax [A, V, L]
            k = h["hidden"][0]["kernel"].reshape(3, width, -1)
            h["hidden"][0]["kernel"] = k[[0, 2, 1]].reshape(3 * width, -1)
            out["joint"] = h
        else:
            out["heads"][ours] = h
    return out


def _state_with(method, rec, key: str):
    """The method's step-0 state with the recorded weights ``key``. The initialisation is jitted
    with the parameters replaced by zeros, so XLA drops the random initialisers (the costly part)
    and computes only the optimiser state, ``extra`` and the key; then the weights go in."""
    batch = _batch(rec)

    def init(rng, batch):
        state = method.init(rng, batch)
        return state.replace(params=jax.tree.map(jnp.zeros_like, state.params))

    state = jax.jit(init)(jax.random.key(0), batch)
    pure = jax.tree.map(jnp.asarray, _to_mmjax(_torch_params(rec, key), rec["mu0/a"].shape[1]))
    params = state.params
    # every parameter is recorded: none keeps its zero
    assert jax.tree.structure(nnx.to_pure_dict(params)) == jax.tree.structure(pure)
    nnx.replace_by_pure_dict(params, pure)
    return state.replace(params=params), batch


def _batch(rec):
    return {"inputs": {**{m: jnp.asarray(rec[f"x/{m}"]) for m in MODS},
                       **{f"{m}_len": jnp.asarray(rec[f"len/{m}"], jnp.int32) for m in MODS}},
            "present": jnp.asarray(rec["missing"] == 1),
            "label": jnp.asarray(rec["label"], jnp.int32)}


@pytest.fixture(scope="module")
def rec():
    return dict(np.load(GOLDEN / "redcore_step.npz"))


@pytest.fixture(scope="module")
def adam(rec):
    """The released configuration (Adam at the recorded rate), its method and its step-0 state
    with the recorded weights, built once for the tests that share them."""
    config, spec = _config(rec, OptimConfig(lr=float(rec["lr"])))
    method = redcore.make(config, spec)
    state, batch = _state_with(method, rec, "w0")
    return config, spec, method, state, batch


def _use_recorded_noise(monkeypatch, rec, state_key):
    """The released draws of the reparameterisation: each modality's key of each step (derived
    as the step derives them: ``base.step_keys`` then one split per modality) selects its draw, so
    one compiled step serves every step. A key that is none of them gives NaN."""
    keys, draws = [], []
    for step, eps in enumerate(rec["terms/eps"]):
        noise = jax.random.split(jax.random.fold_in(state_key, step), 2)[1]
        keys += list(jax.random.split(noise, len(MODS)))
        draws += list(eps)
    table = jnp.stack([jax.random.key_data(k) for k in keys])
    draws = jnp.asarray(np.stack(draws))

    def noise(key, shape, dtype):
        hit = jnp.all(jax.random.key_data(key)[None] == table, axis=-1)
        return (draws[jnp.argmax(hit)] * jnp.where(hit.any(), 1.0, jnp.nan)).astype(dtype)

    monkeypatch.setattr(redcore, "latent_noise", noise)


def _flat(params) -> dict:
    return {jax.tree_util.keystr(p): np.asarray(v)
            for p, v in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(params))}


@pytest.mark.slow
def test_released_forward_matches_the_recorded_latent_means(rec, adam):
    """The released Transformer + Gaussian head (mu, logvar of eq. 3) on the recorded weights."""
    config, spec, _, state, batch = adam
    apply = jax.jit(functools.partial(redcore.redcore_net(config, spec).apply, train=False))
    out, _ = apply(state.params, state.model_state, batch["inputs"], batch["present"])
    for c, m in enumerate("avl"):
        np.testing.assert_allclose(out["mu"][c], rec[f"mu0/{m}"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(out["logvar"][c], rec[f"logvar0/{m}"], rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_released_gradients_match_the_recorded_ones(rec, adam, monkeypatch):
    """One SGD step of rate 1 without clipping moves the weights by minus the gradient of L."""
    config, spec = _config(rec, OptimConfig(name="sgd", lr=1.0, momentum=0.0))
    config = dataclasses.replace(config, method=dataclasses.replace(config.method,
                                                                    clip_per_network=0.0))
    method = redcore.make(config, spec)
    # the shared step-0 state with this optimiser's state (redcore.make builds its optimiser as
    # make_optimizer(config.optim, config.train.steps); a different structure fails the step)
    state, batch = adam[3], adam[4]
    state = state.replace(opt_state=make_optimizer(config.optim, config.train.steps).init(
        state.params))
    _use_recorded_noise(monkeypatch, rec, state.key)
    new, _ = jax.jit(method.phases[0].step)(state, batch)
    before, after = _flat(state.params), _flat(new.params)
    want = _flat(_pure_like(state.params, _to_mmjax(_torch_params(rec, "g_raw"),
                                                    rec["mu0/a"].shape[1])))
    for k, g in want.items():
        got = before[k] - after[k]
        if "['key']['bias']" in k:  # softmax ignores a shift of every score: exactly zero,
            assert np.abs(got).max() < 1e-5 and np.abs(g).max() < 1e-5  # float noise in both
            continue
        # the gradients span 1e-3 .. 1e15 (LayerNorm on the constant latent of a zeroed input):
        # a bound relative to each tensor's largest entry
        np.testing.assert_allclose(got, g, rtol=1e-5, atol=1e-5 * np.abs(g).max(), err_msg=k)


def _pure_like(params, pure: dict):
    params = jax.tree.map(lambda x: x, params)
    nnx.replace_by_pure_dict(params, jax.tree.map(jnp.asarray, pure))
    return params


@pytest.mark.slow
def test_released_steps_reproduce_losses_eta_and_updated_weights(rec, adam, monkeypatch):
    """Three Adam steps (lr 2e-4) with per-network clipping: every loss term (eq. 3's CE and KL,
    L_MSE^m), eta = 0.15 beta, the total loss, and the weights after steps 1 and 3."""
    config, _, method, state, batch = adam
    _use_recorded_noise(monkeypatch, rec, state.key)
    present = np.asarray(rec["missing"], np.float64)
    step_fn = jax.jit(method.phases[0].step)
    for step in range(3):
        state, metrics = step_fn(state, batch)
        t = {k[len("terms/"):]: v[step] for k, v in rec.items() if k.startswith("terms/")}
        np.testing.assert_allclose(metrics["loss"], t["loss"], rtol=1e-5)
        np.testing.assert_allclose(metrics["ce_joint"], t["ce"], rtol=1e-5)
        for c, m in enumerate(MODS):
            np.testing.assert_allclose(metrics[f"ce_{m}"], t[f"ce_{m.lower()}"], rtol=1e-5)
            np.testing.assert_allclose(metrics[f"mse_{m}"], t[f"mse_{m.lower()}"], rtol=1e-5)
            np.testing.assert_allclose(metrics[f"eta_{m}"], 0.15 * t["beta"][c], rtol=1e-5)
            # released KL term: -8e-4 * sum(1 + logvar - mu^2 - e^logvar) * idx / B = 1.6e-3 KL
            mu = rec[f"mu{step}/{m.lower()}"].astype(np.float64)
            lv = rec[f"logvar{step}/{m.lower()}"].astype(np.float64)
            kld = -8e-4 * np.sum((1 + lv - mu ** 2 - np.exp(lv)) * present[:, c:c + 1]) / 6
            np.testing.assert_allclose(config.method.gamma * metrics[f"kl_{m}"], kld, rtol=1e-5)
        if step in (0, 2):
            want = _flat(_pure_like(state.params, _to_mmjax(
                _torch_params(rec, f"w{step + 1}"), rec["mu0/a"].shape[1])))
            got = _flat(state.params)
            for k in want:
                if "['key']['bias']" in k:  # zero gradient: Adam moves them by float noise only
                    assert np.abs(got[k] - want[k]).max() <= 2 * (step + 1) * float(rec["lr"])
                    continue
                np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-7, err_msg=k)
