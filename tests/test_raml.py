"""RAML: fusion weights (eq. 4), sparsity loss (eq. 3), the all-pattern training loss, switches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from mmjax import losses, methods
from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data import missing
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods import raml
from mmjax.methods.base import step_keys
from mmjax.methods.raml import RamlConfig

from toy import TOY_SPEC, assert_one_program_for_every_mask, random_batch

SPEC = TOY_SPEC


def _config(steps=10, dropout=0.0, **method):
    # Dropout 0 (by default) and MLP encoders (no BatchNorm): the shared-encoding augmentation is
    # then exactly the replicated zero-filled batch.
    return ExperimentConfig(method=RamlConfig(latent_dim=6, **method),
                            model=ModelConfig(hidden=8, feature_dim=4, dropout=dropout),
                            optim=OptimConfig(lr=1e-2, weight_decay=5e-4),
                            train=TrainConfig(steps=steps))


def test_weights_are_normalised_precisions_over_present_modalities(key):
    """w_m = (1/s_m^2) / sum_{k present} 1/s_k^2: positive on present modalities, zero on absent,
    summing to one per element; compared with the closed form in NumPy."""
    logvar = jax.random.normal(key, (5, 3, 4)) * 2.0
    mask = np.array([[1, 1, 1], [1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], bool)
    w = np.asarray(raml.precision_weights(logvar, jnp.asarray(mask)))
    prec = np.exp(-np.asarray(logvar, np.float64)) * mask[..., None]
    np.testing.assert_allclose(w, prec / prec.sum(1, keepdims=True), rtol=1e-5)
    assert (w[mask] > 0).all() and (w[~mask] == 0).all()
    np.testing.assert_allclose(w.sum(1), 1.0, rtol=1e-6)
    empty = raml.precision_weights(logvar[:1], jnp.zeros((1, 3), bool))
    assert np.asarray(empty).sum() == 0 and np.isfinite(np.asarray(empty)).all()


def test_one_present_modality_gives_its_mean_and_equal_sigmas_the_plain_mean(key):
    """Eq. (4): with one modality present h = mu_m exactly; with equal sigma h = mean of mus."""
    k1, k2 = jax.random.split(key)
    mu = jax.random.normal(k1, (4, 3, 5))
    logvar = jax.random.normal(k2, (4, 3, 5)) * 3.0
    only_b = jnp.asarray(np.array([[0, 1, 0]] * 4, bool))
    np.testing.assert_array_equal(raml.fuse(raml.precision_weights(logvar, only_b), mu),
                                  mu[:, 1])
    equal = jnp.full((4, 3, 5), 0.7)
    two = jnp.asarray(np.array([[1, 0, 1]] * 4, bool))
    np.testing.assert_allclose(raml.fuse(raml.precision_weights(equal, two), mu),
                               (mu[:, 0] + mu[:, 2]) / 2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(raml.fuse(raml.identical_weights(two, 5), mu),
                               (mu[:, 0] + mu[:, 2]) / 2, rtol=1e-6, atol=1e-7)
    # A sample with no modality: every weight 0 (not 0 / 0), so h = 0.
    none = jnp.zeros((4, 3), bool)
    for weights in (raml.identical_weights(none, 5), raml.precision_weights(logvar, none)):
        np.testing.assert_array_equal(weights, 0.0)


def test_sparsity_loss_equals_a_hand_computed_value():
    """Eq. (3), M = 2, D = 2. Element 0: sigma^2 = (1, 3) -> weights (3/4, 1/4); element 1:
    sigma^2 = (2, 2) -> (1/2, 1/2). mu_1 = (1, -2), mu_2 = (4, 6):
    L^D = 3/4*1 + 1/2*2 + 1/4*4 + 1/2*6 = 0.75 + 1 + 1 + 3 = 5.75."""
    logvar = jnp.log(jnp.array([[[1.0, 2.0], [3.0, 2.0]]]))
    mu = jnp.array([[[1.0, -2.0], [4.0, 6.0]]])
    w = raml.precision_weights(logvar, jnp.ones((1, 2), bool))
    np.testing.assert_allclose(raml.sparsity_loss(w, mu), [5.75], rtol=1e-6)


def _literal_losses(config, state, batch):
    """L^M and L^D of Algorithm 1 on the literally replicated batch: every non-empty pattern,
    dropped inputs zero-filled, evaluated through ``make_inspect`` (neither term samples)."""
    inspect = raml.make_inspect(config, SPEC)
    _, masks = missing.all_subsets(SPEC.modalities)
    lm, ld = [], []
    for mask in masks:
        present = jnp.broadcast_to(jnp.asarray(mask), batch["present"].shape)
        copy = {**batch, "present": present,
                "inputs": missing.apply(batch["inputs"], present, SPEC.modalities)}
        out = inspect(state, copy)
        lm.append(losses.per_example("classification", out["logits"], batch["label"]))
        w_all = raml.precision_weights(out["logvar"], jnp.ones_like(present))
        ld.append(raml.sparsity_loss(w_all, out["mu"]))
    return [float(jnp.mean(jnp.stack(v))) for v in (lm, ld)]


def test_training_loss_is_algorithm_1_over_every_zero_filled_pattern(key):
    """loss_fused and loss_sparsity of train_step equal the mean over the 7 literally
    replicated, zero-filled copies of the batch (eqs. 3-5): the shared-encoding augmentation is
    the replicated batch. Log-variances are moved off 0 so the fusion weights are unequal. L^U
    (reparameterised samples) and the total are pinned in tests/test_objective_raml.py."""
    config = _config(lambda_unimodal=0.7, lambda_sparsity=0.3)
    method = methods.make(config, SPEC)
    batch = random_batch(key)
    state = method.init(jax.random.key(1), batch)
    params = jax.tree_util.tree_map_with_path(
        lambda p, x: x + jax.random.normal(jax.random.key(2), x.shape)
        if "logvar_heads" in jax.tree_util.keystr(p) else x, state.params)
    state = state.replace(params=params)
    lm, ld = _literal_losses(config, state, batch)
    _, metrics = jax.jit(method.train_step)(state, batch)
    np.testing.assert_allclose(float(metrics["loss_fused"]), lm, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["loss_sparsity"]), ld, rtol=1e-5)


@pytest.mark.slow
def test_unimodal_loss_present_only_drops_the_zero_input_terms(key):
    """``unimodal_loss="present"`` counts only kept modalities: over the 7 patterns each modality
    is kept in 4, so the sum is 4/7 of the all-kept sum; ``"all"`` adds the zero-input terms."""
    batch = random_batch(key)
    results = {}
    for mode in ("all", "present"):
        config = _config(unimodal_loss=mode)
        method = methods.make(config, SPEC)
        state = method.init(jax.random.key(1), batch)
        params = jax.tree_util.tree_map_with_path(
            lambda p, x: x - 40.0 if "logvar_heads" in jax.tree_util.keystr(p)
            and "bias" in jax.tree_util.keystr(p) else x, state.params)
        state = state.replace(params=params)
        results[mode] = float(method.train_step(state, batch)[1]["loss_unimodal"])
        if mode == "present":
            none = raml.make_inspect(config, SPEC)(state, batch)
            module = nnx.merge(raml.raml_net(config, SPEC).graphdef, state.params,
                               state.model_state)
            full = sum(losses.per_example("classification",
                                          module.predict(m, none["mu"][:, c], deterministic=True),
                                          batch["label"]).mean()
                       for c, m in enumerate(SPEC.modalities))
            np.testing.assert_allclose(results[mode], 4 / 7 * float(full), rtol=1e-5)
    assert results["all"] > results["present"] + 1e-3


def test_predict_ignores_absent_inputs_and_one_modality_predicts_from_its_mean(key):
    """A missing modality's input does not reach the output; with only b present the logits are
    f(mu_b) (eq. 4 then eq. 5)."""
    config = _config()
    method = methods.make(config, SPEC)
    batch = random_batch(key)
    state = method.init(jax.random.key(1), batch)
    present = batch["present"].at[:, 0].set(False).at[:, 2].set(False)
    one = {**batch, "present": present}
    other = {**one, "inputs": {**batch["inputs"], "a": batch["inputs"]["a"] * 100.0}}
    np.testing.assert_array_equal(method.predict(state, one), method.predict(state, other))
    out = raml.make_inspect(config, SPEC)(state, one)
    module = nnx.merge(raml.raml_net(config, SPEC).graphdef, state.params, state.model_state)
    np.testing.assert_allclose(out["logits"], module.predict("b", out["mu"][:, 1],
                                                             deterministic=True), rtol=1e-6)


def test_weighting_ablations_of_table_v(key):
    """identical: 1/|present| everywhere; fixed: one weight per (modality, element) shared by
    all samples, normalised over the present modalities; adaptive: varies across samples."""
    batch = random_batch(key)
    present = batch["present"].at[:3, 1].set(False)
    batch = {**batch, "present": present}
    weights = {}
    for mode in raml.WEIGHTINGS:
        config = _config(weighting=mode)
        method = methods.make(config, SPEC)
        state = method.init(jax.random.key(1), batch)
        state, _ = method.train_step(state, batch)  # move the fixed logits away from zero
        weights[mode] = np.asarray(raml.make_inspect(config, SPEC)(state, batch)["weights"])
    p = np.asarray(present)
    np.testing.assert_allclose(weights["identical"],
                               np.broadcast_to((p / p.sum(1, keepdims=True))[..., None],
                                               weights["identical"].shape), rtol=1e-6)
    fixed = weights["fixed"]
    np.testing.assert_allclose(fixed[3:], np.broadcast_to(fixed[3], fixed[3:].shape), rtol=1e-6)
    assert np.abs(fixed[3] - 1 / 3).max() > 1e-4  # learned, not identical
    assert (fixed[:3, 1] == 0).all()
    np.testing.assert_allclose(fixed.sum(1), 1.0, rtol=1e-6)
    assert np.abs(weights["adaptive"][3:] - weights["adaptive"][3]).max() > 1e-4


def test_separate_predictors_have_one_head_per_modality_and_one_fused(key):
    """Figure 4's ablation: shared_predictor=False builds {fused, a, b, c}; the default one."""
    for shared, keys in ((True, {"shared"}), (False, {"fused", "a", "b", "c"})):
        config = _config(shared_predictor=shared)
        state = methods.make(config, SPEC).init(jax.random.key(1), random_batch(key))
        assert set(state.params["predictors"].keys()) == keys


