"""FiLM fusion: one modality's features predict a feature-wise affine map of the others.

Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer", AAAI 2018, section 2
(Eqs. 1-3), as MLA uses it as a "modulation-based fusion" baseline (Zhang et al., ICLR 2024,
papers/002, section 4.1 and appendix A.2: "either audio or text serves as the condition encoder's
input ... the condition encoder is implemented as a fully connected layer ... its output dimension
is twice its input dimension, and the encoding is split into gamma and beta ... used to modify the
output of other modalities. The modified output is then appended to a fully connected layer").

Model, for a condition modality c (``method.condition``, default the dataset's last modality:
audio on AV-MNIST, as MLA conditions on audio or text)::

    f_m      = p_m * E_m(x_m)                    encoder features, zeroed where m is missing
    h_m      = p_m * (W_m f_m + b_m)  (m != c)   projection to the condition's width D_c (the
                                                 modalities' encoders differ in width here)
    [gamma, beta] = W_film f_c + b_film          the condition encoder, R^{D_c} -> R^{2 D_c}
                                                 (Eqs. 1-2: gamma = f(x), beta = h(x))
    z_m      = gamma * h_m + beta                FiLM(F | gamma, beta), Eq. 3
    out      = head([z_m for m != c])            concatenated, MLP head (the repo's fusion head)

Missing modalities are zero-filled, as in the papers' own fusion code (the batch contract): a
missing modulated modality has h_m = 0, so z_m = beta (only the condition speaks); a missing
condition has f_c = 0, so gamma = b_film_gamma and beta = b_film_beta, a fixed affine map that
no longer depends on any input. No other special case: ``present`` enters only as these masks.
With two modalities this is MLA's/OGM-GE's ``FiLM`` module with a projection in front of the
modulated features; with M > 2 every non-condition modality is modulated by the same (gamma,
beta) and the results are concatenated (our generalisation; the papers have M = 2).

Training: the task loss of ``out`` on every sample with a modality (like ``concat``). The paper's
practice of predicting ``1 + delta gamma`` is not used (MLA's released module uses gamma as is).
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
class FilmConfig(MethodConfig):
    """FiLM's switches.

    Attributes:
      condition: the modality whose features produce (gamma, beta); empty = the dataset's last
        modality (audio on AV-MNIST).
    """

    name: str = "film"
    condition: str = ""


def film(h: jax.Array, gamma: jax.Array, beta: jax.Array) -> jax.Array:
    """FiLM(F | gamma, beta) = gamma * F + beta (Perez et al. 2018, Eq. 3), feature-wise."""
    return gamma * h + beta


class FilmNet(ModulationNet):
    """Encoders, the condition encoder, projections and the head; see the module docstring."""

    def __init__(self, spec: DatasetSpec, config: ModelConfig, *, condition: str, dtype=None,
                 rngs: nnx.Rngs):
        super().__init__(spec, config, condition, dtype=dtype, rngs=rngs)
        self.condition = condition
        width = self.encoders[condition].out_dim
        self.width = width
        self.film = nnx.Linear(width, 2 * width, dtype=dtype, rngs=rngs)
        self.project = nnx.Dict({m: nnx.Linear(self.encoders[m].out_dim, width, dtype=dtype,
                                               rngs=rngs) for m in self.others})
        self.head = MLPHead(width * len(self.others), config.hidden, spec.num_classes,
                            config.dropout, dtype=dtype, rngs=rngs)

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        """``(outputs [B, C], aux)``; aux holds each modality's features, gamma and beta."""
        raw = self.features(inputs, deterministic=deterministic, rngs=rngs)
        aux = {f"{m}/features": f for m, f in raw.items()}
        feats = {m: masked_features(raw[m], present[:, c]) for c, m in enumerate(self.modalities)}
        gamma, beta = jnp.split(self.film(feats[self.condition]), 2, axis=-1)
        aux["film/gamma"], aux["film/beta"] = gamma, beta
        zs = []
        for m in self.others:
            h = masked_features(self.project[m](feats[m]), present[:, self.modalities.index(m)])
            zs.append(film(h, gamma, beta))
        fused = jnp.concatenate(zs, -1)
        return self.head(fused, deterministic=deterministic, rngs=rngs), aux


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """FiLM fusion on the Method contract, trained on every sample with a modality."""
    condition = pick_modality(config.method.condition, spec, "method.condition")
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: FilmNet(spec, config.model, condition=condition, dtype=dtype,
                                          rngs=rngs))
    return make_supervised(config, spec, model, fused_loss(any_present))
