"""The projected-encoder backbone that MLA and its baselines (QMF, OGM-GE) share, and the
parameter-path helpers that find a modality's encoder in a parameter tree.

``ProjectedEncoders``: the dataset's encoder of ``config.model`` for each modality followed by a
projection ``Linear(d_m, s)`` and a ReLU, so every modality lands in one s-dimensional space (MLA,
Zhang et al. ICLR 2024, appendix A.3.2: three FC layers of width 128 when hidden = feature_dim =
s = 128). QMF and OGM-GE use it so that they run on the same backbones as MLA, as in MLA's
comparison.
"""

from __future__ import annotations

import jax
from flax import nnx

from mmjax.config import ModelConfig
from mmjax.data.base import DatasetSpec, length_key
from mmjax.models.encoders import build_encoders, encode


class ProjectedEncoders(nnx.Module):
    """One encoder per modality, each followed by ``Linear(d_m, s)`` and ReLU: ``h_m`` -> [B, s]."""

    def __init__(self, spec: DatasetSpec, config: ModelConfig, head_dim: int, *, dtype=None,
                 rngs: nnx.Rngs):
        # Iterate over this tuple, never over the nnx.Dicts (their keys come back sorted).
        self.names = tuple(spec.modalities)
        self.encoders = build_encoders(spec, config, dtype=dtype, rngs=rngs)
        self.project = nnx.Dict({
            m: nnx.Linear(self.encoders[m].out_dim, head_dim, dtype=dtype, rngs=rngs)
            for m in self.names
        })

    def encode(self, m: str, inputs: dict, *, deterministic: bool, rngs=None):
        """``h_m(x_m)``: features ``[B, s]`` of modality ``m`` (a Python string: static) of the
        batch's ``inputs`` (a sequence modality's encoder also gets its lengths)."""
        f = encode(self.encoders[m], inputs[m], inputs.get(length_key(m)),
                   deterministic=deterministic, rngs=rngs)
        return jax.nn.relu(self.project[m](f))


def path_names(path) -> tuple[str, ...]:
    """The string keys/attributes along a ``jax.tree_util`` path (indices and the trailing
    ``value`` of an NNX ``Variable`` dropped): ``("head", "kernel")``."""
    out = []
    for k in path:
        name = getattr(k, "key", getattr(k, "name", None))
        if isinstance(name, str):
            out.append(name)
    if out and out[-1] == "value":
        out.pop()
    return tuple(out)


def encoder_modality(path) -> str | None:
    """The modality whose encoder (or projection) a parameter/optimiser leaf belongs to: the
    name after the first ``encoders`` or ``project`` on its path; None for any other leaf."""
    names = path_names(path)
    for i, n in enumerate(names[:-1]):
        if n in ("encoders", "project"):
            return names[i + 1]
    return None
