"""Whole-objective tests of MMIN and CRA (issue 21): each training step's loss and its gradient
with respect to every parameter group equal an independent float64 reference of the papers'
objectives, and MMIN's two stages hand over as specified (teacher -> student).

MMIN: Zhao, Li, Jin, ACL 2021 (the paper's text is not in papers/; sections as
``mmjax/methods/mmin.py`` cites them): section 3.1 missing-condition training (one of the
2^M - 2 incomplete patterns per sample), section 3.2 the imagination by a cascaded residual
autoencoder with forward (L_f) and backward (L_b, the cycle) imagination and the classifier on
the bottleneck latents, section 3.3 the joint objective L = w_ce CE + w_f L_f + w_b L_b; the
released AE variant (``imagination=ae``, ``mmin_AE_model.py``) with one fully connected
autoencoder in the place of each cascade.
CRA: Tran, Liu, Zhou, Jin, CVPR 2017, eq. (1) the residual cascade x_hat = x + sum_k dZ_k and
eq. (2) L_rec = MSE(x_hat, x).

The step draws its simulated patterns from its "pattern" key (keys: dropout, pattern); the
references draw the same integers and decode them themselves.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.methods.mmin import CraConfig, MminConfig
from objective_check import (ALL_PATTERNS_3, assert_close, assert_tree_close, cross_entropy,
                             dense, make_batch, masked_mean, mlp_encoder, mlp_head, pure,
                             run_step, sgd, step_keys, to_f64, value_and_grad)
from toy import TOY_SPEC

SPEC = TOY_SPEC  # a (5), b (3), c (4); 3 classes
MODS = SPEC.modalities
MODEL = ModelConfig(hidden=5, feature_dim=4, dropout=0.0)
DIMS = (4, 4, 4)  # MMIN: every MLP encoder's feature width
INPUT_DIMS = (5, 3, 4)  # CRA: the flattened inputs
# Every pattern, and two more complete samples for the teacher and the simulated patterns.
PRESENT = np.concatenate([ALL_PATTERNS_3, np.ones((2, 3), bool)])
WEIGHTS = {"ce_weight": 0.9, "mse_weight": 4.0, "cycle_weight": 2.0}
sg = jax.lax.stop_gradient


def simulated(state, present):
    """Section 3.1: per sample an integer k in [1, 2^M - 2] from the "pattern" key; modality m is
    kept iff bit m of k is set, and-ed with the data's own mask."""
    k = np.asarray(jax.random.randint(step_keys(state, 2)[1], (present.shape[0],), 1, 7))
    bits = (k[:, None] >> np.arange(3)[None]) & 1
    return bits.astype(bool) & np.asarray(present)


def cascade(P, x):
    """Tran et al. eq. (1): block k reads x + dZ_1 + ... + dZ_{k-1} and adds dZ_k; each block's
    encoder is LeakyReLU(0.01) between layers with a linear latent, its decoder ReLU between
    layers with a linear output. Returns (x_hat, the blocks' latents concatenated)."""
    total, latents = x, []
    for k in sorted(P["blocks"]):
        enc = [P["blocks"][k]["enc"][i] for i in sorted(P["blocks"][k]["enc"])]
        dec = [P["blocks"][k]["dec"][i] for i in sorted(P["blocks"][k]["dec"])]
        h = total
        for i, layer in enumerate(enc):
            h = dense(layer, h)
            h = jax.nn.leaky_relu(h, 0.01) if i < len(enc) - 1 else h
        latents.append(h)
        for layer in dec[:-1]:
            h = jax.nn.relu(dense(layer, h))
        total = total + dense(dec[-1], h)
    return total, jnp.concatenate(latents, -1)


def imagination(P, h):
    """MMIN's released ResidualAE: the cascade, then the transition Linear -> ReLU -> Linear."""
    x_hat, latents = cascade(P, h)
    return dense(P["trans2"], jax.nn.relu(dense(P["trans1"], x_hat))), latents


