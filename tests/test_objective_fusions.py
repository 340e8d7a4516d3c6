"""Whole-objective tests of the supervised fusion baselines (issue 21): for every fusion
registered in ``mmjax.methods`` (``baselines.py``, ``film.py``, ``gated.py``, ``ume_mma``'s naive
ensemble, ``missing_detection.py``), one training step's loss and its gradient with respect to
every parameter group equal an independent float64 reference of the baseline's defining equations,
on a batch holding every pattern of three modalities (the empty one included), at parameters
jittered off the initialisation (zero biases would hide a forgotten feature mask).

The references are written from the rules the modules' docstrings cite: concat / sum / late /
upper / lower bound / multi-task (``mmjax/methods/baselines.py`` table), modality dropout (UME-MMA
section 3.3), the naive late-fusion ensemble (UME-MMA Table 1), missing detection (UME-MMA section
4.2 (3)), FiLM (Perez et al. AAAI 2018 eqs. 1-3 as MLA appendix A.2 uses it) and bilinear gated
fusion (Kiela et al. AAAI 2018 as MLA appendix A.2 specifies it).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, MethodConfig, ModelConfig, TrainConfig
from mmjax.data import missing
from mmjax.methods.baselines import (AugmentationConfig, LowerBoundConfig, MultiTaskConfig,
                                     UpperBoundConfig)
from mmjax.methods.film import FilmConfig
from mmjax.methods.gated import GatedConfig
from mmjax.methods.missing_detection import MissingDetectionConfig
from objective_check import (ALL_PATTERNS_3, assert_close, assert_tree_close, cross_entropy,
                             dense, jitter, make_batch, masked_mean, mlp_encoder, mlp_head, pure,
                             run_step, sgd, step_keys, to_f64, value_and_grad)
from toy import TOY_SPEC

SPEC = TOY_SPEC  # modalities a (5), b (3), c (4); 3 classes
MODS = SPEC.modalities
MODEL = ModelConfig(hidden=6, feature_dim=4, dropout=0.0)
MULTI_TASK_WEIGHT = 0.7
DROPOUT_P = 0.3
# Every pattern of three modalities and four more complete samples for the modality dropout.
PRESENT = np.concatenate([ALL_PATTERNS_3, np.ones((4, 3), bool)])


def _features(P, x, mods=MODS):
    return {m: mlp_encoder(P["encoders"][m], x[m]) for m in mods}


def _column(present, m):
    return present[:, MODS.index(m), None].astype(jnp.float64)


def _concat_logits(P, x, present, mods=MODS):
    """Concat (intermediate) fusion: ``head([f_1 p_1; ...; f_M p_M])``."""
    f = _features(P, x, mods)
    return mlp_head(P["head"], jnp.concatenate([f[m] * _column(present, m) for m in mods], -1))


def _dropped(state, batch, mode="one", p=DROPOUT_P):
    """UME-MMA section 3.3 modality dropout on the step's "prepare" key (keys: prepare, dropout)
    and the inputs zero-filled where dropped; the sampler is ``mmjax.data.missing``'s, tested in
    ``test_missing.py``."""
    present = missing.augmentation_dropout(step_keys(state, 2)[0], batch["present"], p, mode=mode)
    x = {m: batch["inputs"][m] * _column(present, m) for m in MODS}
    return x, present


def concat(P, state, batch):
    """Concat fusion, CE over every sample with a modality."""
    x, present, y = batch["inputs"], batch["present"], batch["label"]
    return masked_mean(cross_entropy(_concat_logits(P, x, present), y), present.any(1))


def upper_bound(P, state, batch):
    """Concat fusion, CE over the complete samples only."""
    x, present, y = batch["inputs"], batch["present"], batch["label"]
    return masked_mean(cross_entropy(_concat_logits(P, x, present), y), present.all(1))


def lower_bound(P, state, batch):
    """Modality b's encoder and head alone, CE where b is present."""
    x, present, y = batch["inputs"], batch["present"], batch["label"]
    logits = _concat_logits(P, x, present, mods=("b",))
    return masked_mean(cross_entropy(logits, y), present[:, 1])


def sum_fusion(P, state, batch):
    """``head(sum_m p_m (W_m f_m + b_m))``."""
    x, present, y = batch["inputs"], batch["present"], batch["label"]
    f = _features(P, x)
    fused = sum(dense(P["project"][m], f[m]) * _column(present, m) for m in MODS)
    return masked_mean(cross_entropy(mlp_head(P["head"], fused), y), present.any(1))


def late(P, state, batch):
    """The mean of the unimodal logits over the present modalities."""
    x, present, y = batch["inputs"], batch["present"], batch["label"]
    f = _features(P, x)
    total = sum(dense(P["unimodal"][m], f[m]) * _column(present, m) for m in MODS)
    count = jnp.maximum(present.sum(1, keepdims=True), 1).astype(jnp.float64)
    return masked_mean(cross_entropy(total / count, y), present.any(1))


def augmentation(P, state, batch):
    """Concat fusion on the modality-dropped batch (never all of a sample's modalities)."""
    x, present = _dropped(state, batch)
    return masked_mean(cross_entropy(_concat_logits(P, x, present), batch["label"]),
                       batch["present"].any(1))


