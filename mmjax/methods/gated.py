"""Bilinear gated fusion: one modality's hidden state, through a sigmoid, gates the others'.

Kiela et al., "Efficient Large-Scale Multi-Modal Classification", AAAI 2018 (gated fusion of
modality embeddings), as MLA specifies it for its "BiGated" baseline (Zhang et al., ICLR 2024,
papers/002, section 4.1 and appendix A.2: "multiple fully connected layers correspond to each
encoder, similar to the summation approach ... a fusion layer aggregates the outputs from all
modalities, as in the concatenation method. However, one modality's hidden state undergoes an
activation function (sigmoid in our experiments) to derive a gated weight. This weight is used to
modulate the other hidden states before they are appended to the fully connected layer"). MLA's
appendix is the specification here; Kiela et al.'s paper is not among papers/.

Model, for a gate modality g (``method.gate``, default the dataset's last modality)::

    h_m   = p_m * (W_m E_m(x_m) + b_m)       per-encoder FC layer to ``model.feature_dim`` D,
                                             zeroed where m is missing (as sum fusion does)
    gate  = sigmoid(h_g)                     the gated weight, in (0, 1)^D
    z_m   = gate * h_m          (m != g)     element-wise (bilinear) modulation
    out   = head([z_m for m != g])           concatenated, MLP head (the repo's fusion head)

Missing modalities are zero-filled (the batch contract): a missing gated modality gives
z_m = 0; a missing gate modality gives h_g = 0, so gate = 1/2 everywhere (the others pass at half
strength). With two modalities this is MLA's/OGM-GE's ``GatedFusion`` (``x_gate``); with M > 2
every non-gate modality is gated by the same weight and the results are concatenated (our
generalisation; the papers have M = 2).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax.config import ExperimentConfig, MethodConfig, ModelConfig, frozen
from mmjax.data.base import DatasetSpec
from mmjax.methods.base import Method, NNXModel, compute_dtype
from mmjax.methods.supervised import any_present, fused_loss, make_supervised
from mmjax.models.encoders import masked_features
from mmjax.models.fusion import MLPHead
from mmjax.models.modulation import ModulationNet, pick_modality


@frozen
class GatedConfig(MethodConfig):
    """Bilinear gated fusion's switches.

    Attributes:
      gate: the modality whose hidden state becomes the gate; empty = the dataset's last modality.
    """

    name: str = "bilinear_gated"
    gate: str = ""


def gated(h: jax.Array, gate_hidden: jax.Array) -> jax.Array:
    """The gate rule ``sigmoid(h_g) * h_m`` (MLA appendix A.2), element-wise."""
    return jax.nn.sigmoid(gate_hidden) * h


class GatedNet(ModulationNet):
    """Encoders, per-encoder FC layers, the gate and the head; see the module docstring."""

    def __init__(self, spec: DatasetSpec, config: ModelConfig, *, gate: str, dtype=None,
                 rngs: nnx.Rngs):
        super().__init__(spec, config, gate, dtype=dtype, rngs=rngs)
        self.gate = gate
        self.project = nnx.Dict({m: nnx.Linear(self.encoders[m].out_dim, config.feature_dim,
                                               dtype=dtype, rngs=rngs) for m in self.modalities})
        self.head = MLPHead(config.feature_dim * len(self.others), config.hidden,
                            spec.num_classes, config.dropout, dtype=dtype, rngs=rngs)

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        """``(outputs [B, C], aux)``; aux holds each modality's features and hidden state."""
        aux, hidden = {}, {}
        for c, (m, f) in enumerate(self.features(inputs, deterministic=deterministic,
                                                 rngs=rngs).items()):
            aux[f"{m}/features"] = f
            hidden[m] = masked_features(self.project[m](f), present[:, c])
            aux[f"{m}/hidden"] = hidden[m]
        aux["gate"] = jax.nn.sigmoid(hidden[self.gate])
        fused = jnp.concatenate([gated(hidden[m], hidden[self.gate]) for m in self.others], -1)
        return self.head(fused, deterministic=deterministic, rngs=rngs), aux


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Bilinear gated fusion on the Method contract, trained on every sample with a modality."""
    gate = pick_modality(config.method.gate, spec, "method.gate")
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: GatedNet(spec, config.model, gate=gate, dtype=dtype, rngs=rngs))
    return make_supervised(config, spec, model, fused_loss(any_present))
