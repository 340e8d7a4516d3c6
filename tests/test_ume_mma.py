"""UME-MMA, the naive late-fusion baseline and missing detection: defining rules and a short run."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from mmjax import config as config_lib
from mmjax import losses, methods, train
from mmjax.config import ExperimentConfig, MethodConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods import missing_detection, ume_mma
from mmjax.methods.base import Span, schedule, step_keys
from mmjax.methods.missing_detection import MissingDetectionConfig
from mmjax.methods.ume_mma import UmeMmaConfig

from toy import TOY_SPEC, random_batch

SPEC = TOY_SPEC


def _config(method, steps=10, lr=1e-3):
    return ExperimentConfig(method=method, model=ModelConfig(hidden=8, feature_dim=4),
                            optim=OptimConfig(lr=lr), train=TrainConfig(steps=steps))


def _unimodal_output(method_config, state, modality, x):
    """g_m(f_m(x)) computed from the merged module's own encoder and head, not through fusion."""
    model = ume_mma.ensemble_net(_config(method_config), SPEC)
    module = nnx.merge(model.graphdef, state.params, state.model_state)
    return module.unimodal[modality](module.encoders[modality](x, deterministic=True))


def test_ensemble_is_the_mean_of_all_unimodal_outputs_whatever_present_says(key):
    """predict = (1/M) sum_m g_m(f_m(x_m)); the present mask is never read."""
    method = methods.make(_config(UmeMmaConfig(phase1_steps=5)), SPEC)
    batch = random_batch(key)
    state = method.init(jax.random.key(1), batch)
    expected = sum(_unimodal_output(UmeMmaConfig(phase1_steps=5), state, m, batch["inputs"][m])
                   for m in SPEC.modalities) / 3
    np.testing.assert_allclose(method.predict(state, batch), expected, rtol=1e-5, atol=1e-6)
    other = {**batch, "present": batch["present"].at[:, 1].set(False)}
    np.testing.assert_array_equal(method.predict(state, batch), method.predict(state, other))


def test_a_zeroed_modality_contributes_its_zero_input_output(key):
    """Modality b missing (zero input): out = (g_a(f_a(x_a)) + g_b(f_b(0)) + g_c(f_c(x_c))) / 3,
    not the mean over the present modalities (the model is unaware which one is missing)."""
    method = methods.make(_config(UmeMmaConfig(phase1_steps=5)), SPEC)
    batch = random_batch(key)
    batch["present"] = batch["present"].at[:, 1].set(False)
    batch["inputs"]["b"] = jnp.zeros_like(batch["inputs"]["b"])
    state = method.init(jax.random.key(1), batch)
    out = method.predict(state, batch)
    uni = {m: _unimodal_output(UmeMmaConfig(phase1_steps=5), state, m, batch["inputs"][m])
           for m in SPEC.modalities}
    np.testing.assert_allclose(out, (uni["a"] + uni["b"] + uni["c"]) / 3, rtol=1e-5, atol=1e-6)
    assert np.abs(np.asarray(out - (uni["a"] + uni["c"]) / 2)).max() > 1e-3  # differs from `late`


@pytest.mark.parametrize("num_modalities,p", [(2, 0.3), (3, 0.3), (3, 0.2)])
def test_augmentation_never_drops_all_and_hits_its_rate(num_modalities, p):
    """The phase-2 batch: each modality dropped with probability p (binomial std 0.0032 at
    n = 20000, tolerance 0.015), never every modality, complete with probability 1 - M p, dropped
    inputs zeroed, and modalities missing before stay missing."""
    n = 20000
    spec = DatasetSpec("toy", ("a", "b", "c")[:num_modalities], ((2,),) * num_modalities,
                       "classification", 3)
    batch = random_batch(jax.random.key(0), spec, n)
    out = ume_mma.augment_batch(batch, jax.random.key(1), p, spec.modalities)
    present = np.asarray(out["present"])
    assert present.any(1).all()
    np.testing.assert_allclose((~present).mean(0), p, atol=0.015)
    np.testing.assert_allclose(present.all(1).mean(), 1 - num_modalities * p, atol=0.015)
    for c, m in enumerate(spec.modalities):
        assert (np.asarray(out["inputs"][m])[~present[:, c]] == 0).all()
    # A sample already missing `a` keeps it missing and never loses its only other modality.
    lonely = {**batch, "present": jnp.zeros((n, num_modalities), bool).at[:, 1].set(True)}
    out = ume_mma.augment_batch(lonely, jax.random.key(2), p, spec.modalities)
    np.testing.assert_array_equal(out["present"], lonely["present"])
    same = ume_mma.augment_batch(batch, jax.random.key(3), 0.0, spec.modalities)
    np.testing.assert_array_equal(same["present"], batch["present"])


