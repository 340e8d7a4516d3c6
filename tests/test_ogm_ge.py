"""OGM-GE: eq. 10's modulation coefficients and the gradient modulation rule."""

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.config import ExperimentConfig, ModelConfig, OptimConfig, TrainConfig
from mmjax.data.base import DatasetSpec
from mmjax.methods import ogm_ge

SPEC = DatasetSpec("toy", ("audio", "visual"), ((5,), (3,)), "classification", 3)


def test_coefficients_follow_eq10_for_two_modalities():
    # softmax probabilities of the true class: audio 0.8 and 0.6, visual 0.2 and 0.4
    pa = np.array([[0.8, 0.1, 0.1], [0.2, 0.6, 0.2]])
    pv = np.array([[0.2, 0.4, 0.4], [0.3, 0.4, 0.3]])
    logits = jnp.asarray(np.log(np.stack([pa, pv], 1)), jnp.float32)
    label = jnp.array([0, 1])
    k, rho = ogm_ge.modulation_coefficients(logits, label, jnp.ones((2, 2), bool), 0.5)
    s_a, s_v = 0.8 + 0.6, 0.2 + 0.4  # the released sums (ratios equal the means' ratios)
    np.testing.assert_allclose(np.asarray(rho), [s_a / s_v, s_v / s_a], rtol=1e-5)
    # audio dominates: k_a = 1 - tanh(alpha * rho_a), k_v = 1
    np.testing.assert_allclose(np.asarray(k), [1 - np.tanh(0.5 * s_a / s_v), 1.0], rtol=1e-5)


def test_modulate_scales_only_encoder_weight_gradients():
    grads = {"enc": {"encoders": {"audio": {"fc1": {"kernel": jnp.ones((4, 3)),
                                                    "bias": jnp.ones(3)}},
                                  "visual": {"fc1": {"kernel": jnp.ones((4, 3))}}},
                     "project": {"audio": {"kernel": jnp.ones((3, 2))}}},
             "head": {"kernel": jnp.ones((4, 3))}}
    k = jnp.array([0.25, 1.0])
    out = ogm_ge.modulate(grads, k, SPEC.modalities, None)
    np.testing.assert_array_equal(out["enc"]["encoders"]["audio"]["fc1"]["kernel"], 0.25)
    np.testing.assert_array_equal(out["enc"]["project"]["audio"]["kernel"], 0.25)
    np.testing.assert_array_equal(out["enc"]["encoders"]["audio"]["fc1"]["bias"], 1.0)
    np.testing.assert_array_equal(out["enc"]["encoders"]["visual"]["fc1"]["kernel"], 1.0)
    np.testing.assert_array_equal(out["head"]["kernel"], 1.0)
    # GE: noise with the std of the gradient before modulation (+1e-8), encoder weights only
    g = {"enc": {"encoders": {"audio": {"w": jnp.asarray(
        np.random.default_rng(0).normal(size=(200, 50)), jnp.float32)}}},
        "head": {"kernel": jnp.ones((4, 3))}}
    noisy = ogm_ge.modulate(g, jnp.array([0.5, 1.0]), SPEC.modalities, jax.random.key(0))
    diff = np.asarray(noisy["enc"]["encoders"]["audio"]["w"]) - 0.5 * np.asarray(
        g["enc"]["encoders"]["audio"]["w"])
    np.testing.assert_allclose(diff.std(), np.asarray(g["enc"]["encoders"]["audio"]["w"]).std(),
                               rtol=0.05)
    np.testing.assert_array_equal(noisy["head"]["kernel"], 1.0)


def test_unimodal_logits_split_the_linear_head():
    """fused = sum_m f_m, the bias split in M parts (the step's coefficients and update are
    pinned by test_objective_ogm_ge.py)."""
    config = ExperimentConfig(model=ModelConfig(hidden=8, feature_dim=8, dropout=0.0),
                              method=ogm_ge.OgmGeConfig(head_dim=4),
                              optim=OptimConfig(name="sgd", lr=0.1), train=TrainConfig(steps=4))
    method = ogm_ge.make(config, SPEC)
    ks = jax.random.split(jax.random.key(0), 2)
    batch = {"inputs": {"audio": jax.random.normal(ks[0], (6, 5)),
                        "visual": jax.random.normal(ks[1], (6, 3))},
             "present": jnp.ones((6, 2), bool), "label": jnp.array([0, 1, 2, 0, 1, 2])}
    state = method.init(jax.random.key(1), batch)
    # A bias that is not zero (init's is), so that its split in M parts is seen.
    replaced = []

    def set_bias(path, x):
        if not jax.tree_util.keystr(path).startswith("['head']['bias']"):
            return x
        replaced.append(path)
        return jnp.array([0.3, -0.2, 0.5], x.dtype)

    state = state.replace(params=jax.tree_util.tree_map_with_path(set_bias, state.params))
    assert len(replaced) == 1
    net = ogm_ge.ConcatLinearNet  # fused = sum of the unimodal logits (bias split in M parts)
    from mmjax.methods.base import NNXModel
    model = NNXModel(lambda rngs: net(SPEC, config.model, 4, rngs=rngs))
    (fused, uni), _ = model.apply(state.params, state.model_state, batch["inputs"],
                                  batch["present"], train=False)
    np.testing.assert_allclose(np.asarray(fused), np.asarray(uni.sum(1)), atol=1e-5)
    # An absent modality's input reaches neither output: its features are zeroed first.
    present = batch["present"].at[:2, 1].set(False)
    other = {**batch["inputs"], "visual": batch["inputs"]["visual"] + 5.0}
    outs = [model.apply(state.params, state.model_state, x, present, train=False)[0]
            for x in (batch["inputs"], other)]
    for a, b in zip(outs[0], outs[1]):
        np.testing.assert_array_equal(np.asarray(a)[:2], np.asarray(b)[:2])
        assert not np.array_equal(np.asarray(a)[2:], np.asarray(b)[2:])


