"""RedCore: relative advantage, the eta update and its projections, masked losses, imperfect-data
training (no gradient reaches a missing input), no recompilation, a run. The whole objective (and
the ablation switches) against an independent reference: tests/test_objective_redcore.py."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mmjax import config as config_lib
from mmjax import methods, train
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods import redcore
from mmjax.methods import redcore_projection as rp
from mmjax.methods.redcore import RedCoreConfig

SPEC = DatasetSpec("toy", ("a", "b", "c"), ((5,), (3,), (4,)), "classification", 3)
XI1, XI2 = 0.015, 0.15


def _config(dropout=0.0, **kw):
    mc = RedCoreConfig(latent_dim=6, xenc_layers=(6, 4), xenc_blocks=2, **kw)
    return ExperimentConfig(method=mc, model=ModelConfig(hidden=8, feature_dim=4, dropout=dropout),
                            optim=OptimConfig(lr=1e-3), train=TrainConfig(steps=10))


def _batch(key, present=None, n=8):
    keys = jax.random.split(key, 5)
    inputs = {m: jax.random.normal(k, (n, *s))
              for m, s, k in zip(SPEC.modalities, SPEC.shapes, keys)}
    if present is None:
        present = jax.random.bernoulli(keys[3], 0.6, (n, 3)).at[:, 0].set(True)
    return {"inputs": inputs, "present": jnp.asarray(present),
            "label": jax.random.randint(keys[4], (n,), 0, 3)}


# ----------------------------------------------------------------------------------------------
# Red: eqs. (4)-(5), (9), (10) and the projections.
# ----------------------------------------------------------------------------------------------


def test_relative_advantage_matches_eqs_4_5_and_sums_to_zero():
    """L = (1, 2, 3): mean 2, RA = (0.5, 0, -0.5); random losses: sum RA = 0 (eq. 8)."""
    np.testing.assert_allclose(rp.relative_advantage(jnp.array([1.0, 2.0, 3.0])),
                               [0.5, 0.0, -0.5], atol=1e-7)
    for seed in range(5):
        ls = jax.random.uniform(jax.random.key(seed), (4,), minval=0.01, maxval=5.0)
        assert abs(float(rp.relative_advantage(ls).sum())) < 1e-6


def test_moving_average_is_eq_10_keeps_undefined_losses_and_starts_at_the_first_value():
    mal, loss = jnp.array([1.0, 2.0, 4.0]), jnp.array([3.0, 0.0, 2.0])
    valid, first = jnp.array([True, False, True]), jnp.array(False)
    np.testing.assert_allclose(rp.moving_average(mal, loss, 0.7, valid, first),
                               [0.3 * 1 + 0.7 * 3, 2.0, 0.3 * 4 + 0.7 * 2], rtol=1e-6)
    np.testing.assert_allclose(rp.moving_average(mal, loss, 0.7, valid, jnp.array(True)),
                               [3.0, 2.0, 2.0])


def _on_gamma1(eta, xi1=XI1, xi2=XI2):
    return bool(np.all(eta >= xi1 - 1e-7)) and abs(float(np.linalg.norm(eta)) - xi2) < 1e-6


def _brute_force_nearest(v, xi1=XI1, xi2=XI2, n=1201):
    """min ||eta - v|| over a fine grid of Gamma_1 (M = 3, spherical coordinates)."""
    th, ph = np.meshgrid(np.linspace(0, np.pi / 2, n), np.linspace(0, np.pi / 2, n))
    pts = xi2 * np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], -1)
    pts = pts.reshape(-1, 3)
    pts = pts[(pts >= xi1).all(1)]
    return np.linalg.norm(pts - v, axis=1).min()


@pytest.mark.parametrize("v", [[0.2, 0.1, -0.05], [0.05, 0.05, 0.05], [-0.1, 0.3, 0.001],
                               [-0.02, -0.3, -0.1], [0.1, -0.2, 0.1], [0.0, 0.0, 0.0],
                               [1e-4, -1e-4, 2e-4], [0.09, 0.1, 0.11]])
def test_exact_projection_lands_on_gamma1_and_is_the_nearest_point(v):
    """Feasible, no farther than the best of ~10^6 grid points of Gamma_1 (grid spacing ~2e-4,
    so the grid's best is at most ~1.5e-4 farther than the optimum), and a KKT point:
    eta = max(xi1, c v) for one c > 0 when some v_i > 0."""
    v = np.array(v, np.float32)
    eta = np.asarray(rp.project_exact(jnp.asarray(v), XI1, XI2))
    assert _on_gamma1(eta)
    dist = np.linalg.norm(eta - v)
    assert dist <= _brute_force_nearest(v) + 1e-6
    assert dist >= _brute_force_nearest(v) - 2e-4
    if v.max() > 0:
        free = eta > XI1 + 1e-6
        c = eta[free] / v[free]
        np.testing.assert_allclose(c, c[0], rtol=1e-4)
        np.testing.assert_allclose(eta, np.maximum(XI1, c[0] * v), atol=1e-6)


@pytest.mark.parametrize("v", [[14.93, -12.59, 15.14], [3.0, 2.5, -40.0], [0.5, 7.0, 0.05]])
def test_exact_projection_of_points_far_outside_the_sphere(v):
    """Inputs much longer than xi2 (here xi1 = 0.1, xi2 = 1): still on Gamma_1, the nearest point
    and of the KKT form (a mutant that divides instead of multiplying the scale c passed every
    small-v case above)."""
    xi1, xi2 = 0.1, 1.0
    v = np.array(v, np.float32)
    eta = np.asarray(rp.project_exact(jnp.asarray(v), xi1, xi2))
    assert _on_gamma1(eta, xi1, xi2)
    dist = np.linalg.norm(eta - v)
    assert dist <= _brute_force_nearest(v, xi1, xi2) + 1e-5
    free = eta > xi1 + 1e-6
    c = eta[free] / v[free]
    np.testing.assert_allclose(eta, np.maximum(xi1, c[0] * v), atol=1e-6)


def test_exact_projection_keeps_points_of_gamma1_and_works_for_many_modalities():
    eta0 = np.asarray(rp.project_exact(jnp.array([0.3, 0.2, 0.1]), XI1, XI2))
    np.testing.assert_allclose(rp.project_exact(jnp.asarray(eta0), XI1, XI2), eta0, atol=1e-7)
    for seed in range(10):  # M = 6: feasible, and nearer than 2000 random feasible points
        v = np.asarray(jax.random.normal(jax.random.key(seed), (6,))) * 0.1
        eta = np.asarray(rp.project_exact(jnp.asarray(v), XI1, XI2))
        assert _on_gamma1(eta)
        rnd = np.abs(np.random.default_rng(seed).normal(size=(2000, 6))) + 0.3
        rnd = XI2 * rnd / np.linalg.norm(rnd, axis=1, keepdims=True)
        rnd = rnd[(rnd >= XI1).all(1)]
        assert np.linalg.norm(eta - v) <= np.linalg.norm(rnd - v, axis=1).min() + 1e-7


def test_clamp_normalize_is_the_released_rule_and_can_leave_gamma1():
    """max(v, xi1) then xi2 / norm; (0.5, 0.01, 0.01) -> (0.5, .015, .015) * 0.15 / 0.50045: the
    small components end at 0.0045 < xi1, outside Gamma_1 (the exact projection stays in it)."""
    v = jnp.array([0.5, 0.01, 0.01])
    out = np.asarray(rp.project_clamp_normalize(v, XI1, XI2))
    clamped = np.array([0.5, 0.015, 0.015])
    np.testing.assert_allclose(out, 0.15 * clamped / np.linalg.norm(clamped), rtol=1e-6)
    assert out[1] < XI1 and not _on_gamma1(out)
    assert _on_gamma1(np.asarray(rp.project_exact(v, XI1, XI2)))


@pytest.mark.parametrize("projection", ["exact", "clamp_normalize"])
def test_eta_update_moves_against_relative_advantage(projection):
    """Eq. (9) from equal eta: the strongest modality (RA > 0) loses supervision, the weakest
    gains, and the objective r^T eta (6a) decreases."""
    eta = jnp.full((3,), XI2 / np.sqrt(3))
    ra = rp.relative_advantage(jnp.array([0.5, 1.0, 1.5]))  # (0.5, 0, -0.5)
    new = np.asarray(rp.update_eta(eta, ra, 0.1, XI1, XI2, projection))
    assert new[0] < float(eta[0]) < new[2]
    assert float(ra @ new) < float(ra @ eta) - 1e-3
    assert _on_gamma1(new)


def test_regulate_updates_eta_every_k_steps_only_and_core_never():
    """A varying MSE (not proportional between steps, so the averages' relative advantage
    differs from the raw one): MAL follows eq. 10 by hand, r is eqs. 4-5 of MAL (never of the
    raw MSE), eta moves at steps 0, 3, 6 only; Core keeps eta_0."""
    mc = RedCoreConfig(every=3)
    extra = {"eta": redcore.initial_eta(mc, 3), "mal": jnp.zeros(3)}
    valid = jnp.ones(3, bool)
    mal = np.zeros(3)
    etas, ra_differs = [], False
    for step in range(7):
        mse = np.array([0.5, 1.0, 1.5]) + step * np.array([0.3, -0.12, 0.05])
        extra, ra = redcore.regulate(mc, extra, jnp.asarray(mse), valid, jnp.array(step))
        mal = mse if step == 0 else 0.3 * mal + 0.7 * mse  # eq. 10, beta = 0.7
        np.testing.assert_allclose(extra["mal"], mal, rtol=1e-6)
        np.testing.assert_allclose(ra, (mal.mean() - mal) / mal.mean(), rtol=1e-5, atol=1e-7)
        raw = (mse.mean() - mse) / mse.mean()
        ra_differs |= np.abs(raw - np.asarray(ra)).max() > 1e-2
        etas.append(np.asarray(extra["eta"]))
    assert ra_differs
    changed = [not np.allclose(etas[i], etas[i - 1]) for i in range(1, 7)]
    assert changed == [False, False, True, False, False, True]  # steps 3 and 6 (0 updated too)
    assert not np.allclose(etas[0], redcore.initial_eta(mc, 3))
    core = RedCoreConfig(regulate=False)
    extra = {"eta": redcore.initial_eta(core, 3), "mal": jnp.zeros(3)}
    for step in range(4):
        extra, _ = redcore.regulate(core, extra, jnp.array([0.5, 1.0, 1.5]), valid,
                                    jnp.array(step))
    np.testing.assert_allclose(extra["eta"], np.full(3, XI2 / np.sqrt(3)), rtol=1e-6)


def test_released_alpha_schedule_grows_from_step_zero():
    """The released code multiplies its step size by 1.5 every 500 steps starting at step 0."""
    mc = RedCoreConfig(alpha_schedule="released")
    got = [float(redcore.alpha_at(mc, jnp.array(s))) for s in (0, 499, 500, 1000)]
    np.testing.assert_allclose(got, [0.15, 0.15, 0.225, 0.3375], rtol=1e-6)
    assert float(redcore.alpha_at(RedCoreConfig(), jnp.array(1000))) == pytest.approx(0.1)


# ----------------------------------------------------------------------------------------------
# Core: losses and the network.
# ----------------------------------------------------------------------------------------------


def test_masked_mse_counts_only_present_samples():
    """Rows 0 and 2 present: (||(1,2)||^2 + ||(0,3)||^2) / 2 = 7; row 1's huge error ignored."""
    zbar = jnp.array([[1.0, 2.0], [100.0, 0.0], [0.0, 3.0]])
    present = jnp.array([True, False, True])
    assert float(redcore.masked_mse(zbar, jnp.zeros_like(zbar), present)) == pytest.approx(7.0)
    assert float(redcore.masked_mse(zbar, jnp.zeros_like(zbar), jnp.zeros(3, bool))) == 0.0


def test_gaussian_kl_closed_form():
    """KL(N(1, e^0) || N(0, 1)) = 0.5 per dim; KL(N(0, e^-1)||N(0,1)) = 0.5 (e^-1 + 1 - 1)."""
    np.testing.assert_allclose(redcore.gaussian_kl(jnp.ones((1, 2)), jnp.zeros((1, 2))), [1.0])
    np.testing.assert_allclose(redcore.gaussian_kl(jnp.zeros((1, 1)), -jnp.ones((1, 1))),
                               [0.5 * np.exp(-1.0)], rtol=1e-6)


def _net_out(config, state, batch):
    model = redcore.redcore_net(config, SPEC)

    @jax.jit
    def run(params, model_state, inputs, present):
        module = nnx.merge(model.graphdef, params, model_state)
        return module(inputs, present, deterministic=True)

    return run(state.params, state.model_state, batch["inputs"], batch["present"])


def test_final_representation_is_eq_1_and_zhat_reads_only_other_present_latents(key):
    config = _config()
    method = methods.make(config, SPEC)
    batch = _batch(key)
    state = method.init(jax.random.key(1), batch)
    out = _net_out(config, state, batch)
    p = np.asarray(batch["present"])
    for c in range(3):
        np.testing.assert_array_equal(
            out["z"][c], np.where(p[:, c:c + 1], out["zbar"][c], out["zhat"][c]))
        assert np.all(np.asarray(out["zbar"][c])[~p[:, c]] == 0)
    # zhat_a depends on b's latent only where b is present: perturb b's input on missing rows.
    changed = {**batch, "inputs": {**batch["inputs"], "b": batch["inputs"]["b"] + 5.0}}
    out2 = _net_out(config, state, changed)
    rows = ~p[:, 1]
    np.testing.assert_array_equal(np.asarray(out2["zhat"][0])[rows],
                                  np.asarray(out["zhat"][0])[rows])
    assert np.abs(np.asarray(out2["zhat"][0])[~rows] - np.asarray(out["zhat"][0])[~rows]).max() > 0


def test_no_gradient_reaches_a_missing_input_and_its_value_changes_nothing(key):
    """Imperfect-data training: d loss / d x[b, m] = 0 where m is missing, and replacing the
    missing inputs by other values leaves the loss and the update bit-identical."""
    method = methods.make(_config(), SPEC)
    batch = _batch(key)
    state = method.init(jax.random.key(1), batch)

    def loss_of(inputs):
        new, metrics = method.train_step(state, {**batch, "inputs": inputs})
        return metrics["loss"], new.params

    loss_and_grad = jax.jit(jax.value_and_grad(loss_of, has_aux=True))
    (loss1, params1), grads = loss_and_grad(batch["inputs"])
    p = np.asarray(batch["present"])
    assert (~p).any()
    for c, m in enumerate(SPEC.modalities):
        g = np.abs(np.asarray(grads[m])).sum(-1)
        assert np.all(g[~p[:, c]] == 0)
        assert np.all(g[p[:, c]] > 0)
    noisy = {m: jnp.where(batch["present"][:, c:c + 1], x, 1e3)
             for c, (m, x) in enumerate(batch["inputs"].items())}
    (loss2, params2), _ = loss_and_grad(noisy)
    assert float(loss1) == float(loss2)
    for a, b in zip(jax.tree.leaves(params1), jax.tree.leaves(params2)):
        np.testing.assert_array_equal(a, b)


def test_no_recompilation_across_missing_rates(key):
    traces = []

    def counted(state, batch):
        traces.append(1)
        return method.train_step(state, batch)

    method = methods.make(_config(), SPEC)
    step = jax.jit(counted)
    state = method.init(jax.random.key(1), _batch(key))
    for rate in (0.0, 0.3, 0.8):
        present = jax.random.bernoulli(jax.random.key(7), 1 - rate, (8, 3)).at[:, 2].set(True)
        state, _ = step(state, _batch(key, present))
    assert len(traces) == 1


def test_predict_mean_latent_is_deterministic_and_sample_switch_differs(key):
    batch = _batch(key)
    mean_m = methods.make(_config(), SPEC)
    state = mean_m.init(jax.random.key(1), batch)
    sample_m = methods.make(_config(test_latent="sample"), SPEC)
    out = _net_out(_config(), state, batch)
    predict = jax.jit(sample_m.predict)
    np.testing.assert_allclose(mean_m.predict(state, batch), out["joint"], rtol=1e-6)
    assert np.abs(np.asarray(predict(state, batch) - out["joint"])).max() > 1e-4
    np.testing.assert_array_equal(predict(state, batch), predict(state, batch))


# The released networks, each clipped on its own (official-code-notes §1.3: clip_grad_norm_ per
# sub-network): per modality its encoder with its Gaussian head, its cross-modal encoder, its
# classifier head; and the joint head. Named by path prefix, independently of network_of.
_RELEASED_NETWORKS = {
    **{f"net {m}": (f"['encoders']['{m}']", f"['gauss']['{m}']") for m in SPEC.modalities},
    **{f"xenc {m}": (f"['xenc']['{m}']",) for m in SPEC.modalities},
    **{f"head {m}": (f"['heads']['{m}']",) for m in SPEC.modalities},
    "joint": ("['joint']",),
}


def _by_network(tree) -> dict:
    """``{network: its leaves flattened into one float64 vector}`` (every leaf in one network)."""
    parts = {name: [] for name in _RELEASED_NETWORKS}
    for path, g in jax.tree_util.tree_leaves_with_path(tree):
        text = jax.tree_util.keystr(path)
        owners = [n for n, prefixes in _RELEASED_NETWORKS.items() if text.startswith(prefixes)]
        assert len(owners) == 1, text
        parts[owners[0]].append(np.asarray(g, np.float64).ravel())
    return {name: np.concatenate(p) for name, p in parts.items()}


@pytest.mark.parametrize("max_norm", [1.0, 0.3])
def test_clip_per_network_caps_each_networks_global_norm_and_keeps_its_direction(key, max_norm):
    """Released clipping, ``clip_grad_norm_(net, max_norm)`` per network: each network's global
    L2 norm (over all its parameters) becomes min(norm, max_norm), its direction is unchanged, and
    a network under the threshold is left exactly as it was, whatever the other networks' norms."""
    state = methods.make(_config(clip_per_network=1.0), SPEC).init(jax.random.key(1),
                                                                   _batch(key))
    leaves, treedef = jax.tree_util.tree_flatten(state.params)
    keys = jax.random.split(key, len(leaves))
    raw = treedef.unflatten([jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])
    # Scale each network to a chosen norm: half of them above max_norm (up to 40x), half below.
    targets = dict(zip(_RELEASED_NETWORKS, max_norm * np.array(
        [40.0, 0.5, 3.0, 0.9, 7.0, 0.2, 1.5, 0.05, 12.0, 0.7])))
    norms = {n: np.linalg.norm(v) for n, v in _by_network(raw).items()}

    def scaled(path, g):
        text = jax.tree_util.keystr(path)
        net = next(n for n, p in _RELEASED_NETWORKS.items() if text.startswith(p))
        return g * (targets[net] / norms[net])

    grads = jax.tree_util.tree_map_with_path(scaled, raw)
    before = _by_network(grads)
    after = _by_network(redcore.clip_per_network(grads, max_norm))
    for net, g in before.items():
        norm = np.linalg.norm(g)
        np.testing.assert_allclose(norm, targets[net], rtol=1e-5)  # the setup is what it says
        got = after[net]
        if norm <= max_norm:
            np.testing.assert_array_equal(got, g, err_msg=net)
        else:
            np.testing.assert_allclose(np.linalg.norm(got), max_norm, rtol=1e-5, err_msg=net)
            np.testing.assert_allclose(got / np.linalg.norm(got), g / norm, rtol=1e-5,
                                       atol=1e-7, err_msg=net)


def test_clip_per_network_uses_pytorchs_epsilon(key):
    """PyTorch's factor is max_norm / (norm + 1e-6): at max_norm 1e-5 the epsilon is a tenth of
    the threshold, so a network of norm 4e-5 is scaled by 1e-5 / 4.1e-5, not 1e-5 / 4e-5."""
    state = methods.make(_config(clip_per_network=1.0), SPEC).init(jax.random.key(1),
                                                                   _batch(key))
    leaves, treedef = jax.tree_util.tree_flatten(state.params)
    keys = jax.random.split(key, len(leaves))
    raw = treedef.unflatten([jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])
    norms = {n: np.linalg.norm(v) for n, v in _by_network(raw).items()}

    def scaled(path, g):
        text = jax.tree_util.keystr(path)
        net = next(n for n, p in _RELEASED_NETWORKS.items() if text.startswith(p))
        return g * (4e-5 / norms[net])

    grads = jax.tree_util.tree_map_with_path(scaled, raw)
    before = _by_network(grads)
    after = _by_network(redcore.clip_per_network(grads, 1e-5))
    for net, g in before.items():
        np.testing.assert_allclose(after[net], g * (1e-5 / (4e-5 + 1e-6)), rtol=1e-5, err_msg=net)


def test_a_single_runs_state_carries_no_gamma_and_a_packed_one_does():
    """gamma is state only when a sweep packs it (``method.gamma`` traced); a single run's state
    and program are unchanged."""
    from mmjax.methods.base import traced_hyperparameters

    batch = _batch(jax.random.key(0))
    state = methods.make(_config(gamma=0.3), SPEC).init(jax.random.key(1), batch)
    assert "gamma" not in state.extra
    with traced_hyperparameters({"method.gamma"}):
        packed = methods.make(_config(gamma=0.3), SPEC).init(jax.random.key(1), batch)
    np.testing.assert_allclose(float(packed.extra["gamma"]), 0.3, rtol=1e-6)


def test_training_step_runs_the_training_forward_pass():
    """With dropout 0.5 the step's loss depends on its dropout stream (train=True): the same
    state and batch give another loss at dropout 0."""
    batch = _batch(jax.random.key(0))
    losses = []
    for dropout in (0.5, 0.0):
        method = methods.make(_config(dropout=dropout), SPEC)
        state = method.init(jax.random.key(1), batch)
        losses.append(float(jax.jit(method.train_step)(state, batch)[1]["loss"]))
    assert losses[0] != losses[1]


def test_bad_settings_fail_with_one_line():
    for kw in ({"projection": "nearest"}, {"xi1": 0.1}, {"beta": 0.0}, {"test_latent": "mode"}):
        with pytest.raises(UserError):
            methods.make(_config(**kw), SPEC)
    with pytest.raises(UserError):
        methods.make(_config(), DatasetSpec("one", ("a",), ((5,),), "classification", 3))


@pytest.mark.slow
def test_mfeat_three_views_imbalanced_run_end_to_end(tmp_path):
    """40 steps on three mfeat views with rates (0.8, 0.5, 0.2): finite metrics, every subset
    evaluated, relative advantages logged and summing to zero, eta on Gamma_1."""
    config = config_lib.override(
        config_lib.load("configs/mfeat/redcore.py:quick"),
        ["data.views=fou,kar,zer", "missing.protocol=independent", "missing.rates=0.8,0.5,0.2",
         "train.steps=40", "train.log_every=20", "train.checkpoint_every=40",
         "method.latent_dim=16", "method.xenc_layers=16,8", "method.xenc_blocks=2"])
    result = train.train(config, tmp_path / "run")
    assert len(result["subsets"]) == 7
    assert all(np.isfinite(v["weighted_f1"]) for v in result["subsets"].values())
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]
    assert abs(sum(last[f"ra_{m}"] for m in ("fou", "kar", "zer"))) < 1e-5
    eta = np.array([last[f"eta_{m}"] for m in ("fou", "kar", "zer")])
    assert np.all(eta >= XI1 - 1e-6) and abs(np.linalg.norm(eta) - XI2) < 1e-5


def test_the_logged_spread_is_the_range_of_the_relative_advantages():
    """ra_spread = max_m r_m - min_m r_m of the step's relative advantages (Figure 5's spread)."""
    batch = _batch(jax.random.key(0))
    method = methods.make(_config(), SPEC)
    state = method.init(jax.random.key(1), batch)
    _, metrics = jax.jit(method.train_step)(state, batch)
    ra = np.array([float(metrics[f"ra_{m}"]) for m in SPEC.modalities])
    assert ra.max() > ra.min()
    np.testing.assert_allclose(float(metrics["ra_spread"]), ra.max() - ra.min(), rtol=1e-6)