def _leaves(tree, modality):
    """The parameter leaves of one modality's encoder and head."""
    return [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(tree)
            if getattr(path[1], "key", None) == modality]


def test_phase_one_trains_each_unimodal_model_alone_on_its_present_samples(key):
    """Phase 1: modality a's update ignores the other modalities' inputs and the labels of the
    samples that miss a (the same change does move modality b's update)."""
    method = methods.make(_config(UmeMmaConfig(phase1_steps=5)), SPEC)
    batch = random_batch(key)
    batch["present"] = batch["present"].at[:3, 0].set(False)
    batch["inputs"]["a"] = batch["inputs"]["a"].at[:3].set(0.0)
    state = method.init(jax.random.key(1), batch)

    step = jax.jit(method.phases[0].step)

    def update(b):
        new, metrics = step(state, b)
        assert float(metrics["phase"]) == 1.0
        return jax.tree.map(lambda x, y: x - y, new.params, state.params)

    # Phase 1 sees no augmentation: loss_a is the mean over exactly the 5 samples that have a.
    _, metrics = step(state, batch)
    logits_a = _unimodal_output(UmeMmaConfig(phase1_steps=5), state, "a", batch["inputs"]["a"])
    per = losses.per_example("classification", logits_a, batch["label"])
    np.testing.assert_allclose(metrics["loss_a"], per[3:].mean(), rtol=1e-5)
    base = update(batch)
    moved_b = update({**batch, "inputs": {**batch["inputs"], "b": batch["inputs"]["b"] + 5.0}})
    relabel = update({**batch, "label": batch["label"].at[:3].set((batch["label"][:3] + 1) % 3)})
    for other in (moved_b, relabel):
        for x, y in zip(_leaves(base, "a"), _leaves(other, "a")):
            np.testing.assert_array_equal(x, y)
    assert max(np.abs(np.asarray(x - y)).max()
               for x, y in zip(_leaves(base, "b"), _leaves(relabel, "b"))) > 0


@pytest.mark.slow
def test_phase_two_starts_from_the_phase_one_result_with_a_fresh_optimiser(key):
    """After exactly phase1_steps steps, the first phase-2 step equals a fresh Adam step at
    phase2_lr on the augmented fused loss, taken from the phase-1 parameters."""
    phase1, lr2 = 3, 1e-4
    mc = UmeMmaConfig(phase1_steps=phase1, phase2_lr=lr2)
    config = _config(mc, lr=1e-2)
    # Dropout on, so that the step's forward pass must be the training one (train=True).
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, dropout=0.5))
    method = methods.make(config, SPEC)
    batch = random_batch(key)
    state = init = method.init(jax.random.key(1), batch)
    assert schedule(method.phases, config.train.steps) == (Span(0, 0, phase1), Span(1, phase1, 10))
    assert all(p.enter is None for p in method.phases)
    step1, step2 = (jax.jit(p.step) for p in method.phases)
    for _ in range(phase1):
        state, metrics = step1(state, batch)
        assert float(metrics["phase"]) == 1.0
    assert all(np.abs(np.asarray(x - y)).max() > 1e-3 for x, y in zip(
        jax.tree.leaves(init.params), jax.tree.leaves(state.params)))  # phase 1 trained all
    # Phase 1 left the phase-2 optimiser state as init made it.
    jax.tree.map(np.testing.assert_array_equal, state.opt_state[1], init.opt_state[1])
    new, metrics = step2(state, batch)
    jax.tree.map(np.testing.assert_array_equal, new.opt_state[0], state.opt_state[0])
    assert float(metrics["phase"]) == 2.0
    # By hand: the same augmentation key, the fused loss, a fresh optax.adam(lr2).
    keys = step_keys(state, "prepare", "dropout")
    aug = ume_mma.augment_batch(batch, keys["prepare"], 0.3, SPEC.modalities)
    model = ume_mma.ensemble_net(config, SPEC)

    def fused(params):
        (out, _), _ = model.apply(params, state.model_state, aug["inputs"], aug["present"],
                                  train=True, key=keys["dropout"])
        return losses.per_example("classification", out, aug["label"]).mean()

    grads = jax.grad(fused)(state.params)
    tx = optax.adam(lr2)
    updates, _ = tx.update(grads, tx.init(state.params), state.params)
    expected = optax.apply_updates(state.params, updates)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=0, atol=1e-7),
                 new.params, expected)