@pytest.mark.slow
def test_no_recompilation_across_missing_patterns(key):
    """One compiled train_step and predict serve every present mask."""
    for augment in raml.AUGMENTS:
        assert_one_program_for_every_mask(
            methods.make(_config(augment=augment, num_patterns=2), SPEC), random_batch(key),
            SPEC.modalities)


def test_sampled_patterns_are_uniform_non_empty_subsets():
    """2^3 - 1 = 7 patterns each drawn with probability 1/7 (n = 70000: std 0.0013, tol 0.006),
    never empty, never restoring a missing modality."""
    present = jnp.ones((70000, 3), bool).at[:10, 0].set(False)
    pats = np.asarray(raml.sample_patterns(jax.random.key(0), 1, present))[0]
    assert pats.any(-1)[10:].all() and not pats[:10, 0].any()
    codes = (pats[10:] * np.array([1, 2, 4])).sum(-1)
    np.testing.assert_allclose(np.bincount(codes, minlength=8)[1:] / len(codes), 1 / 7,
                               atol=0.006)


@pytest.mark.slow
def test_training_reduces_the_loss_and_learns_a_separable_toy_task(key):
    """50 steps on a toy task whose label is in modality a: accuracy from a alone rises."""
    config = _config(steps=50)
    method = methods.make(config, SPEC)
    n = 64
    batch = random_batch(key, n=n)
    label = (batch["inputs"]["a"][:, 0] > 0).astype(jnp.int32)
    batch = {**batch, "label": label}
    state = method.init(jax.random.key(1), batch)
    step = jax.jit(method.train_step)
    first = None
    for _ in range(50):
        state, metrics = step(state, batch)
        first = first if first is not None else float(metrics["loss"])
    assert float(metrics["loss"]) < first
    only_a = {**batch, "present": batch["present"].at[:, 1:].set(False)}
    acc = (np.asarray(method.predict(state, only_a)).argmax(-1) == np.asarray(label)).mean()
    assert acc > 0.9


