"""A multimodal classifier: one encoder per modality, a fusion rule, a head, optional unimodal heads.

Fusion rules (every one reads ``present[B, M]`` arithmetically, so masks never change the program):

- ``concat`` (intermediate fusion): ``head([f_1 * p_1, ..., f_M * p_M])``;
- ``sum``: ``head(sum_m p_m * W_m f_m)``, each modality projected to ``feature_dim`` first;
- ``late``: the mean of the unimodal heads' outputs over the present modalities,
  ``sum_m p_m * g_m(f_m) / max(sum_m p_m, 1)``;
- ``ensemble``: UME-MMA's uni-modal ensemble, the mean over *all* modalities,
  ``sum_m g_m(f_m) / M``, ``present`` ignored: a missing modality contributes the output of its
  zero-filled input, so the model is unaware which modality is missing (UME-MMA section 3.3).

With ``ModelConfig.missing_aware=False`` no rule reads ``present`` (every ``p_m`` above is 1):
a missing modality enters as the features of its zero-filled input, as UME-MMA's mask-unaware
baselines ("fed a zero input").

With ``unimodal_heads`` a linear head per modality is added (multi-task training; ``late`` and
``ensemble`` always have them). The model returns ``(outputs, aux)``; ``aux`` holds
``"<m>/features"`` and, where there are unimodal heads, ``"<m>/logits"``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax.config import ModelConfig
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.models.encoders import build_encoders, encode, masked_features

FUSIONS = ("concat", "sum", "late", "ensemble")


class MLPHead(nnx.Module):
    """``in -> hidden -> ReLU -> dropout -> out`` (SMIL's fusion head is 480 -> 64 -> 10)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float, *, dtype=None,
                 rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(in_dim, hidden, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, out_dim, dtype=dtype, rngs=rngs)
        self.drop = nnx.Dropout(dropout)

    def __call__(self, x, *, deterministic: bool, rngs: nnx.Rngs | None = None):
        x = self.drop(jax.nn.relu(self.fc1(x)), deterministic=deterministic, rngs=rngs)
        return self.fc2(x)


class MultimodalNet(nnx.Module):
    """Encoders + fusion + head; see the module docstring for the fusion rules.

    Args:
      spec: the dataset (modalities, shapes, number of outputs).
      config: encoder names and widths.
      fusion: one of ``FUSIONS``.
      unimodal_heads: add a linear head per modality (always on for ``late`` and ``ensemble``).
      modalities: the modalities this model uses (default: all of the dataset's); the others
        are ignored, which is how the one-modality lower bound is built.
      dtype: compute dtype (parameters stay float32).
      rngs: parameter initialisation keys.
    """

    def __init__(self, spec: DatasetSpec, config: ModelConfig, *, fusion: str,
                 unimodal_heads: bool = False, modalities: tuple[str, ...] | None = None,
                 dtype=None, rngs: nnx.Rngs):
        if fusion not in FUSIONS:
            raise UserError(f"unknown fusion {fusion!r}; choose from {', '.join(FUSIONS)}")
        used = modalities or spec.modalities
        self.fusion = fusion
        self.missing_aware = config.missing_aware
        # Iterate over these tuples, never over the nnx.Dicts: pytree dicts come back with sorted
        # keys, which would silently pair a modality with another's present column.
        self.names = tuple(used)
        self.columns = tuple(spec.modalities.index(m) for m in used)  # present[:, c] per encoder
        self.encoders = build_encoders(spec, config, dtype=dtype, rngs=rngs, modalities=used)
        dims = {m: enc.out_dim for m, enc in self.encoders.items()}
        out = spec.num_classes
        if fusion == "concat":
            self.head = MLPHead(sum(dims.values()), config.hidden, out, config.dropout,
                                dtype=dtype, rngs=rngs)
        elif fusion == "sum":
            self.project = nnx.Dict(
                {m: nnx.Linear(d, config.feature_dim, dtype=dtype, rngs=rngs)
                 for m, d in dims.items()}
            )
            self.head = MLPHead(config.feature_dim, config.hidden, out, config.dropout,
                                dtype=dtype, rngs=rngs)
        self.unimodal = (
            nnx.Dict({m: nnx.Linear(d, out, dtype=dtype, rngs=rngs) for m, d in dims.items()})
            if unimodal_heads or fusion in ("late", "ensemble") else None
        )

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        """Maps a batch to ``(outputs [B, C], aux)``; ``present`` is ``bool[B, M]``."""
        aux, feats, masks = {}, [], []
        for m, c in zip(self.names, self.columns):
            f = encode(self.encoders[m], inputs[m], inputs.get(length_key(m)),
                       deterministic=deterministic, rngs=rngs)  # [B, D_m]
            aux[f"{m}/features"] = f
            feats.append(f)
            # Unaware: every modality counts as present; its (zero-filled) input is encoded.
            masks.append(present[:, c] if self.missing_aware else jnp.ones_like(present[:, c]))
        if self.unimodal is not None:
            for m, f in zip(self.names, feats):
                aux[f"{m}/logits"] = self.unimodal[m](f)
        if self.fusion == "concat":
            fused = jnp.concatenate([masked_features(f, p) for f, p in zip(feats, masks)], -1)
        elif self.fusion == "sum":
            fused = sum(masked_features(self.project[m](f), p)
                        for m, f, p in zip(self.names, feats, masks))
        elif self.fusion == "ensemble":
            return sum(aux[f"{m}/logits"] for m in self.names) / len(self.names), aux
        else:
            logits = jnp.stack([aux[f"{m}/logits"] for m in self.names], 1)  # [B, M, C]
            weights = jnp.stack(masks, 1).astype(logits.dtype)  # [B, M]
            total = jnp.maximum(weights.sum(1, keepdims=True), 1.0)
            return jnp.einsum("bmc,bm->bc", logits, weights) / total, aux
        return self.head(fused, deterministic=deterministic, rngs=rngs), aux
