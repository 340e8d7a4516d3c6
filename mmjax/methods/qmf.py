"""QMF: quality-aware multimodal fusion (energy-based confidence + ranking regulariser).

Zhang et al., "Provable Dynamic Fusion for Low-Quality Multimodal Data", ICML 2023; released code
``QingyangZhang/QMF`` (``text-image-classification/train_qmf.py``, official-code-notes §6.3), the
same baseline MLA's ``main.py`` embeds and MLA's Tables 1-2 compare with ("applied similarly to the
late fusion setting", MLA appendix A.2).

Algorithm::

    model     per modality: encoder h_m (``models.projected.ProjectedEncoders``, the backbone
              MLA uses) and a linear head g_m; unimodal logits f_m = g_m(h_m(x_m)).
    energy    conf_m = logsumexp_c f_m / T            (negative free energy; T = 10 as released)
    fusion    f = sum_m present_m * stopgrad(conf_m) * f_m      (confidence-weighted late fusion)
    loss      L = sum_m mean_{present m} CE(f_m, y) + mean CE(f, y) + lambda * sum_m R_m
    history   c_m[i] += CE(f_m(x_i), y_i) every time sample i is trained (cumulative loss,
              updated before R_m is computed, as released)
    normalise c'_m[i] = (c_m[i] - min_table c_m) / (max_table c_m - min_table c_m)   (the
              released ``History.correctness_normalize``: min and max over the whole history
              table, i.e. over every training sample, unvisited ones at 0;
              ``history_norm="none"`` uses the raw cumulative losses, whose growing gaps soon
              switch the regulariser off)
    ranking   pairs (i, j = next sample in the batch):  t = sign(c'_m[i] - c'_m[j]),
              d = |c'_m[i] - c'_m[j]|,  R_m = mean_pairs max(0, t (conf_m[i] - conf_m[j]) - d)
              (the released MarginRankingLoss(x_i, x_j + d / t, -t); t = 0 pairs give 0).
              A sample with a higher historical loss is pushed to a lower confidence.

Missing modalities: a missing f_m is left out of the fusion, its CE and its history update; a pair
counts in R_m only if both samples have modality m.

The per-sample history needs a sample identity. The batch contract carries none, so a sample is
identified by a hash of its (zero-filled) inputs into a table of ``history_size`` slots (if a
batch carries ``"index"``, that is used instead). Training masks are fixed per run, so the hash of
a training sample is stable across epochs; two samples sharing a slot share a history (with the
default 65,536 slots and a few thousand samples, a handful of collisions). The released table has
one row per training sample; a hash table larger than the training set keeps unvisited slots at
0, so its minimum stays 0 where the released one (after the first epoch) is the smallest
cumulative loss: the released rule exactly needs ``"index"`` and ``history_size`` = the training
set's size (as tests/test_golden_qmf.py runs it).

"Released": the defaults are the released training rule (``text-image-classification/
train_qmf.py`` at fe6c4c6, ``--df``; recorded by tools/golden/record_qmf.py and reproduced by
tests/test_golden_qmf.py); the released optimiser is Adam (``optim.name=adam``) with gradient
accumulation over 24 batches, which mmjax does not do.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax import losses
from mmjax.config import (NON_NEGATIVE, POSITIVE, ExperimentConfig, MethodConfig, ModelConfig,
                          OptimConfig, frozen)
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, TrainState, cast_inputs, compute_dtype,
                                init_state, make_optimizer, one_phase, step_keys)
from mmjax.methods.supervised import gradient_step, predictor
from mmjax.models.projected import ProjectedEncoders


@frozen
class QmfConfig(MethodConfig):
    """QMF's hyper-parameters; defaults as released (see the module docstring).

    Attributes:
      head_dim: width s of every encoder's output (the same backbone as MLA).
      temperature: T of the energy confidence ``logsumexp(f) / T`` (released: 10).
      rank_weight: lambda, weight of the ranking regulariser (released: 1).
      history_size: slots of the per-sample loss history (hash table, see the module docstring).
      history_norm: ``minmax`` (released) or ``none``: how histories become ranking targets.
    """

    name: str = "qmf"
    head_dim: int = 128
    temperature: Annotated[float, POSITIVE] = 10.0
    rank_weight: Annotated[float, NON_NEGATIVE] = 1.0
    history_size: Annotated[int, POSITIVE] = 65536
    history_norm: Literal["minmax", "none"] = "minmax"


class LateHeadsNet(nnx.Module):
    """``ProjectedEncoders`` and one linear head per modality: logits ``[B, M, C]``."""

    def __init__(self, spec: DatasetSpec, config: ModelConfig, head_dim: int, *, dtype=None,
                 rngs: nnx.Rngs):
        self.enc = ProjectedEncoders(spec, config, head_dim, dtype=dtype, rngs=rngs)
        self.heads = nnx.Dict({m: nnx.Linear(head_dim, spec.num_classes, dtype=dtype, rngs=rngs)
                               for m in spec.modalities})

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        """``(logits [B, M, C], features [B, M, s])``; ``present`` is read by the fusion."""
        del present
        feats = [self.enc.encode(m, inputs, deterministic=deterministic, rngs=rngs)
                 for m in self.enc.names]
        logits = [self.heads[m](h) for m, h in zip(self.enc.names, feats)]
        return jnp.stack(logits, 1), jnp.stack(feats, 1)


def energy_confidence(logits: jax.Array, temperature: float = 10.0) -> jax.Array:
    """``conf = logsumexp_c(logits) / T`` (QMF's negative energy), ``[..., C] -> [...]``."""
    return jax.nn.logsumexp(logits.astype(jnp.float32), -1) / temperature


def fuse(logits: jax.Array, present: jax.Array, temperature: float = 10.0) -> jax.Array:
    """``sum_m present_m * stopgrad(conf_m) * f_m``: ``[B, M, C], bool[B, M] -> [B, C]``."""
    conf = jax.lax.stop_gradient(energy_confidence(logits, temperature))
    w = conf * present.astype(jnp.float32)
    return jnp.einsum("bmc,bm->bc", logits.astype(jnp.float32), w)


def ranking_loss(conf: jax.Array, history: jax.Array, valid: jax.Array,
                 scale: jax.Array | float = 1.0) -> jax.Array:
    """The released ranking regulariser for one modality.

    Args:
      conf: ``[B]`` confidences; sample i is paired with sample ``(i + 1) mod B``.
      history: ``[B]`` cumulative historical losses of the same samples.
      valid: ``bool[B]`` samples that have the modality; a pair needs both.
      scale: the margins' factor: ``1 / (max - min)`` of the table gives the released min-max
        normalised targets (``normalize_history`` is increasing, so t is the sign of the raw
        difference, and two samples with equal histories are exactly tied: t = 0).

    Returns ``mean_pairs max(0, t (conf_i - conf_j) - s |c_i - c_j|)``, ``t = sign(c_i - c_j)``.
    """
    conf_j, hist_j, valid_j = (jnp.roll(a, -1) for a in (conf, history, valid))
    t = jnp.sign(history - hist_j)
    d = jnp.abs(history - hist_j) * scale
    per = jnp.maximum(0.0, t * (conf - conf_j) - d)
    pair = (valid & valid_j).astype(jnp.float32)
    return (per * pair).sum() / jnp.maximum(pair.sum(), 1.0)


def normalize_history(history: jax.Array, table: jax.Array) -> jax.Array:
    """``(c - min(table)) / (max(table) - min(table))`` of the batch's histories ``[B]``, the
    released ``History.correctness_normalize`` (min and max over the whole history table); 0
    where the table's range is empty (the released code divides by zero there)."""
    return (history - jnp.min(table)) * history_scale(table)


def history_scale(table: jax.Array) -> jax.Array:
    """``1 / (max(table) - min(table))``, 0 where the range is empty."""
    span = jnp.max(table) - jnp.min(table)
    return jnp.where(span > 0, 1.0 / jnp.where(span > 0, span, 1.0), 0.0)


# Odd 32-bit multipliers for the input hash (Knuth's multiplicative constant and another).
_MUL_A, _MUL_B = 2654435761, 2246822519


def sample_slots(batch: Batch, modalities: tuple[str, ...], size: int) -> jax.Array:
    """A slot in ``[0, size)`` per sample: ``batch["index"]`` if present, else an input hash."""
    if "index" in batch:
        return batch["index"].astype(jnp.int32) % size
    h = jnp.zeros(batch["label"].shape[0], jnp.uint32)
    for c, m in enumerate(modalities):
        x = batch["inputs"][m].astype(jnp.float32).reshape(h.shape[0], -1)
        bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
        pos = jnp.arange(x.shape[1], dtype=jnp.uint32) * jnp.uint32(_MUL_A) + jnp.uint32(2 * c + 1)
        h = h * jnp.uint32(_MUL_B) + (bits * (pos | jnp.uint32(1))[None]).sum(1, dtype=jnp.uint32)
        h = h ^ (h >> jnp.uint32(15))
    return (h % jnp.uint32(size)).astype(jnp.int32)


def released(config: ExperimentConfig) -> ExperimentConfig:
    """The released code (tests/test_golden_qmf.py): the method's defaults (its rule), Adam at lr
    1e-3 (our choice: the released 5e-5 is for BERT fine-tuning)."""
    return dataclasses.replace(config, optim=OptimConfig(name="adam", lr=1e-3))


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """QMF on the Method contract; see the module docstring."""
    mc = config.method
    if spec.task != "classification":
        raise UserError(f"qmf needs a classification dataset, {spec.name} is {spec.task}")
    modalities = spec.modalities
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: LateHeadsNet(spec, config.model, mc.head_dim, dtype=dtype,
                                               rngs=rngs))
    tx = make_optimizer(config.optim, config.train.steps)

    def init(key: jax.Array, batch: Batch) -> TrainState:
        del batch
        history = jnp.zeros((len(modalities), mc.history_size), jnp.float32)
        return init_state(model, key, tx.init, extra={"history": history})

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        keys = step_keys(state, "dropout")
        slots = sample_slots(batch, modalities, mc.history_size)
        batch = cast_inputs(batch, dtype)
        present, label = batch["present"], batch["label"]
        history = state.extra["history"]

        def objective(params):
            (logits, _), model_state = model.apply(params, state.model_state, batch["inputs"],
                                                   present, train=True, key=keys["dropout"])
            metrics, new_hist = {}, []
            total = 0.0
            for c, m in enumerate(modalities):
                per = losses.per_example(spec.task, logits[:, c], label)
                metrics[f"loss_{m}"] = losses.weighted_mean(per, present[:, c])
                # History first (as released), from this step's detached losses.
                add = jnp.where(present[:, c], jax.lax.stop_gradient(per), 0.0)
                hist_c = history[c].at[slots].add(add)
                new_hist.append(hist_c)
                conf = energy_confidence(logits[:, c], mc.temperature)
                # minmax: the released normalised targets, as raw differences times the table's
                # 1 / range (equal histories stay exactly tied; see ranking_loss).
                scale = history_scale(hist_c) if mc.history_norm == "minmax" else 1.0
                metrics[f"rank_{m}"] = ranking_loss(conf, hist_c[slots], present[:, c], scale)
                total = total + metrics[f"loss_{m}"] + mc.rank_weight * metrics[f"rank_{m}"]
            fused = fuse(logits, present, mc.temperature)
            metrics["loss_fused"] = losses.weighted_mean(
                losses.per_example(spec.task, fused, label), present.any(-1))
            total = total + metrics["loss_fused"]
            changes = {"model_state": model_state, "extra": {"history": jnp.stack(new_hist)}}
            return total, (changes, metrics)

        return gradient_step(state, tx, objective)

    predict = predictor(model, dtype, lambda logits, _, batch: fuse(logits, batch["present"],
                                                                    mc.temperature))
    return Method(init=init, phases=one_phase(train_step), predict=predict)
