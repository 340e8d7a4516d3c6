"""Whole-objective test of QMF (issue 21): one step's loss, each of its terms, its gradient with
respect to every parameter group and the history table after the step equal an independent
float64 reference.

Zhang et al., "Provable Dynamic Fusion for Low-Quality Multimodal Data", ICML 2023, as
``mmjax/methods/qmf.py`` implements it (the released ``train_qmf.py``): unimodal logits f_m; the
energy confidence conf_m = logsumexp(f_m) / T (the negative free energy); the fusion
f = sum_m p_m stop_grad(conf_m) f_m; the loss sum_m CE_m + CE(f) + lambda sum_m R_m with the
ranking regulariser R_m over the pairs (i, i + 1 mod B) that both have modality m:
max(0, t (conf_i - conf_j) - |c'_i - c'_j|), t = sign(c'_i - c'_j), where c' are the samples'
cumulative losses (history, updated with this step's losses first) normalised by the table's
minimum and maximum (the released ``History.correctness_normalize``).
"""

import jax
import jax.numpy as jnp
import numpy as np

from mmjax import methods
from mmjax.config import ExperimentConfig, ModelConfig, TrainConfig
from mmjax.methods.qmf import QmfConfig
from objective_check import (ALL_PATTERNS_3, assert_close, assert_tree_close, cross_entropy,
                             dense, make_batch, masked_mean, mlp_encoder, pure, run_step, sgd,
                             to_f64, value_and_grad)
from toy import TOY_SPEC

SPEC = TOY_SPEC  # a (5), b (3), c (4); 3 classes
MODS = SPEC.modalities
MODEL = ModelConfig(hidden=5, feature_dim=4, dropout=0.0)
HEAD_DIM, TEMPERATURE, RANK_WEIGHT, SLOTS = 3, 0.5, 0.7, 16
PRESENT = np.concatenate([np.ones((2, 3), bool), ALL_PATTERNS_3])
INDEX = np.array([4, 5, 0, 9, 2, 11, 7, 13, 1, 6])  # the samples' history slots
# A hinge is a small difference of confidences ~2.2 that the step computes in float32
# (``energy_confidence`` casts) from float32 histories: its error is absolute, ~2e-7 (measured
# 3.4e-8 on rank_b = 8.3e-4), so the ranking terms are compared to 1e-6 absolute; the loss, the
# other terms and the gradients meet RTOL.
RANK_ATOL = 1e-6
sg = jax.lax.stop_gradient


def objective(P, batch, index, history, norm="minmax"):
    """``(loss, terms)``; terms: every ``loss_m``, ``rank_m``, ``loss_fused`` and the updated
    history ``[M, SLOTS]``; ``norm``: the ranking targets' ``history_norm``."""
    x, present, y = batch["inputs"], np.asarray(batch["present"]), batch["label"]
    logits = [dense(P["heads"][m], jax.nn.relu(dense(P["enc"]["project"][m],
                                                     mlp_encoder(P["enc"]["encoders"][m], x[m]))))
              for m in MODS]
    nxt = np.roll(np.arange(len(index)), -1)  # sample i is paired with i + 1 (mod B)
    terms, tables, total = {}, [], 0.0
    for c, m in enumerate(MODS):
        have = present[:, c]
        ce = cross_entropy(logits[c], y)
        terms[f"loss_{m}"] = masked_mean(ce, have)
        table = history[c].at[index].add(sg(ce) * have)  # before the regulariser, as released
        tables.append(table)
        hist = table[index]
        # c' = (c - min table) / (max table - min table); the map is increasing, so
        # t = sign(c'_i - c'_j) = sign(c_i - c_j), exactly 0 for two samples sharing a slot
        # (XLA may round two copies of one normalised value differently).
        t = jnp.sign(hist - hist[nxt])
        d = jnp.abs(hist - hist[nxt])  # history_norm="none": the raw cumulative losses
        if norm == "minmax":
            d = d / (table.max() - table.min())
        conf = jax.scipy.special.logsumexp(logits[c], -1) / TEMPERATURE
        hinge = jnp.maximum(0.0, t * (conf - conf[nxt]) - d)
        terms[f"rank_{m}"] = masked_mean(hinge, have & have[nxt])
        total = total + terms[f"loss_{m}"] + RANK_WEIGHT * terms[f"rank_{m}"]
    conf = [sg(jax.scipy.special.logsumexp(z, -1) / TEMPERATURE) for z in logits]
    fused = sum(present[:, c, None] * conf[c][:, None] * logits[c] for c in range(len(MODS)))
    terms["loss_fused"] = masked_mean(cross_entropy(fused, y), present.any(1))
    terms["history"] = jnp.stack(tables)
    return total + terms["loss_fused"], terms


def _check_step(index, norm="minmax"):
    """One step on ``index`` slots against the reference: loss, every term, the gradient of
    every parameter group and the history table after the step."""
    with jax.enable_x64(True):
        config = ExperimentConfig(
            method=QmfConfig(head_dim=HEAD_DIM, temperature=TEMPERATURE, rank_weight=RANK_WEIGHT,
                             history_size=SLOTS, history_norm=norm),
            model=MODEL, optim=sgd(), train=TrainConfig(steps=4))
        method = methods.make(config, SPEC)
        batch = {**make_batch(jax.random.key(0), SPEC, PRESENT), "index": jnp.asarray(index)}
        state = method.init(jax.random.key(1), batch)
        # A history from earlier steps, its minimum (slot 3) and maximum (slot 15) held by no
        # sample of this batch; the large maximum keeps the normalised targets close together,
        # so the hinge is active on some pairs, not on others.
        history = jax.random.uniform(jax.random.key(2), (3, SLOTS), jnp.float32, 1.0, 3.0)
        history = history.at[:, 3].set(0.5).at[:, 15].set(400.0)
        if norm == "none":  # raw margins: an empty history, so the step's losses set the gaps
            history = jnp.zeros_like(history)
        state = state.replace(params=to_f64(state.params), extra={"history": history})
        new, metrics, grads = run_step(method.train_step, state, batch)
        (loss, terms), want = value_and_grad(objective, pure(state.params), batch, index,
                                             history.astype(jnp.float64), norm, has_aux=True)
        active = [0.0 < float(terms[f"rank_{m}"]) for m in MODS]  # the hinge is active
        assert all(active[::2]) if norm == "minmax" else any(active)
        np.testing.assert_allclose(np.asarray(new.extra["history"]), terms["history"], rtol=1e-6)
        for m in MODS:
            assert_close(metrics[f"loss_{m}"], terms[f"loss_{m}"], what=f"loss_{m}")
            assert abs(float(metrics[f"rank_{m}"]) - float(terms[f"rank_{m}"])) <= RANK_ATOL, m
        assert_close(metrics["loss_fused"], terms["loss_fused"], what="loss_fused")
        assert_close(metrics["loss"], loss)
        assert_tree_close(grads, want)


def test_one_step_terms_gradient_and_history_equal_the_reference():
    _check_step(INDEX)


def test_two_samples_sharing_a_history_slot_form_no_ranking_pair():
    """Rows 0 and 1 share slot 4: their history gets both losses and their pair has t = 0."""
    _check_step(np.concatenate([[4], INDEX[:1], INDEX[2:]]))


def test_raw_history_targets_equal_the_reference():
    """``history_norm="none"``: the margins are the raw differences of cumulative losses."""
    _check_step(INDEX, norm="none")