def multi_task(P, state, batch):
    """``L_fused + w sum_m mean_{present m} CE(g_m(f_m), y)``."""
    x, present, y = batch["inputs"], batch["present"], batch["label"]
    fused = masked_mean(cross_entropy(_concat_logits(P, x, present), y), present.any(1))
    f = _features(P, x)
    return fused + MULTI_TASK_WEIGHT * sum(
        masked_mean(cross_entropy(dense(P["unimodal"][m], f[m]), y), present[:, c])
        for c, m in enumerate(MODS))


def naive(P, state, batch):
    """UME-MMA's naive ensemble: ``(1/M) sum_m g_m(f_m(x_m))`` over every modality, the missing
    ones fed their zero input (``present`` unread by the model), CE over samples with one."""
    x, present, y = batch["inputs"], batch["present"], batch["label"]
    f = _features(P, x)
    logits = sum(dense(P["unimodal"][m], f[m]) for m in MODS) / len(MODS)
    return masked_mean(cross_entropy(logits, y), present.any(1))


def missing_detection(P, state, batch):
    """UME-MMA section 4.2 (3): C + 1 classes per head, target C where the (dropped) modality is
    missing; ``sum_m mean_b CE(z_bm, t_bm)`` over samples with a modality."""
    x, present = _dropped(state, batch)
    f = _features(P, x)
    valid = batch["present"].any(1)
    targets = jnp.where(present, batch["label"][:, None], SPEC.num_classes)
    return sum(masked_mean(cross_entropy(dense(P["unimodal"][m], f[m]), targets[:, c]), valid)
               for c, m in enumerate(MODS))


def film(P, state, batch):
    """FiLM (Perez et al. eqs. 1-3), condition c: ``[gamma, beta] = W f_c p_c + b``,
    ``z_m = gamma * p_m (W_m f_m p_m + b_m) + beta`` for m in (a, b), ``head([z_a; z_b])``."""
    x, present, y = batch["inputs"], batch["present"], batch["label"]
    f = {m: v * _column(present, m) for m, v in _features(P, x).items()}
    gamma, beta = jnp.split(dense(P["film"], f["c"]), 2, axis=-1)
    z = [gamma * dense(P["project"][m], f[m]) * _column(present, m) + beta for m in ("a", "b")]
    return masked_mean(cross_entropy(mlp_head(P["head"], jnp.concatenate(z, -1)), y),
                       present.any(1))


def gated(P, state, batch):
    """Bilinear gated fusion, gate c: ``h_m = p_m (W_m f_m + b_m)``,
    ``head([sigmoid(h_c) h_a; sigmoid(h_c) h_b])``."""
    x, present, y = batch["inputs"], batch["present"], batch["label"]
    f = _features(P, x)
    h = {m: dense(P["project"][m], f[m]) * _column(present, m) for m in MODS}
    gate = jax.nn.sigmoid(h["c"])
    fused = jnp.concatenate([gate * h["a"], gate * h["b"]], -1)
    return masked_mean(cross_entropy(mlp_head(P["head"], fused), y), present.any(1))


CASES = {
    "concat": (MethodConfig(name="concat"), concat),
    "sum": (MethodConfig(name="sum"), sum_fusion),
    "late": (MethodConfig(name="late"), late),
    "upper_bound": (UpperBoundConfig(), upper_bound),
    "lower_bound": (LowerBoundConfig(modality="b"), lower_bound),
    "augmentation": (AugmentationConfig(dropout_p=DROPOUT_P), augmentation),
    "multi_task": (MultiTaskConfig(unimodal_weight=MULTI_TASK_WEIGHT), multi_task),
    "naive": (MethodConfig(name="naive"), naive),
    "missing_detection": (MissingDetectionConfig(dropout_p=DROPOUT_P), missing_detection),
    "film": (FilmConfig(), film),
    "bilinear_gated": (GatedConfig(), gated),
}


def test_every_registered_fusion_baseline_has_a_reference():
    """The fusion baselines of the registry are the ones this file pins (a new one must come
    with its reference)."""
    pinned = {name for name, entry in methods.REGISTRY.items()
              if entry.make.__module__ in ("mmjax.methods.baselines", "mmjax.methods.film",
                                           "mmjax.methods.gated",
                                           "mmjax.methods.missing_detection")}
    assert pinned | {"naive"} == set(CASES)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_one_step_loss_and_gradient_equal_the_reference(name):
    method_config, reference = CASES[name]
    with jax.enable_x64(True):
        config = ExperimentConfig(method=method_config, model=MODEL, optim=sgd(),
                                  train=TrainConfig(steps=4))
        method = methods.make(config, SPEC)
        batch = make_batch(jax.random.key(0), SPEC, PRESENT)
        state = method.init(jax.random.key(1), batch)
        state = state.replace(params=jitter(to_f64(state.params), jax.random.key(2)))
        _, metrics, grads = run_step(method.train_step, state, batch)
        P = pure(state.params)
        loss, want = value_and_grad(reference, P, state, batch)
        assert_close(metrics["loss"], loss)
        assert_tree_close(grads, want)
        if name in ("augmentation", "missing_detection"):
            dropped = _dropped(state, batch)[1]
            assert (np.asarray(dropped) != np.asarray(batch["present"])).any()  # it dropped