def test_each_phase_builds_its_optimiser_for_its_own_length():
    """tx1 spans phase 1 and tx2 phase 2 at phase2_lr, so a schedule decays over its own phase;
    each is at least one step long, so a user's optimiser factory (``tx=``, called as the
    method's own optimisers are built) never gets 0 steps: without phase 1 (``pretrain=False``,
    at optim.lr) or without phase 2 (``phase1_steps == train.steps``)."""
    lr, lr2 = 1e-3, 1e-4
    cases = [(UmeMmaConfig(phase1_steps=3, phase2_lr=lr2), [(3, lr), (7, lr2)]),
             (UmeMmaConfig(pretrain=False, phase2_lr=lr2), [(1, lr), (10, lr)]),
             (UmeMmaConfig(phase1_steps=10, phase2_lr=lr2), [(10, lr), (1, lr2)])]
    for mc, expected in cases:
        seen = []

        def factory(optim, total_steps):
            seen.append((total_steps, optim.lr))
            return optax.sgd(optim.lr)

        methods.make(_config(mc, steps=10, lr=lr), SPEC, tx=factory)
        assert seen == expected, mc


def test_frozen_encoders_phase_two_step_advances_the_step_and_its_optimiser(key):
    """freeze_encoders keeps the encoders from the step's update, not the rest of the new state:
    the step count and phase 2's optimiser state advance, the heads move, the encoders stay."""
    method = methods.make(_config(UmeMmaConfig(phase1_steps=1, freeze_encoders=True)), SPEC)
    batch = random_batch(key)
    state, _ = jax.jit(method.phases[0].step)(method.init(jax.random.key(1), batch), batch)
    new, _ = jax.jit(method.phases[1].step)(state, batch)
    assert int(new.step) == int(state.step) + 1
    changed = [np.any(np.asarray(x) != np.asarray(y)) for x, y in
               zip(jax.tree.leaves(state.opt_state[1]), jax.tree.leaves(new.opt_state[1]))]
    assert any(changed)
    for path, old in jax.tree_util.tree_leaves_with_path(state.params):
        moved = np.any(np.asarray(old) != np.asarray(_at(new.params, path)))
        assert moved != ume_mma.is_encoder(path), jax.tree_util.keystr(path)


def _at(tree, path):
    """The leaf of ``tree`` at a key path of ``jax.tree_util.tree_leaves_with_path``."""
    for entry in path:
        tree = tree[getattr(entry, "key", getattr(entry, "idx", None))]
    return tree


@pytest.mark.slow
def test_frozen_encoders_stay_bit_identical_through_phase_two(key):
    """freeze_encoders: encoder parameters and BatchNorm statistics (sound CNN) after phase 2
    equal the phase-1 result bit for bit; the heads still train."""
    spec = DatasetSpec("toy", ("a", "b"), ((20, 20, 1), (5,)), "classification", 3)
    config = _config(UmeMmaConfig(phase1_steps=2, freeze_encoders=True))
    config = dataclasses.replace(config, model=dataclasses.replace(
        config.model, encoders=("sound_cnn", "mlp")))  # the sound CNN: BatchNorm statistics
    method = methods.make(config, spec)
    batch = random_batch(key, spec)
    state = method.init(jax.random.key(1), batch)
    step1, step2 = (jax.jit(p.step) for p in method.phases)
    for _ in range(2):
        state, _ = step1(state, batch)
    after_phase1 = state
    for _ in range(3):
        state, _ = step2(state, batch)

    def split(params):
        parts = {True: [], False: []}
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            parts[ume_mma.is_encoder(path)].append(leaf)
        return parts

    old, new = split(after_phase1.params), split(state.params)
    assert len(old[True]) == 16 and len(old[False]) == 4  # 3 convs + 3 norms + 2 fcs; 2 heads
    for x, y in zip(old[True], new[True]):
        np.testing.assert_array_equal(x, y)
    assert jax.tree.leaves(after_phase1.model_state)  # BatchNorm statistics exist
    jax.tree.map(np.testing.assert_array_equal, after_phase1.model_state, state.model_state)
    assert all(np.abs(np.asarray(x - y)).max() > 0 for x, y in zip(old[False], new[False]))


