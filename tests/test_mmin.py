"""MMIN and CRA: imagination replaces only missing features, missing inputs get no gradient,
the cycle loss, the cascade and MMIN's released AE match hand computations, the two stages
train the right parts, one compiled step per stage serves every mask, and a short mfeat run
learns."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mmjax import config as config_lib
from mmjax import methods, train
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data import missing
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods import mmin
from mmjax.methods.base import NNXModel, step_keys
from mmjax.methods.mmin import CraConfig, MminConfig
from mmjax.models.fc_autoencoder import FcAutoencoder
from mmjax.models.residual_ae import CascadedResidualAE
from toy import phase_stepper

SPEC = DatasetSpec("toy", ("a", "b", "c"), ((6,), (5,), (4,)), "classification", 3)
MODEL = ModelConfig(hidden=8, feature_dim=4, dropout=0.0)


def _config(method=None, steps=6, dropout=0.0, **kw):
    method = method or MminConfig(**{"ae_layers": (6, 3), "ae_blocks": 2, "teacher_steps": 2,
                                     **kw})
    return ExperimentConfig(method=method, model=dataclasses.replace(MODEL, dropout=dropout),
                            optim=OptimConfig(lr=1e-2),
                            train=TrainConfig(steps=steps, batch_size=8))


def _batch(key, present=None, n=8):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    if present is None:
        present = jnp.ones((n, 3), bool).at[:3, 0].set(False).at[5:, 2].set(False)
    raw = {"a": jax.random.normal(k1, (n, 6)), "b": jax.random.normal(k2, (n, 5)),
           "c": jax.random.normal(k3, (n, 4))}
    return {"inputs": missing.apply(raw, present, SPEC.modalities), "present": present,
            "label": jax.random.randint(k4, (n,), 0, 3)}


def _part(tree, name):
    return [x for p, x in jax.tree_util.tree_leaves_with_path(tree)
            if getattr(p[0], "key", None) == name]


def test_imagine_keeps_present_slots_bit_for_bit_and_fills_missing_ones():
    h = jax.random.normal(jax.random.key(0), (3, 5))
    h_prime = jax.random.normal(jax.random.key(1), (3, 5))
    present = jnp.array([[True, False], [False, True], [True, True]])
    out = np.asarray(mmin.imagine(h, h_prime, present, (2, 3)))
    mask = np.array([[1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [1, 1, 1, 1, 1]], bool)
    np.testing.assert_array_equal(out[mask], np.asarray(h)[mask])
    np.testing.assert_array_equal(out[~mask], np.asarray(h_prime)[~mask])


@pytest.mark.parametrize("head_input,kind", [("latents", "cra"), ("imagined", "cra"),
                                             ("imagined", "ae")])
def test_network_imagines_only_missing_modalities(head_input, kind):
    config = _config(head_input=head_input, imagination=kind)
    batch = _batch(jax.random.key(0))
    state = methods.make(config, SPEC).init(jax.random.key(1), batch)
    model = mmin.NNXModel(lambda rngs: mmin.MminNet(SPEC, MODEL, config.method, rngs=rngs))
    out, _ = model.apply(state.params, state.model_state, batch["inputs"], batch["present"],
                         train=False)
    slots = np.asarray(mmin.slot_mask(batch["present"], (4, 4, 4)))
    imagined, h, h_prime = (np.asarray(out[k]) for k in ("imagined", "h", "h_prime"))
    np.testing.assert_array_equal(imagined[slots], h[slots])
    np.testing.assert_array_equal(imagined[~slots], h_prime[~slots])


@pytest.mark.parametrize("name", ["mmin", "mmin_ae", "cra"])
def test_no_gradient_reaches_a_missing_input_and_its_value_changes_nothing(name):
    config = {"mmin": lambda: _config(), "mmin_ae": lambda: _config(imagination="ae"),
              "cra": lambda: _config(CraConfig(ae_layers=(6, 3), ae_blocks=2))}[name]()
    method = methods.make(config, SPEC)
    batch = _batch(jax.random.key(0))
    state = method.init(jax.random.key(1), batch)

    def total(inputs):
        return method.predict(state, {**batch, "inputs": inputs}).sum()

    grads = jax.grad(total)(batch["inputs"])
    np.testing.assert_array_equal(grads["a"][:3], 0.0)
    np.testing.assert_array_equal(grads["c"][5:], 0.0)
    assert np.abs(np.asarray(grads["a"][3:])).max() > 0
    moved = {**batch["inputs"], "a": batch["inputs"]["a"].at[:3].add(5.0)}
    np.testing.assert_array_equal(total(moved), total(batch["inputs"]))


def test_cycle_loss_hand_computed_and_stops_the_gradient_to_h():
    h = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    h_cycle = jnp.array([[0.0, 2.0], [3.0, 6.0]])
    # per-sample mean squared errors 0.5 and 2.0
    assert float(mmin.cycle_loss(h, h_cycle, jnp.array([True, True]))) == pytest.approx(1.25)
    assert float(mmin.cycle_loss(h, h_cycle, jnp.array([True, False]))) == pytest.approx(0.5)
    gh, gc = jax.grad(lambda a, b: mmin.cycle_loss(a, b, jnp.array([True, True])),
                      argnums=(0, 1))(h, h_cycle)
    np.testing.assert_array_equal(gh, 0.0)
    np.testing.assert_allclose(gc, jnp.array([[-0.5, 0.0], [0.0, 1.0]]), rtol=1e-6)


def test_forward_loss_ignores_modalities_missing_from_the_data():
    """Slots (2, 1): sample 0 has both, sample 1 lacks modality 2, whose slot is left out:
    sample 0: ((1-0)^2 + (2-0)^2 + (3-0)^2) / 3 = 14/3; sample 1: (2-1)^2 / 2 = 1/2 over its two
    present slots; mean 31/12. With every slot present it is the plain MSE."""
    a = jnp.array([[1.0, 2.0, 3.0], [2.0, 0.0, 100.0]])
    b = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    present = jnp.array([[True, True], [True, False]])
    slots = mmin.slot_mask(present, (2, 1))
    weight = jnp.ones(2, bool)
    np.testing.assert_allclose(mmin.slot_mse(a, b, slots, weight), 31 / 12, rtol=1e-6)
    full = jnp.ones_like(slots)
    np.testing.assert_allclose(mmin.slot_mse(a, b, full, weight), mmin.mse(a, b, weight),
                               rtol=1e-6)


def test_forward_loss_leaves_out_a_sample_with_no_modality_in_value_and_gradient():
    """The batch contract allows a sample with no modality (its weight is 0: it has no simulated
    pattern); it has no slot to compare, so it must change neither the forward loss nor its
    gradient, and must not make either NaN (0 slots / 0 would)."""
    a = jnp.array([[1.0, 2.0, 3.0], [2.0, 0.0, 100.0], [5.0, -4.0, 7.0]])
    b = jnp.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 2.0]])
    present = jnp.array([[True, True], [True, False], [False, False]])
    slots = mmin.slot_mask(present, (2, 1))
    weight = present.any(-1)

    def loss(a, n):
        return mmin.slot_mse(a[:n], b[:n], slots[:n], weight[:n])

    value, grad = jax.value_and_grad(loss)(a, 3)
    value2, grad2 = jax.value_and_grad(loss)(a, 2)
    np.testing.assert_allclose(value, 31 / 12, rtol=1e-6)  # as without the third sample
    np.testing.assert_allclose(value2, 31 / 12, rtol=1e-6)
    assert np.all(np.isfinite(np.asarray(grad)))
    np.testing.assert_allclose(grad[:2], grad2[:2], rtol=1e-6)
    np.testing.assert_array_equal(grad[2], 0.0)


def test_cascade_is_the_sum_of_block_residuals():
    """Tran et al. eq. (1): x_hat = x + dZ_1 + dZ_2, dZ_2 = AE_2(x + dZ_1)."""
    cra = CascadedResidualAE(5, (4, 2), 2, None, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (3, 5))

    def block(blk, v):
        h = jax.nn.leaky_relu(blk["enc"][0](v), 0.01)
        z = blk["enc"][1](h)  # linear latent (released: no activation on the last layer)
        return blk["dec"][1](jax.nn.relu(blk["dec"][0](z))), z

    d1, z1 = block(cra.blocks[0], x)
    d2, z2 = block(cra.blocks[1], x + d1)
    x_hat, latents = cra(x)
    np.testing.assert_allclose(x_hat, x + d1 + d2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(latents, jnp.concatenate([z1, z2], -1), rtol=1e-5, atol=1e-6)


def test_fc_autoencoder_is_the_released_simple_fc_ae():
    """``SimpleFcAE(layers=[4, 2])``: Linear-LeakyReLU twice (the latent activated), then
    Linear-LeakyReLU, Linear-ReLU back to the input width; no residual sum."""
    ae = FcAutoencoder(5, (4, 2), rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (6, 5))
    latent = jax.nn.leaky_relu(ae.enc[1](jax.nn.leaky_relu(ae.enc[0](x), 0.01)), 0.01)
    recon = jax.nn.relu(ae.dec[1](jax.nn.leaky_relu(ae.dec[0](latent), 0.01)))
    got_recon, got_latent = ae(x)
    np.testing.assert_allclose(got_latent, latent, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got_recon, recon, rtol=1e-6, atol=1e-7)
    assert (np.asarray(got_latent) < 0).any() and (np.asarray(got_recon) == 0).any()
    assert [layer.kernel.shape for layer in (*ae.enc, *ae.dec)] == [(5, 4), (4, 2), (2, 4),
                                                                    (4, 5)]


def test_ae_imagination_classifies_its_one_latent():
    """``imagination=ae``: each imagination is one AE (``ae_blocks`` unused) and the head reads
    its latent, ``layers[-1]`` wide."""
    params = methods.make(_config(imagination="ae", ae_blocks=3), SPEC).init(
        jax.random.key(1), _batch(jax.random.key(0))).params
    assert sorted(params["imagination"]) == ["dec", "enc"]
    assert params["head"]["fc1"]["kernel"].shape[0] == 3


def test_patterns_are_every_nonempty_nonfull_subset():
    p = np.asarray(mmin.sample_patterns(jax.random.key(0), 4000, 3))
    codes = p @ np.array([1, 2, 4])
    assert set(codes.tolist()) == {1, 2, 3, 4, 5, 6}
    counts = np.bincount(codes, minlength=8)[1:7]
    assert counts.min() > 4000 / 6 * 0.85


@pytest.mark.slow
def test_student_starts_from_teacher_and_stages_train_their_parts():
    method = methods.make(_config(), SPEC)  # teacher_steps = 2
    assert [(p.name, p.steps) for p in method.phases] == [("teacher", 2), ("student", None)]
    batch = _batch(jax.random.key(0), present=jnp.ones((8, 3), bool))
    state = method.init(jax.random.key(1), batch)
    teacher_step, student_step = (jax.jit(p.step) for p in method.phases)
    s1, m1 = teacher_step(state, batch)  # stage 1: only the teacher moves
    assert float(m1["phase"]) == 1.0 and float(m1["ce_teacher"]) > 0
    for name in ("encoders", "imagination", "backward_ae", "head"):
        for a, b in zip(_part(state.params, name), _part(s1.params, name)):
            np.testing.assert_array_equal(a, b)
    assert any(np.abs(np.asarray(a - b)).max() > 0
               for a, b in zip(_part(state.params, "teacher"), _part(s1.params, "teacher")))
    s2, _ = teacher_step(s1, batch)
    # Stage 2's enter (the host runs it before step 2 == teacher_steps): student := teacher.
    entered = jax.jit(method.phases[1].enter)(s2)
    for a, b in zip(jax.tree.leaves(entered.params["encoders"]),
                    jax.tree.leaves(s2.params["teacher"]["encoders"])):
        np.testing.assert_array_equal(a, b)
    for name in ("teacher", "imagination", "backward_ae", "head"):
        for a, b in zip(_part(s2.params, name), _part(entered.params, name)):
            np.testing.assert_array_equal(a, b)
    jax.tree.map(np.testing.assert_array_equal, entered.opt_state, s2.opt_state)
    assert int(entered.step) == int(s2.step) == 2
    s3, m3 = student_step(entered, batch)  # stage 2: the teacher is frozen
    assert float(m3["phase"]) == 2.0 and float(m3["cycle"]) > 0
    for a, b in zip(_part(s2.params, "teacher"), _part(s3.params, "teacher")):
        np.testing.assert_array_equal(a, b)
    copied, _ = mmin.start_student(s2.params, s2.model_state)
    for a, b in zip(jax.tree.leaves(copied["encoders"]),
                    jax.tree.leaves(s2.params["teacher"]["encoders"])):
        np.testing.assert_array_equal(a, b)
    # Each stage advances only its own optimiser state: stage 1 left tx2's at init, stage 2
    # leaves tx1's as stage 1 left it.
    jax.tree.map(np.testing.assert_array_equal, s2.opt_state[1], state.opt_state[1])
    jax.tree.map(np.testing.assert_array_equal, s3.opt_state[0], s2.opt_state[0])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mmin", "cra"])
def test_one_compiled_step_for_every_mask_and_both_stages(name):
    """One trace per phase (MMIN: teacher and student, CRA: one) serves every mask."""
    config = (_config() if name == "mmin"
              else _config(CraConfig(ae_layers=(6, 3), ae_blocks=2)))
    method = methods.make(config, SPEC)
    traces = []
    step = phase_stepper(method, config.train.steps, traces)
    state = method.init(jax.random.key(1), _batch(jax.random.key(0)))
    for i, rate in enumerate((0.0, 0.3, 0.6, 0.9)):
        present = jax.random.bernoulli(jax.random.key(i), 1 - rate, (8, 3)).at[:, 1].set(True)
        state, metrics = step(state, _batch(jax.random.key(0), present))
        assert np.isfinite(float(metrics["loss"]))
    assert traces == (["teacher", "student"] if name == "mmin" else ["train"])
    assert int(state.step) == 4


def test_bad_settings_fail_with_one_line():
    for kw in ({"head_input": "features"}, {"teacher_steps": 6}, {"teacher_steps": 0},
               {"ae_blocks": 0}, {"imagination": "vae"}):
        with pytest.raises(UserError):
            methods.make(_config(**kw), SPEC)
    one = DatasetSpec("one", ("a",), ((5,),), "classification", 3)
    for cfg in (_config(), _config(CraConfig())):
        with pytest.raises(UserError):
            methods.make(cfg, one)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mmin", "cra"])
def test_mfeat_short_run_learns(tmp_path, name):
    """100 steps on three mfeat views (MMIN: 40 teacher + 60): every subset evaluated, all three
    together well above chance (0.1), the average over the 7 subsets too (measured: MMIN 0.963 /
    0.886, CRA 0.968 / 0.930; 25-45 s each on the 2-core CPU at load 2-4, 73 s at load 8)."""
    sets = ["data.views=fou,kar,pix", "train.steps=100", "train.log_every=50",
            "train.checkpoint_every=100", "method.ae_layers=64,32", "method.ae_blocks=2"]
    if name == "mmin":
        sets.append("method.teacher_steps=40")
    config = config_lib.override(config_lib.load(f"configs/mfeat/{name}.py:quick"), sets)
    result = train.train(config, tmp_path / "run")
    assert len(result["subsets"]) == 7
    assert result["subsets"]["fou+kar+pix"]["accuracy"] > 0.85
    assert result["average"]["accuracy"] > 0.75


# The released networks, each clipped on its own (``clip_grad_norm_`` per network): each encoder,
# each teacher encoder, the teacher's head, the student's head, the imagination and backward
# autoencoders. Named by path prefix, independently of ``network_of``.
_RELEASED_NETWORKS = {
    **{f"encoder {m}": f"['encoders']['{m}']" for m in SPEC.modalities},
    **{f"teacher encoder {m}": f"['teacher']['encoders']['{m}']" for m in SPEC.modalities},
    "teacher head": "['teacher']['head']", "head": "['head']",
    "imagination": "['imagination']", "backward_ae": "['backward_ae']",
}


def test_clip_per_network_caps_each_released_networks_norm_with_pytorchs_epsilon(key):
    """Each network's gradient is scaled by min(1, max_norm / (norm + 1e-6)) on its own global
    norm (PyTorch's ``clip_grad_norm_``): networks far above, just above and below the
    threshold, with a threshold small enough (1e-5) that the 1e-6 matters."""
    max_norm = 1e-5
    state = methods.make(_config(), SPEC).init(jax.random.key(1), _batch(key))
    leaves, treedef = jax.tree_util.tree_flatten(state.params)
    keys = jax.random.split(key, len(leaves))
    raw = treedef.unflatten([jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])
    targets = dict(zip(_RELEASED_NETWORKS, max_norm * np.array(
        [40.0, 0.5, 2.0, 0.9, 7.0, 0.2, 1.5, 0.05, 12.0, 3.0])))

    def network(path):
        text = jax.tree_util.keystr(path)
        owners = [n for n, prefix in _RELEASED_NETWORKS.items() if text.startswith(prefix)
                  and not (prefix == "['head']" and text.startswith("['teacher']"))]
        assert len(owners) == 1, text
        return owners[0]

    def by_network(tree):
        parts = {n: [] for n in _RELEASED_NETWORKS}
        for path, g in jax.tree_util.tree_leaves_with_path(tree):
            parts[network(path)].append(np.asarray(g, np.float64).ravel())
        return {n: np.concatenate(p) for n, p in parts.items()}

    norms = {n: np.linalg.norm(v) for n, v in by_network(raw).items()}
    grads = jax.tree_util.tree_map_with_path(
        lambda path, g: g * (targets[network(path)] / norms[network(path)]), raw)
    before, after = by_network(grads), by_network(mmin.clip_per_network(grads, max_norm))
    for net, g in before.items():
        norm = np.linalg.norm(g)
        scale = min(1.0, max_norm / (norm + 1e-6))
        np.testing.assert_allclose(after[net], g * scale, rtol=1e-5, atol=0, err_msg=net)


def test_each_stage_builds_its_optimiser_for_its_own_length():
    """Stage 1 (the teacher) spans teacher_steps, stage 2 the rest of the run, so a schedule
    decays over its own stage (a user's optimiser factory sees the same lengths)."""
    seen = []

    def factory(optim, total_steps):
        seen.append(total_steps)
        return optax.sgd(optim.lr)

    methods.make(_config(steps=10, teacher_steps=3), SPEC, tx=factory)
    assert seen == [3, 7]


def test_both_stages_run_the_training_forward_pass_with_the_steps_dropout_key(key):
    """With dropout 0.5, stage 1's teacher cross-entropy (over complete samples) and stage 2's
    student cross-entropy (over the samples left with a modality by the simulated pattern) equal
    the training-mode forward pass (dropout on, the step's dropout key) computed here."""
    config = _config(steps=4, dropout=0.5)
    method = methods.make(config, SPEC)
    batch = _batch(key)
    present, label = batch["present"], batch["label"]
    net = NNXModel(lambda rngs: mmin.MminNet(SPEC, config.model, config.method, rngs=rngs))

    def ce(logits, weight):
        logp = jax.nn.log_softmax(logits, -1)
        per = -jnp.take_along_axis(logp, label[:, None], -1)[:, 0]
        return float((per * weight).sum() / weight.sum())

    state = method.init(jax.random.key(1), batch)
    keys = step_keys(state, "dropout", "pattern")
    module, rngs = net.bind(state.params, state.model_state), nnx.Rngs(dropout=keys["dropout"])
    x = missing.apply(batch["inputs"], present, SPEC.modalities)
    logits = module.teacher.head(module.teacher.features(x, deterministic=False, rngs=rngs),
                                 deterministic=False, rngs=rngs)
    _, metrics = jax.jit(method.phases[0].step)(state, batch)
    np.testing.assert_allclose(float(metrics["ce_teacher"]), ce(logits, present.all(-1)),
                               rtol=1e-5)

    student = method.phases[1].enter(state.replace(step=jnp.asarray(2, state.step.dtype)))
    keys = step_keys(student, "dropout", "pattern")
    sim = mmin.sample_patterns(keys["pattern"], present.shape[0], 3) & present
    module = net.bind(student.params, student.model_state)
    out = module(batch["inputs"], sim, deterministic=False, rngs=nnx.Rngs(dropout=keys["dropout"]))
    _, metrics = jax.jit(method.phases[1].step)(student, batch)
    np.testing.assert_allclose(float(metrics["ce"]), ce(out["logits"], sim.any(-1)), rtol=1e-5)
    deterministic = module(batch["inputs"], sim, deterministic=True)["logits"]
    assert not np.allclose(np.asarray(deterministic), np.asarray(out["logits"]))


def test_no_gradient_reaches_the_frozen_teacher_in_stage_two(key):
    """The forward-imagination target is the teacher's encoding under stop_gradient: stage 2's
    optimiser moments of every teacher parameter stay 0 (its other parameters' do not)."""
    method = methods.make(_config(steps=4), SPEC)
    batch = _batch(key)
    state = method.init(jax.random.key(1), batch)
    student = method.phases[1].enter(state.replace(step=jnp.asarray(2, state.step.dtype)))
    new, _ = jax.jit(method.phases[1].step)(student, batch)
    teacher, others = [], []
    for path, leaf in jax.tree_util.tree_leaves_with_path(new.opt_state[1]):
        if jnp.issubdtype(leaf.dtype, jnp.floating) and leaf.ndim:
            (teacher if "['teacher']" in jax.tree_util.keystr(path) else others).append(
                np.abs(np.asarray(leaf)).max())
    assert teacher and max(teacher) == 0.0
    assert others and max(others) > 0.0


def test_cra_step_runs_the_training_forward_pass_with_the_steps_dropout_key(key):
    """With dropout 0.5 in the classifier, CRA's cross-entropy (over the samples the simulated
    pattern leaves with a modality) is the training-mode forward pass of the step's dropout key.
    (The reconstruction target x is data: no stop-gradient is needed on it.)"""
    config = _config(CraConfig(ae_layers=(6, 3), ae_blocks=2), dropout=0.5)
    method = methods.make(config, SPEC)
    batch = _batch(key)
    state = method.init(jax.random.key(1), batch)
    keys = step_keys(state, "dropout", "pattern")
    sim = mmin.sample_patterns(keys["pattern"], 8, 3) & batch["present"]
    net = NNXModel(lambda rngs: mmin.CraNet(SPEC, config.model, config.method, rngs=rngs))
    (logits, _, _), _ = net.apply(state.params, state.model_state, batch["inputs"], sim,
                                  train=True, key=keys["dropout"])
    logp = jax.nn.log_softmax(logits, -1)
    per = -jnp.take_along_axis(logp, batch["label"][:, None], -1)[:, 0]
    weight = sim.any(-1)
    _, metrics = jax.jit(method.train_step)(state, batch)
    np.testing.assert_allclose(float(metrics["ce"]), float((per * weight).sum() / weight.sum()),
                               rtol=1e-5)
    (eval_logits, _, _), _ = net.apply(state.params, state.model_state, batch["inputs"], sim,
                                       train=False)
    assert not np.allclose(np.asarray(eval_logits), np.asarray(logits))
