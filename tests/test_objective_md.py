"""Whole-objective test of MD (Multimodal Dynamics): one training step's loss and its gradient
with respect to every parameter group equal an independent float64 reference, on a batch with
every missing pattern, in the paper's form (TCP target detached) and the released one.

Han et al., "Multimodal Dynamics: Dynamical Fusion for Trustworthy Multimodal Classification",
CVPR 2022, as the released ``MMDynamic.forward`` computes it (mmjax/methods/md.py): per modality
a sparse gate w_m = sigmoid(G_m x_m) on the flattened input, x'_m = x_m w_m, features
h_m = E_m(x'_m), unimodal logits z_m = C_m h_m with CE, the confidence c_m = F_m h_m regressed
on the true-class probability TCP_m = softmax(z_m)_y (MSE; detached by default), and the fusion
head on [c_1 h_1, ..., c_M h_M]. L = CE(fused) + sum_m (CE_m + MSE_m + lambda mean(w_m)). A
missing modality's c_m is 0 in the fusion and its three terms average over the samples that
have it; the fused CE averages over samples with any modality.

The reference writes TCP as exp(-CE(z_m, y)) (the same number reached another way) and the
masks as plain products, never calling the method's helpers.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.methods.md import MdConfig
from objective_check import (ALL_PATTERNS_3, RTOL, assert_close, assert_tree_close,
                             cross_entropy, dense, jitter, make_batch, masked_mean, mlp_encoder,
                             mlp_head, pure, run_step, sgd, to_f64, value_and_grad)
from toy import TOY_SPEC

SPEC = TOY_SPEC  # a (5), b (3), c (4); K = 3 classes
MODS = SPEC.modalities
MODEL = ModelConfig(hidden=5, feature_dim=4, dropout=0.0)
PRESENT = np.concatenate([ALL_PATTERNS_3, np.ones((2, 3), bool)])


def objective(P, batch, detach_tcp, lam):
    """The MD objective of the module docstring, from the parameters as plain dicts."""
    x, present, y = batch["inputs"], np.asarray(batch["present"], np.float64), batch["label"]
    n = present.shape[0]
    total, fused_input = 0.0, []
    for c, m in enumerate(MODS):
        flat = x[m].reshape(n, -1)
        w = jax.nn.sigmoid(dense(P["gates"][m], flat))
        h = mlp_encoder(P["encoders"][m], flat * w)
        z = dense(P["classifiers"][m], h)
        conf = dense(P["confidences"][m], h)[:, 0]
        ce = cross_entropy(z, y)
        tcp = jnp.exp(-ce)
        if detach_tcp:
            tcp = jax.lax.stop_gradient(tcp)
        here = present[:, c]
        total = (total + masked_mean(ce, here) + masked_mean((conf - tcp) ** 2, here)
                 + lam * masked_mean(w.mean(1), here))
        fused_input.append(h * (conf * here)[:, None])
    fused = mlp_head(P["head"], jnp.concatenate(fused_input, -1))
    return total + masked_mean(cross_entropy(fused, y), present.any(1))


@pytest.mark.slow
@pytest.mark.parametrize("detach_tcp, lam", [(True, 1.0), (False, 0.3)],
                         ids=["paper", "released"])
def test_one_step_loss_and_gradient_equal_the_reference(detach_tcp, lam):
    with jax.enable_x64(True):
        config = ExperimentConfig(method=MdConfig(detach_tcp=detach_tcp, sparsity_weight=lam),
                                  model=MODEL, optim=sgd(), train=TrainConfig(steps=10))
        method = methods.make(config, SPEC)
        batch = make_batch(jax.random.key(0), SPEC, PRESENT)
        state = method.init(jax.random.key(1), batch)
        # Jittered: zero biases would give a zero-filled input exactly zero features.
        state = state.replace(params=jitter(to_f64(state.params), jax.random.key(2)))
        _, metrics, grads = run_step(method.train_step, state, batch)
        loss, want = value_and_grad(objective, pure(state.params), batch, detach_tcp, lam)
        assert_close(metrics["loss"], loss, RTOL)
        assert_tree_close(grads, want, RTOL)
        # The switch matters here: the other reading's gradient differs from this one.
        _, other = value_and_grad(objective, pure(state.params), batch, not detach_tcp, lam)
        diff = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(want),
                                                               jax.tree.leaves(other)))
        assert diff > 1e-4
