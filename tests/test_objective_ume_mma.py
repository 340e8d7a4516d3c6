"""UME-MMA's whole per-step objective of both phases against an independent float64 reference.

Li et al. 2023 (papers/003) section 3.3: phase 1 trains each uni-modal model alone,
L1 = sum_m mean_{b: present[b, m]} CE(g_m(f_m(x_bm)), y_b); phase 2 fine-tunes the late-fusion
ensemble o(x') = (1/M) sum_m g_m(f_m(x'_m)) on the augmented, zero-filled batch,
L2 = mean_{b: any present'} CE(o(x'), y_b), with its own optimiser at ``phase2_lr`` (appendix
B.1.1). The reference redoes the MLP encoders and linear heads from the parameters; the gradient
is read off one plain-SGD step, so the learning rate each phase uses is checked too.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.data import missing
from mmjax.methods.ume_mma import UmeMmaConfig
from objective_ref import (assert_close, assert_trees_close, cross_entropy, linear, masked_mean,
                           mlp_encoder, pure, sgd, sgd_gradient, step_key, to64)
from toy import TOY_SPEC

MODS = TOY_SPEC.modalities
# Every masking rule: complete rows, each modality missing, each modality alone, an empty row.
PRESENT = np.array([[1, 1, 1], [0, 1, 1], [1, 0, 1], [1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1],
                    [0, 0, 0], [1, 1, 1]], bool)
LR1, LR2 = 0.1, 0.03


def _setup(**method):
    config = ExperimentConfig(
        method=UmeMmaConfig(phase1_steps=1, phase2_lr=LR2, **method),
        model=ModelConfig(hidden=5, feature_dim=4), optim=sgd(LR1),
        train=TrainConfig(steps=3, batch_size=len(PRESENT)))
    method = methods.make(config, TOY_SPEC)
    rng = np.random.default_rng(0)
    # Missing entries hold garbage: the step must zero-fill them (section 3.3, zero substitute).
    batch = {"inputs": {m: jnp.asarray(rng.normal(size=(len(PRESENT), *s)) * 3.0)
                        for m, s in zip(MODS, TOY_SPEC.shapes)},
             "present": jnp.asarray(PRESENT),
             "label": jnp.asarray(rng.integers(0, 3, len(PRESENT)))}
    state = to64(method.init(jax.random.key(0), batch))
    return method, state, to64(batch)


def _unimodal_logits(p, inputs, present):
    """g_m(f_m(x_m)) of every modality on the zero-filled inputs, ``[M][B, C]``."""
    return [linear(p["unimodal"][m], mlp_encoder(p["encoders"][m],
                                                 inputs[m] * present[:, c:c + 1]))
            for c, m in enumerate(MODS)]


def _phase1_loss(p, batch):
    """L1: the uni-modal losses summed, each over the samples that have its modality."""
    present = batch["present"]
    logits = _unimodal_logits(p, batch["inputs"], present)
    return sum(masked_mean(cross_entropy(lg, batch["label"]), present[:, c])
               for c, lg in enumerate(logits))


def _phase2_loss(p, batch, present):
    """L2 on the augmented mask ``present``: CE of the mean of all M uni-modal outputs."""
    fused = sum(_unimodal_logits(p, batch["inputs"], present)) / len(MODS)
    return masked_mean(cross_entropy(fused, batch["label"]), present.any(-1))


def test_phase_one_is_the_sum_of_masked_unimodal_losses_with_the_first_optimiser():
    with jax.enable_x64(True):
        method, state, batch = _setup()
        new, metrics = method.phases[0].step(state, batch)
        p = pure(state.params)
        expected, grad = jax.value_and_grad(_phase1_loss)(p, batch)
        assert_close(metrics["loss"], expected, 1e-6, "L1")
        for c, m in enumerate(MODS):
            assert_close(metrics[f"loss_{m}"], masked_mean(cross_entropy(
                _unimodal_logits(p, batch["inputs"], batch["present"])[c], batch["label"]),
                batch["present"][:, c]), 1e-6, m)
        assert_trees_close(sgd_gradient(state.params, new.params, LR1), grad, 1e-6, "grad L1")


@pytest.mark.parametrize("augment", [True, False])
def test_phase_two_is_the_fused_loss_on_the_augmented_zero_filled_batch(augment):
    """Phase 2 at its first step: the mask is ``augmentation_dropout`` of the batch's mask with
    this step's "prepare" key (p = 0.3; no augmentation: the mask itself), the update uses
    ``phase2_lr``."""
    with jax.enable_x64(True):
        method, state, batch = _setup(augment=augment)
        state = state.replace(step=jnp.ones((), jnp.int32))  # phase 2 starts at phase1_steps
        new, metrics = method.phases[1].step(state, batch)
        present = batch["present"]
        if augment:
            present = missing.augmentation_dropout(step_key(state, 0, 2), present, 0.3)
            assert (np.asarray(present) != PRESENT).any()  # the key drops something here
        expected, grad = jax.value_and_grad(_phase2_loss)(pure(state.params), batch, present)
        assert_close(metrics["loss"], expected, 1e-6, "L2")
        assert_trees_close(sgd_gradient(state.params, new.params, LR2), grad, 1e-6, "grad L2")
