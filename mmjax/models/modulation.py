"""Modulation-based fusion: one modality's features modulate the others' (FiLM, gated fusion).

MLA's "modulation-based fusion" baselines (Zhang et al., ICLR 2024, papers/002, section 4.1 and
appendix A.2) pick one modality, the modulator (FiLM's condition, gated fusion's gate), whose
features change the other modalities' features before they are concatenated into a head.
``ModulationNet`` holds what those networks share: an encoder per modality, the modulated
modalities (all but the modulator, in the dataset's order), and every modality's features.
``pick_modality`` checks the configured modulator.
"""

from __future__ import annotations

import jax
from flax import nnx

from mmjax.config import ModelConfig
from mmjax.data.base import DatasetSpec, length_key
from mmjax.errors import UserError
from mmjax.models.encoders import build_encoders, encode


def pick_modality(name: str, spec: DatasetSpec, field: str) -> str:
    """``name`` checked against the dataset's modalities (empty = the last); else ``UserError``.

    Modulation needs a second modality to modulate, so a one-modality dataset is refused too.
    """
    name = name or spec.modalities[-1]
    if name not in spec.modalities:
        raise UserError(f"{field} {name!r} is not a modality of {spec.name} {spec.modalities}")
    if spec.num_modalities < 2:
        raise UserError(f"{field}: fusion needs at least two modalities, {spec.name} has one")
    return name


class ModulationNet(nnx.Module):
    """The encoders of a modulation-based fusion network and its modalities' roles.

    Attributes:
      modalities: every modality, in the dataset's order.
      others: the modulated modalities (all but ``modulator``), in the dataset's order.
      encoders: ``{m: encoder}``; iterate over the tuples, never over this ``nnx.Dict`` (its
        keys come back sorted).
    """

    def __init__(self, spec: DatasetSpec, config: ModelConfig, modulator: str, *, dtype=None,
                 rngs: nnx.Rngs):
        self.modalities = tuple(spec.modalities)
        self.others = tuple(m for m in spec.modalities if m != modulator)
        self.encoders = build_encoders(spec, config, dtype=dtype, rngs=rngs)

    def features(self, inputs: dict, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None) -> dict[str, jax.Array]:
        """``{m: E_m(x_m)}``: every modality's encoder features ``[B, D_m]``, encoded in the
        dataset's order (the order dropout draws its keys in), missing ones not masked."""
        return {m: encode(self.encoders[m], inputs[m], inputs.get(length_key(m)),
                          deterministic=deterministic, rngs=rngs)
                for m in self.modalities}