def fc_autoencoder(P, h):
    """The released ``SimpleFcAE``: LeakyReLU(0.01) after every encoder layer (the latent too),
    the mirrored decoder with LeakyReLU between its layers and a ReLU output. Returns (recon,
    latent)."""
    for i in sorted(P["enc"]):
        h = jax.nn.leaky_relu(dense(P["enc"][i], h), 0.01)
    latent, dec = h, [P["dec"][i] for i in sorted(P["dec"])]
    for layer in dec[:-1]:
        h = jax.nn.leaky_relu(dense(layer, h), 0.01)
    return jax.nn.relu(dense(dec[-1], h)), latent


AUTOENCODERS = {"cra": imagination, "ae": fc_autoencoder}


def slots(mask, dims):
    """Each modality's bit over its feature slot, float ``[B, sum(dims)]``."""
    return jnp.asarray(np.repeat(np.asarray(mask), dims, axis=1), jnp.float64)


def teacher_objective(P, batch):
    """Stage 1: CE of the teacher head on [T_1(x_1); ...; T_M(x_M)], complete samples only."""
    x, present = batch["inputs"], batch["present"]
    T = P["teacher"]
    feats = jnp.concatenate([mlp_encoder(T["encoders"][m], x[m]) for m in MODS], -1)
    return masked_mean(cross_entropy(mlp_head(T["head"], feats), batch["label"]),
                       present.all(1))


def mmin_objective(P, batch, sim, head_input="latents", autoencoder=imagination):
    """Stage 2, sections 3.2-3.3: h from the simulated inputs, (h', latents) = CRA_f(h),
    h'' = CRA_b(h') (``autoencoder``: the CRA or the released AE); L_f = MSE(h', sg(h_T)) over
    the modalities the sample has, h_T the teacher's features of the simulated-missing
    modalities (the others zeroed, released ``T_embds``);
    L_b = MSE(h'', sg(h)); the classifier reads the latents (paper) or [h on kept slots, h'
    elsewhere]; every term averaged over samples keeping a modality (``sim``: the simulated
    mask)."""
    x, present, y = batch["inputs"], np.asarray(batch["present"]), batch["label"]
    kept = {m: x[m] * sim[:, c, None] for c, m in enumerate(MODS)}
    h = jnp.concatenate([mlp_encoder(P["encoders"][m], kept[m]) for m in MODS], -1)
    h1, latents = autoencoder(P["imagination"], h)
    h2, _ = autoencoder(P["backward_ae"], h1)
    if head_input == "latents":
        logits = mlp_head(P["head"], latents)
    else:
        logits = mlp_head(P["head"], jnp.where(slots(sim, DIMS) > 0, h, h1))
    weight = sim.any(1)
    ce = masked_mean(cross_entropy(logits, y), weight)
    dropped = {m: x[m] * ~sim[:, c, None] for c, m in enumerate(MODS)}
    target = sg(jnp.concatenate([mlp_encoder(P["teacher"]["encoders"][m], dropped[m])
                                 for m in MODS], -1))
    have = slots(present, DIMS)
    forward = masked_mean((have * (h1 - target) ** 2).sum(1) / jnp.maximum(have.sum(1), 1.0),
                          weight)
    cycle = masked_mean(((h2 - sg(h)) ** 2).mean(1), weight)
    return (WEIGHTS["ce_weight"] * ce + WEIGHTS["mse_weight"] * forward
            + WEIGHTS["cycle_weight"] * cycle)


def cra_objective(P, batch, sim, mse_weight):
    """CRA: x~ = x on the kept modalities, 0 elsewhere; x_hat = cascade(x~) (eq. 1); the
    classifier (concat fusion, every modality marked present) on x with the dropped modalities
    replaced by sg(x_hat); L = CE (samples keeping a modality) + w MSE(x_hat, x) (eq. 2, on the
    complete samples); ``sim``: the simulated mask."""
    x, present = batch["inputs"], np.asarray(batch["present"])
    flat = jnp.concatenate([x[m].reshape(x[m].shape[0], -1) for m in MODS], -1)
    keep = slots(sim, INPUT_DIMS)
    x_hat, _ = cascade(P["cra"], flat * keep)
    done = keep * flat + (1.0 - keep) * sg(x_hat)
    parts = jnp.split(done, np.cumsum(INPUT_DIMS)[:-1], -1)
    net = P["net"]
    feats = jnp.concatenate([mlp_encoder(net["encoders"][m], v) for m, v in zip(MODS, parts)], -1)
    ce = masked_mean(cross_entropy(mlp_head(net["head"], feats), batch["label"]), sim.any(1))
    rec = masked_mean(((x_hat - flat) ** 2).mean(1), present.all(1))
    return ce + mse_weight * rec


