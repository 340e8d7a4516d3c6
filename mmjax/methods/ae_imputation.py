"""Autoencoder imputation: reconstruct the missing modality from the present one, then fuse.

The "AE" baseline of SMIL (Ma et al., AAAI 2021, papers/004, Tables 1-2 and Figure 4; issue 9):
an autoencoder trained on the modality-complete samples maps modality 1 to modality 2; every
missing modality-2 input is replaced by its reconstruction, and the fusion model is trained on the
imputed data. The paper gives no architecture; ours is an MLP ``x1 -> hidden -> hidden -> x2`` in
input space (AV-MNIST: 784 -> 20x20 MFCC), and the fusion model is the concat baseline's
(``MultimodalNet``, AV-MNIST: LeNet-5 + sound CNN -> 480 -> 64 -> 10).

One ``mmjax train`` runs both phases, ``Method.phases`` ``autoencoder`` then ``fusion``, each its
own compiled program with its own step::

    phase 1  [0, ae_steps):  L_ae = mean_{b: x2 present} ||AE(x1_b) - x2_b||^2 / dim(x2)
    phase 2  [ae_steps, train.steps):  x2' = x2 where present, stop_grad(AE(x1)) where missing;
             present' = present with modality 2 set; L = CE(fusion(x1, x2'), y) over the batch
    predict  the same imputation (x2 given: reconstruction off; missing: on), then fusion.

Each phase has its own optimiser (``config.optim`` over the phase's steps) and optimiser state,
``opt_state = (tx1's, tx2's)``, each phase advancing only its own element. Modality 1 missing at test time is
not imputed (it is the model's anchor); its features are masked as in the concat baseline.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax import losses
from mmjax.config import ExperimentConfig, MethodConfig, frozen
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, Phase, TrainState, cast_inputs,
                                compute_dtype, make_optimizer)
from mmjax.methods.supervised import initializer, phase_step
from mmjax.models.fusion import MultimodalNet


@frozen
class AeImputationConfig(MethodConfig):
    """Autoencoder imputation.

    Attributes:
      ae_steps: phase-1 steps (autoencoder on complete samples); the rest train the fusion model.
      ae_hidden: hidden width of the autoencoder MLP.
      pos_weight: multi-label tasks: weight of the positive labels in the fusion model's binary
        cross-entropy (``losses.per_example``; SMIL's MM-IMDb loss uses 2.0); 1.0 elsewhere.
    """

    name: str = "ae_imputation"
    ae_steps: int = 200
    ae_hidden: int = 256
    pos_weight: float = 1.0


class Imputer(nnx.Module):
    """MLP autoencoder from modality 1 to modality 2: ``x1 -> h -> h -> x2`` (ReLU, linear out)."""

    def __init__(self, in_shape, out_shape, hidden: int, *, dtype=None, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(math.prod(in_shape), hidden, dtype=dtype, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, hidden, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(hidden, math.prod(out_shape), dtype=dtype, rngs=rngs)
        self.out_shape = tuple(out_shape)

    def __call__(self, x):
        x = jax.nn.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.out(jax.nn.relu(self.fc2(x))).reshape(x.shape[0], *self.out_shape)


class AeFusion(nnx.Module):
    """The autoencoder and the fusion model side by side (params ``ae`` and ``net``)."""

    def __init__(self, spec: DatasetSpec, config: ExperimentConfig, *, dtype=None,
                 rngs: nnx.Rngs):
        self.ae = Imputer(spec.shapes[0], spec.shapes[1], config.method.ae_hidden, dtype=dtype,
                          rngs=rngs)
        self.net = MultimodalNet(spec, config.model, fusion="concat", dtype=dtype, rngs=rngs)
        self.modalities = spec.modalities

    def __call__(self, inputs, present, *, deterministic: bool, rngs: nnx.Rngs | None = None):
        """Imputes modality 2 where missing, then runs the fusion model: ``(outputs, aux)``."""
        batch = impute(self.ae, {"inputs": inputs, "present": present}, self.modalities)
        return self.net(batch["inputs"], batch["present"], deterministic=deterministic,
                        rngs=rngs)


def impute(ae, batch: Batch, modalities=None) -> Batch:
    """x2 kept where present, replaced by ``stop_gradient(ae(x1))`` where missing and x1 is
    present; modality 2 becomes present where either modality is (with x1 missing there is
    nothing to impute from, so x2 stays missing). ``modalities`` = the batch's order (default:
    the inputs' order)."""
    m1, m2 = modalities or tuple(batch["inputs"])
    x1, x2 = batch["inputs"][m1], batch["inputs"][m2]
    present = batch["present"]
    fill = (present[:, 0] & ~present[:, 1]).reshape(-1, *([1] * (x2.ndim - 1)))
    x2 = jnp.where(fill, jax.lax.stop_gradient(ae(x1)).astype(x2.dtype), x2)
    return {**batch, "inputs": {**batch["inputs"], m2: x2},
            "present": present.at[:, 1].set(present[:, 0] | present[:, 1])}


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """Autoencoder imputation on the Method contract; see the module docstring."""
    mc = config.method
    if spec.num_modalities != 2:
        raise UserError(f"ae_imputation needs exactly two modalities, {spec.name} has "
                        f"{spec.num_modalities}; pick two with data.views")
    if not 0 <= mc.ae_steps <= config.train.steps:
        raise UserError(f"method.ae_steps={mc.ae_steps} must lie in [0, train.steps="
                        f"{config.train.steps}]")
    losses.check_pos_weight(mc.pos_weight, spec.task, spec.name)
    modalities = spec.modalities
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: AeFusion(spec, config, dtype=dtype, rngs=rngs))
    tx1 = make_optimizer(config.optim, max(mc.ae_steps, 1))
    tx2 = make_optimizer(config.optim, max(config.train.steps - mc.ae_steps, 1))
    m1, m2 = modalities

    def ae_loss(params, state: TrainState, batch: Batch, keys: dict):
        del keys
        module = model.bind(params, state.model_state)
        recon = module.ae(batch["inputs"][m1])
        per = ((recon - batch["inputs"][m2]) ** 2).reshape(recon.shape[0], -1).mean(-1)
        # The autoencoder learns x1 -> x2 on complete samples only (x1 and x2 both present).
        loss = losses.weighted_mean(per.astype(jnp.float32), batch["present"].all(-1))
        return loss, ({"model_state": state.model_state},
                      {"loss_ae": loss, "loss_fused": jnp.zeros(())})

    def fused_loss(params, state: TrainState, batch: Batch, keys: dict):
        module = model.bind(params, state.model_state)
        imputed = impute(module.ae, batch, modalities)
        outputs, _ = module.net(imputed["inputs"], imputed["present"], deterministic=False,
                                rngs=nnx.Rngs(dropout=keys["dropout"]))
        per = losses.per_example(spec.task, outputs, batch["label"], mc.pos_weight)
        loss = losses.weighted_mean(per, batch["present"].any(-1))
        return loss, ({"model_state": nnx.state(module, nnx.Not(nnx.Param))},
                      {"loss_ae": jnp.zeros(()), "loss_fused": loss})

    def predict(state: TrainState, batch: Batch) -> jax.Array:
        batch = cast_inputs(batch, dtype)
        module = model.bind(state.params, state.model_state)
        imputed = impute(module.ae, batch, modalities)
        outputs, _ = module.net(imputed["inputs"], imputed["present"], deterministic=True)
        return outputs.astype(jnp.float32)

    phases = (Phase("autoencoder", mc.ae_steps, phase_step(0, tx1, ae_loss, dtype)),
              Phase("fusion", None, phase_step(1, tx2, fused_loss, dtype)))
    return Method(init=initializer(model, lambda p: (tx1.init(p), tx2.init(p))), phases=phases,
                  predict=predict)
