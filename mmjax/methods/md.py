"""MD (Multimodal Dynamics): sparse feature gates, true-class-probability confidences, fusion of
the confidence-weighted features.

Han, Yang, Huang, Zhang, Yao, "Multimodal Dynamics: Dynamical Fusion for Trustworthy Multimodal
Classification", CVPR 2022; released code ``TencentAILabHealthcare/mmdynamics`` at 06a2bb8
(``model.py``, ``MMDynamic``; ``train_test.py``), RAML's uncertainty baseline [13] (papers/001,
Tables I and IV).
The paper's text is not in papers/ and could not be retrieved on our machines, so, as mmin.py
does, the map below names the paper's two informativeness levels (its abstract: "a sparse gating
is introduced to capture the information variation of each within-modality feature and the true
class probability is employed to assess the classification confidence of each modality") and the
released ``MMDynamic.forward`` lines, not equation numbers. K classes, M modalities::

    feature level   w_m = sigmoid(G_m(x_m))          G_m linear on the flattened input, d -> d
                    x'_m = x_m * w_m                 (released ``FeatureInforEncoder``; a padded
                                                     [T, D] sequence is gated per step, D -> D)
    encoder         h_m = dropout(E_m(x'_m))         E_m the dataset's encoder (released
                                                     ``FeatureEncoder``: linear + ReLU + dropout)
    unimodal        z_m = C_m(h_m),  L_cls_m = CE(z_m, y)   (released ``TCPClassifierLayer``)
    modality level  TCP_m = softmax(z_m)_y           the true-class probability of that classifier
                    c_m = F_m(h_m)                   linear, h_m -> 1, not squashed (released
                                                     ``TCPConfidenceLayer``)
                    L_conf_m = (c_m - TCP_m)^2       (``detach_tcp``: TCP_m a constant target)
    fusion          z = H([c_1 h_1, ..., c_M h_M])   H the fusion MLP (``MLPHead``; the released
                                                     ``MMClasifier`` with one hidden layer)
    loss            L = CE(z, y) + sum_m (L_cls_m + L_conf_m + lambda mean_features(w_m))
                    (the released weights: 1, 1, 1, lambda = 1; w_m > 0, so the mean of w_m is
                    its L1 norm over the number of features)
    predict         z

Missing modalities, as TMC drops an absent opinion (tmc.py): a missing modality's confidence is
set to 0 before the fusion, so its features enter the concatenation as zeros (exactly concat
fusion's masked features); its unimodal CE, confidence MSE and gate sparsity are averaged over
the samples that have it, and the fused CE over the samples with at least one modality. A
missing input is zero-filled, so x'_m = 0 and no gradient of that sample reaches the modality's
networks. A sample with no modality gets the fusion head's output on zeros. ``present`` enters
only as masks.

The paper and the released code (``detach_tcp``): the released loss regresses the confidence on
``p_target = softmax(TCPLogit)[y]`` without detaching it, so the MSE also moves the unimodal
classifier and encoder to pull the true-class probability toward the confidence estimate; the
default (True) makes TCP_m the confidence layer's regression target only, as in ConfidNet
(Corbiere et al., NeurIPS 2019, the origin of the TCP criterion), whose confidence network
learns the TCP of a classifier it does not train. Kept as released in both modes: the
confidence is an unbounded linear output, and the fused CE differentiates both c_m and h_m (the
confidences also learn from the fusion).

"Released" (the configs' ``:released`` variant, ``released``) = ``detach_tcp`` False, Adam with
weight decay 1e-4 added to the gradient (torch ``Adam(weight_decay=1e-4)``), and the learning rate
multiplied by 0.2 every fifth of the run (``StepLR(step_size=500, gamma=0.2)`` over BRCA's 2,500
full-batch epochs). Not reproduced: the released learning rate 1e-4 (for BRCA's full batch),
Xavier-normal initialisation, and the released one-linear-layer encoders on omics vectors (here
the dataset's encoders, as for every baseline).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax import losses
from mmjax.config import NON_NEGATIVE, ExperimentConfig, MethodConfig, ModelConfig, frozen
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, TrainState, cast_inputs, compute_dtype,
                                make_optimizer, one_phase, step_keys)
from mmjax.methods.supervised import gradient_step, initializer, predictor
from mmjax.models.encoders import build_encoders, encode
from mmjax.models.fusion import MLPHead


@frozen
class MdConfig(MethodConfig):
    """MD's switches (see the module docstring).

    Attributes:
      sparsity_weight: lambda, the weight of each modality's gate sparsity, the mean of its
        gates w_m over the features (released: 1, the ``torch.mean(FeatureInfo[view])`` term).
      detach_tcp: True (default): the true-class probability TCP_m is a constant target of the
        confidence MSE; False (released ``model.py``): the MSE differentiates it too, so the
        unimodal classifier is pulled toward the confidence estimate.
    """

    name: str = "md"
    sparsity_weight: Annotated[float, NON_NEGATIVE] = 1.0
    detach_tcp: bool = True


# ----------------------------------------------------------------------------------------------
# The defining computations.
# ----------------------------------------------------------------------------------------------


def true_class_probability(logits: jax.Array, label: jax.Array) -> jax.Array:
    """``TCP = softmax(logits)_y`` per example: ``[B, K], int[B] -> [B]`` (float32)."""
    probs = jax.nn.softmax(logits.astype(jnp.float32), -1)
    return jnp.take_along_axis(probs, label[:, None], -1)[:, 0]


def confidence_loss(confidence: jax.Array, tcp: jax.Array, detach: bool) -> jax.Array:
    """``(c - TCP)^2`` per example; ``detach`` makes TCP a constant target (the default)."""
    target = jax.lax.stop_gradient(tcp) if detach else tcp
    return jnp.square(confidence.astype(jnp.float32) - target)


def fuse_features(features: list[jax.Array], confidences: jax.Array,
                  present: jax.Array) -> jax.Array:
    """``[c_1 p_1 h_1, ..., c_M p_M h_M]``: each modality's features ``[B, D_m]`` scaled by its
    confidence ``confidences[:, m]`` (``[B, M]``), 0 where the modality is missing."""
    weights = confidences * present.astype(confidences.dtype)
    return jnp.concatenate([h * weights[:, c, None].astype(h.dtype)
                            for c, h in enumerate(features)], -1)


# ----------------------------------------------------------------------------------------------
# The network and the method.
# ----------------------------------------------------------------------------------------------


def _per_step(spec: DatasetSpec, modality: str) -> bool:
    """A padded ``[T, D]`` sequence is gated per step (D -> D): a gate over the flattened
    sequence would have (T D)^2 weights and mix padded steps into valid ones. A padded step's
    gate counts in the sparsity mean; its gated input stays 0."""
    return len(spec.shape_of(modality)) == 2 and spec.time_axis(modality) is not None


class MdNet(nnx.Module):
    """Gates, encoders, unimodal classifiers, confidence layers and the fusion head of MD.

    Returns ``(fused logits [B, K], aux)``: ``aux["logits"]`` the unimodal logits ``[B, M, K]``,
    ``aux["confidence"]`` the confidences c_m ``[B, M]`` (before the missing mask),
    ``aux["gate_mean"]`` each sample's mean gate per modality ``[B, M]``.
    """

    def __init__(self, spec: DatasetSpec, config: ModelConfig, *, dtype=None, rngs: nnx.Rngs):
        self.modalities = tuple(spec.modalities)
        self.per_step = tuple(_per_step(spec, m) for m in self.modalities)
        widths = [s[-1] if step else math.prod(s)
                  for s, step in zip(spec.shapes, self.per_step)]
        self.gates = nnx.Dict({m: nnx.Linear(d, d, dtype=dtype, rngs=rngs)
                               for m, d in zip(self.modalities, widths)})
        self.encoders = build_encoders(spec, config, dtype=dtype, rngs=rngs)
        dims = {m: self.encoders[m].out_dim for m in self.modalities}
        k = spec.num_classes
        self.classifiers = nnx.Dict({m: nnx.Linear(dims[m], k, dtype=dtype, rngs=rngs)
                                     for m in self.modalities})
        self.confidences = nnx.Dict({m: nnx.Linear(dims[m], 1, dtype=dtype, rngs=rngs)
                                     for m in self.modalities})
        self.head = MLPHead(sum(dims.values()), config.hidden, k, config.dropout, dtype=dtype,
                            rngs=rngs)
        self.drop = nnx.Dropout(config.dropout)

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        """The forward pass of the module docstring for a batch with mask ``present [B, M]``."""
        feats, logits, confs, gate_means = [], [], [], []
        for m, per_step in zip(self.modalities, self.per_step):
            x = inputs[m]
            # A missing input is zero-filled, so its gated input is 0 whatever the gate: the
            # gate learns from present samples only (its sparsity term is masked as well).
            flat = x if per_step else x.reshape(x.shape[0], -1)
            w = jax.nn.sigmoid(self.gates[m](flat))
            gate_means.append(w.reshape(w.shape[0], -1).mean(-1))
            gated = (flat * w).reshape(x.shape)
            h = encode(self.encoders[m], gated, inputs.get(length_key(m)),
                       deterministic=deterministic, rngs=rngs)
            h = self.drop(h, deterministic=deterministic, rngs=rngs)
            feats.append(h)
            logits.append(self.classifiers[m](h))
            confs.append(self.confidences[m](h)[:, 0])
        confidence = jnp.stack(confs, 1)
        fused = self.head(fuse_features(feats, confidence, present), deterministic=deterministic,
                          rngs=rngs)
        aux = {"logits": jnp.stack(logits, 1), "confidence": confidence,
               "gate_mean": jnp.stack(gate_means, 1)}
        return fused, aux


def released(config: ExperimentConfig) -> ExperimentConfig:
    """Every switch of the released code: the TCP target not detached, Adam weight decay 1e-4,
    the learning rate times 0.2 every fifth of the run (BRCA's StepLR, 500 of 2,500 epochs)."""
    method = dataclasses.replace(config.method, detach_tcp=False)
    optim = dataclasses.replace(config.optim, weight_decay=1e-4, schedule="step",
                                decay_steps=max(config.train.steps // 5, 1), decay_rate=0.2)
    return dataclasses.replace(config, method=method, optim=optim)


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """MD on the Method contract; see the module docstring."""
    mc = config.method
    if spec.task != "classification":
        raise UserError(f"md needs a classification dataset (its confidence is a true-class "
                        f"probability), {spec.name} is {spec.task}")
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: MdNet(spec, config.model, dtype=dtype, rngs=rngs))
    tx = make_optimizer(config.optim, config.train.steps)

    def loss_fn(fused, aux, batch):
        present, label = batch["present"], batch["label"]
        metrics, total = {}, 0.0
        for c, m in enumerate(spec.modalities):
            # Each modality's terms average over the samples that have it: a missing modality
            # has no classifier output or confidence to train (tmc.py masks its views alike).
            here = present[:, c]
            logits = aux["logits"][:, c]
            tcp = true_class_probability(logits, label)
            conf = aux["confidence"][:, c]
            metrics[f"loss_{m}"] = losses.weighted_mean(
                losses.per_example(spec.task, logits, label), here)
            metrics[f"confidence_loss_{m}"] = losses.weighted_mean(
                confidence_loss(conf, tcp, mc.detach_tcp), here)
            metrics[f"sparsity_{m}"] = losses.weighted_mean(
                aux["gate_mean"][:, c].astype(jnp.float32), here)
            metrics[f"confidence_{m}"] = losses.weighted_mean(conf.astype(jnp.float32), here)
            total = (total + metrics[f"loss_{m}"] + metrics[f"confidence_loss_{m}"]
                     + mc.sparsity_weight * metrics[f"sparsity_{m}"])
        metrics["loss_fused"] = losses.weighted_mean(
            losses.per_example(spec.task, fused, label), present.any(-1))
        return total + metrics["loss_fused"], metrics

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        keys = step_keys(state, "dropout")
        batch = cast_inputs(batch, dtype)

        def objective(params):
            (fused, aux), model_state = model.apply(params, state.model_state, batch["inputs"],
                                                    batch["present"], train=True,
                                                    key=keys["dropout"])
            loss, metrics = loss_fn(fused, aux, batch)
            return loss, ({"model_state": model_state}, metrics)

        return gradient_step(state, tx, objective)

    return Method(init=initializer(model, tx.init), phases=one_phase(train_step),
                  predict=predictor(model, dtype))