def _leaves(tree):
    return jax.tree.leaves(tree)


@pytest.mark.slow
@pytest.mark.parametrize("head_input,kind", [("latents", "cra"), ("imagined", "cra"),
                                             ("latents", "ae")])
def test_mmin_teacher_then_student_steps_equal_the_reference(head_input, kind):
    """Step 0 (teacher): L_T's gradient moves the teacher only. Stage 2's enter copies the
    teacher's encoders into the student's and changes nothing else. Step 1 (student): the
    section 3.3 objective's gradient moves everything but the frozen teacher. Each stage
    advances only its own optimiser's state."""
    with jax.enable_x64(True):
        config = ExperimentConfig(
            method=MminConfig(imagination=kind, ae_layers=(6, 3), ae_blocks=2,
                              teacher_steps=1, head_input=head_input, **WEIGHTS),
            model=MODEL, optim=sgd(), train=TrainConfig(steps=3))
        method = methods.make(config, SPEC)
        teacher, student = method.phases
        assert (teacher.name, teacher.steps, student.name, student.steps) == (
            "teacher", 1, "student", None)
        batch = make_batch(jax.random.key(0), SPEC, PRESENT)
        state = method.init(jax.random.key(1), batch)
        state = state.replace(params=to_f64(state.params))

        s1, m1, grads = run_step(teacher.step, state, batch)
        loss, want = value_and_grad(teacher_objective, pure(state.params), batch)
        assert_close(m1["loss"], loss)
        assert_tree_close(grads, want)  # zero outside the teacher

        entered = jax.jit(student.enter)(s1)
        P1, P2 = pure(s1.params), pure(entered.params)
        for a, b in zip(_leaves(P2["encoders"]), _leaves(P1["teacher"]["encoders"])):
            np.testing.assert_array_equal(a, b)
        for part in ("teacher", "imagination", "backward_ae", "head"):
            for a, b in zip(_leaves(P2[part]), _leaves(P1[part])):
                np.testing.assert_array_equal(a, b)
        assert int(entered.step) == 1

        sim = simulated(entered, batch["present"])
        assert (sim != np.asarray(PRESENT)).any()  # the draw simulates missing modalities
        assert (PRESENT.any(1) & ~sim.any(1)).any()  # and empties some samples
        s2, m2, grads = run_step(student.step, entered, batch)
        loss, want = value_and_grad(mmin_objective, P2, batch, sim, head_input,
                                    AUTOENCODERS[kind])
        assert_close(m2["loss"], loss)
        assert_tree_close(grads, want)
        np.testing.assert_array_equal(np.abs(np.concatenate(
            [g.ravel() for g in _leaves(grads["teacher"])])).max(), 0.0)  # frozen
        # SGD's state is its step count: tx1 counts the teacher step, tx2 the student step.
        counts = [[int(c) for c in jax.tree.leaves(s.opt_state)] for s in (state, s1, s2)]
        assert counts == [[0, 0], [1, 0], [1, 1]]


def test_cra_step_equals_the_reference():
    mse_weight = 0.7
    with jax.enable_x64(True):
        config = ExperimentConfig(method=CraConfig(ae_layers=(6, 3), ae_blocks=2,
                                                   mse_weight=mse_weight),
                                  model=MODEL, optim=sgd(), train=TrainConfig(steps=3))
        method = methods.make(config, SPEC)
        batch = make_batch(jax.random.key(0), SPEC, PRESENT)
        state = method.init(jax.random.key(1), batch)
        state = state.replace(params=to_f64(state.params))
        sim = simulated(state, batch["present"])
        assert (sim != np.asarray(PRESENT)).any() and (PRESENT.any(1) & ~sim.any(1)).any()
        _, metrics, grads = run_step(method.train_step, state, batch)
        loss, want = value_and_grad(cra_objective, pure(state.params), batch, sim, mse_weight)
        assert_close(metrics["loss"], loss)
        assert_tree_close(grads, want)