def test_coefficients_average_over_each_modalitys_own_present_samples():
    """score_m is the mean of p_true over the samples that have modality m (unequal counts give
    other ratios than the sums'); a modality without a present sample scores 0, finitely; one
    modality alone gets a finite coefficient."""
    pa = np.array([[0.8, 0.1, 0.1], [0.2, 0.6, 0.2], [0.5, 0.25, 0.25]])
    pv = np.array([[0.2, 0.4, 0.4], [0.3, 0.4, 0.3], [0.9, 0.05, 0.05]])
    logits = jnp.asarray(np.log(np.stack([pa, pv], 1)), jnp.float32)
    label = jnp.array([0, 1, 0])
    present = jnp.array([[True, True], [True, False], [True, False]])
    _, rho = ogm_ge.modulation_coefficients(logits, label, present, 0.5)
    s_a, s_v = (0.8 + 0.6 + 0.5) / 3, 0.2 / 1
    np.testing.assert_allclose(np.asarray(rho), [s_a / s_v, s_v / s_a], rtol=1e-5)
    none = present.at[:, 1].set(False)
    k, rho = ogm_ge.modulation_coefficients(logits, label, none, 0.5)
    assert np.isfinite(np.asarray(k)).all() and float(rho[1]) == 0.0
    k, _ = ogm_ge.modulation_coefficients(logits[:, :1], label, present[:, :1], 0.5)
    assert np.isfinite(np.asarray(k)).all()


def test_conv_modulation_scales_only_convolution_kernels():
    """``which="conv"`` (released): encoder m's 4-d kernels only; its 2-d weights keep theirs."""
    grads = {"enc": {"encoders": {"audio": {"conv": {"kernel": jnp.ones((3, 3, 1, 2))},
                                            "fc": {"kernel": jnp.ones((4, 3))}}}}}
    out = ogm_ge.modulate(grads, jnp.array([0.25, 1.0]), SPEC.modalities, None, which="conv")
    np.testing.assert_array_equal(out["enc"]["encoders"]["audio"]["conv"]["kernel"], 0.25)
    np.testing.assert_array_equal(out["enc"]["encoders"]["audio"]["fc"]["kernel"], 1.0)


def test_released_epoch_window_and_predict():
    """``modulation_epoch_steps`` (released): the window is closed, in epochs: with 2 steps per
    epoch, epochs 1..1 modulate steps 2 and 3 only, epochs 0..0 steps 0 and 1, and the default
    end is ``steps // epoch // 2`` (8 steps: epochs 0..2, steps 0 to 5). A modulated step reports a
    coefficient below 1 (one of two modalities always dominates), an unmodulated one 1.
    ``predict`` gives the fused logits."""
    ks = jax.random.split(jax.random.key(3), 2)
    batch = {"inputs": {"audio": jax.random.normal(ks[0], (6, 5)),
                        "visual": jax.random.normal(ks[1], (6, 3))},
             "present": jnp.ones((6, 2), bool), "label": jnp.array([0, 1, 2, 0, 1, 2])}
    for start, end, active in ((1, 1, {2, 3}), (0, 0, {0, 1}), (0, -1, {0, 1, 2, 3, 4, 5})):
        config = ExperimentConfig(
            model=ModelConfig(hidden=8, feature_dim=8, dropout=0.0),
            method=ogm_ge.OgmGeConfig(head_dim=4, modulation_epoch_steps=2,
                                      modulation_start=start, modulation_end=end),
            optim=OptimConfig(name="sgd", lr=0.1), train=TrainConfig(steps=8))
        method = ogm_ge.make(config, SPEC)
        state = method.init(jax.random.key(1), batch)
        step = jax.jit(method.train_step)
        seen = set()
        for t in range(8):
            state, metrics = step(state, batch)
            if min(float(metrics["coeff_audio"]), float(metrics["coeff_visual"])) < 1.0:
                seen.add(t)
        assert seen == active, (start, end)
    logits = jax.jit(method.predict)(state, batch)
    assert logits.shape == (6, 3) and np.isfinite(np.asarray(logits)).all()