def test_naive_is_ume_mma_without_pretraining_or_augmentation(key):
    """Two steps of the naive baseline equal two steps of ume_mma(pretrain=False, augment=False)."""
    batch = random_batch(key)
    batch["present"] = batch["present"].at[:2, 0].set(False)
    batch["inputs"]["a"] = batch["inputs"]["a"].at[:2].set(0.0)  # the batch contract
    states = []
    for mc in (MethodConfig(name="naive"),
               UmeMmaConfig(phase1_steps=5, pretrain=False, augment=False)):
        method = methods.make(_config(mc), SPEC)
        # ume_mma without pretraining: its phase 1 gets no steps, phase 2 runs throughout.
        (span,) = schedule(method.phases, 10)
        assert (span.start, span.end) == (0, 10)
        state = method.init(jax.random.key(1), batch)
        for _ in range(2):
            state, _ = method.phases[span.index].step(state, batch)
        states.append(state.params)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), *states)


def test_bad_switches_fail_with_one_line():
    with pytest.raises(UserError, match="phase1_steps"):
        methods.make(_config(UmeMmaConfig(phase1_steps=11), steps=10), SPEC)
    with pytest.raises(UserError, match="freeze_encoders"):
        methods.make(_config(UmeMmaConfig(pretrain=False, freeze_encoders=True)), SPEC)


def test_missing_detection_ignores_heads_that_predict_missing():
    """Heads whose argmax is the "missing" class C are left out of the mean of the first C
    logits; with every head saying "missing", all heads are averaged."""
    # C = 2 classes + "missing"; M = 3 heads; rows: all detect, head 1 missing, all missing.
    logits = jnp.array([
        [[3.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 1.0, 0.0]],
        [[3.0, 1.0, 0.0], [9.0, 7.0, 10.0], [1.0, 2.0, 0.0]],
        [[0.0, 1.0, 5.0], [2.0, 0.0, 4.0], [1.0, 1.0, 3.0]],
    ])
    out = missing_detection.detect_and_fuse(logits)
    np.testing.assert_allclose(out, [[4 / 3, 4 / 3], [2.0, 1.5], [1.0, 2 / 3]], rtol=1e-6)


def test_missing_detection_targets_the_missing_class_where_a_modality_is_absent(key):
    """Training: head m's target is the label where m is present, class C where it is not."""
    mc = MissingDetectionConfig(dropout_p=0.0)
    method = methods.make(_config(mc), SPEC)
    batch = random_batch(key)
    batch["present"] = batch["present"].at[:3, 0].set(False)
    batch["inputs"]["a"] = batch["inputs"]["a"].at[:3].set(0.0)
    state = method.init(jax.random.key(1), batch)
    _, metrics = method.train_step(state, batch)
    model = ume_mma.ensemble_net(_config(mc), SPEC, num_classes=4)
    (_, aux), _ = model.apply(state.params, state.model_state, batch["inputs"], batch["present"],
                              train=False)
    target = batch["label"].at[:3].set(3)
    expected = losses.per_example("classification", aux["a/logits"], target).mean()
    np.testing.assert_allclose(metrics["loss_a"], expected, rtol=1e-5)


# ----------------------------------------------------------------------------------------------
# Short runs on three mfeat views (150 steps, 1 seed). Measured (2-core CPU, seed 0): ume_mma
# (60 uni-modal + 90 fine-tuning steps) 0.960 with all three views and 0.948 / 0.903 / 0.958 on
# fac / kar / pix alone; naive late fusion 0.973 with all views but 0.858 / 0.438 / 0.923 alone.
# ----------------------------------------------------------------------------------------------


def _mfeat_run(name, tmp_path):
    config = config_lib.override(config_lib.load(f"configs/mfeat/{name}.py:quick"), [
        "data.views=fac,kar,pix", "train.steps=150", "train.log_every=50",
        "train.checkpoint_every=150"])
    return train.train(config, tmp_path / name)["subsets"]


@pytest.mark.slow
def test_ume_mma_keeps_single_views_working_where_naive_fusion_fails(tmp_path):
    ume, naive = _mfeat_run("ume_mma", tmp_path), _mfeat_run("naive", tmp_path)
    singles = ("fac", "kar", "pix")
    assert ume["fac+kar+pix"]["accuracy"] >= 0.93
    assert min(ume[v]["accuracy"] for v in singles) >= 0.85
    mean = {name: np.mean([r[v]["accuracy"] for v in singles])
            for name, r in (("ume", ume), ("naive", naive))}
    assert mean["ume"] > mean["naive"] + 0.1