def test_bad_switches_fail_with_one_line():
    for bad in ({"weighting": "soft"}, {"augment": "some"}, {"unimodal_loss": "x"},
                {"lambda_sparsity": -1.0}, {"augment": "sampled", "num_patterns": 0}):
        with pytest.raises(UserError):
            methods.make(_config(**bad), SPEC)


MULTILABEL_SPEC = DatasetSpec("toy_multilabel", TOY_SPEC.modalities, TOY_SPEC.shapes, "multilabel",
                              4)


@pytest.mark.parametrize("spec", [TOY_SPEC, MULTILABEL_SPEC], ids=["classification", "multilabel"])
def test_fused_loss_is_the_training_forward_pass_with_the_steps_dropout_key(key, spec):
    """With dropout 0.5 in the encoders and in hidden-layer predictors, the step's L^M (eq. 4-5)
    and L^U (eq. 2) equal the training-mode (dropout on) forward pass drawn from the step's
    dropout key in the step's order: the encoders, the fused predictor, then each modality's
    (a complete batch, no augmentation); cross-entropy, or for multi-label targets the mean
    binary cross-entropy."""
    config = _config(dropout=0.5, augment="none", shared_predictor=False, predictor_hidden=8)
    method = methods.make(config, spec)
    batch = random_batch(key, spec)
    if spec.task == "multilabel":
        batch["label"] = (jax.random.uniform(key, (8, 4)) > 0.5).astype(jnp.float32)
    state = method.init(jax.random.key(1), batch)
    _, metrics = jax.jit(method.train_step)(state, batch)
    module = raml.raml_net(config, spec).bind(state.params, state.model_state)
    keys = step_keys(state, "dropout", "rho", "rho0", "patterns")  # the step's four streams
    rngs = nnx.Rngs(dropout=keys["dropout"])
    mu, logvar, mu0, logvar0 = module(batch["inputs"], zero_row=True, deterministic=False,
                                      rngs=rngs)
    h = raml.fuse(raml.precision_weights(logvar, batch["present"]), mu)
    logits = module.predict("fused", h, deterministic=False, rngs=rngs)

    def nll(logits):
        if spec.task == "multilabel":
            y = batch["label"]
            return -(y * jax.nn.log_sigmoid(logits)
                     + (1 - y) * jax.nn.log_sigmoid(-logits)).mean(-1)
        logp = jax.nn.log_softmax(logits, -1)
        return -jnp.take_along_axis(logp, batch["label"][:, None], -1)[:, 0]

    np.testing.assert_allclose(float(metrics["loss_fused"]), float(nll(logits).mean()), rtol=1e-5)
    assert not np.allclose(np.asarray(module.predict("fused", h, deterministic=True)),
                           np.asarray(logits))
    # L^U (eq. 2): each modality's sample h_m = mu_m + rho sigma_m through its own predictor,
    # dropout on (every modality is present, so no zero-input term enters).
    h_m = mu + jax.random.normal(keys["rho"], mu.shape) * jnp.exp(0.5 * logvar)
    h_0 = mu0[None] + jax.random.normal(keys["rho0"], mu.shape) * jnp.exp(0.5 * logvar0)[None]
    unimodal = 0.0
    for c, m in enumerate(spec.modalities):
        unimodal = unimodal + nll(module.predict(m, h_m[:, c], deterministic=False, rngs=rngs))
        module.predict(m, h_0[:, c], deterministic=False, rngs=rngs)  # drawn in the step's order
    np.testing.assert_allclose(float(metrics["loss_unimodal"]), float(unimodal.mean()),
                               rtol=1e-5)


def test_prediction_is_the_evaluation_forward_pass(key):
    """With dropout 0.5 (encoders and a hidden-layer predictor), predict is eq. 4 on the
    deterministic encodings through the deterministic fused predictor."""
    config = _config(dropout=0.5, predictor_hidden=8)
    method = methods.make(config, SPEC)
    batch = random_batch(key)
    batch["present"] = batch["present"].at[:3, 1].set(False)
    state = method.init(jax.random.key(1), batch)
    module = raml.raml_net(config, SPEC).bind(state.params, state.model_state)
    mu, logvar = module(batch["inputs"], deterministic=True)
    h = raml.fuse(raml.precision_weights(logvar, batch["present"]), mu)
    np.testing.assert_allclose(np.asarray(jax.jit(method.predict)(state, batch)),
                               np.asarray(module.predict("fused", h, deterministic=True)),
                               rtol=1e-5, atol=1e-6)
