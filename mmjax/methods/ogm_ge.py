"""OGM-GE: on-the-fly gradient modulation with generalisation enhancement (Gaussian noise).

Peng et al., "Balanced Multimodal Learning via On-the-fly Gradient Modulation", CVPR 2022;
released code ``GeWu-Lab/OGM-GE_CVPR2022`` (``main.py``, official-code-notes §6.4). MLA's Table 1
runs it "in the setting of concatenation" (appendix A.2).

Algorithm (the paper is two-modal; the generalisation to M modalities is ours, see below)::

    model     h_m = models.projected.ProjectedEncoders (MLA's backbone); concat fusion, ONE linear
              layer: f = W [h_1 p_1; ...; h_M p_M] + b, W = [W_1 ... W_M]
    loss      L = mean_{b: any present} CE(f, y)
    unimodal  f_m = W_m h_m + b / M            (the released ``out_a``/``out_v``, bias split)
    score     s_m = mean_{b: present m} softmax(f_m)[y_b]      (released: sum over the batch)
    ratio     rho_m = s_m / mean_{j != m} s_j      (M = 2: rho_v = s_v / s_a, rho_a = 1 / rho_v)
    coeff     k_m = 1 - tanh(alpha * rho_m)  if rho_m > 1  else 1          (paper eq. 10)
    OGM       grad(theta_m) <- k_m * grad(theta_m) for encoder m's weight tensors (ndim >= 2)
    GE        grad(theta_m) <- k_m * grad(theta_m) + N(0, std(grad(theta_m)) + 1e-8)
              for every modality's weight tensors, modulated or not (as released: the noise has
              the std of the gradient before modulation, PyTorch's ``Tensor.std()``, i.e. with
              the n - 1 divisor)

Modulation runs for steps in ``[modulation_start, modulation_end)`` (the paper: the first 50 of
100 epochs). The released window is in epochs and closed: ``modulation_starts <= epoch <=
modulation_ends`` (upstream commit 0f64793, June 2022, "Fixed some bugs", replaced the earlier
``starts >= epoch >= ends``, which was never true; the recorded commit 343dc1d has the fix):
``modulation_epoch_steps`` = E > 0 counts ``modulation_start`` / ``modulation_end`` in epochs of
E steps and modulates step t iff ``start <= t // E <= end``. Which tensors: ``modulate=weights``
(ours: every encoder and projection weight tensor with ndim >= 2; our encoders also have dense
kernels) or ``conv`` (released: only the 4-d convolution kernels of the encoders); biases and
BatchNorm scales never.

"Released" (the configs' ``:released`` variant) = ``modulate=conv``, ``modulation_epoch_steps``
= the steps of one epoch with the released window (epochs 0-50 of 100: ``modulation_end`` = half
the run's epochs), SGD(momentum 0.9, ``weight_decay=1e-4``). tests/test_golden_ogm_ge.py
reproduces a recording of the released ``train_epoch`` (tools/golden/record_ogm_ge.py) with it.

Generalisation to M > 2: ``rho_m`` compares modality m with the mean score of the others, so a
modality that is ahead of the rest is slowed down; for M = 2 it is the paper's rule exactly
(except at rho = 1 exactly, where the released code modulates audio by 1 - tanh(alpha)).
Scores average over the samples that have the modality, so missing data does not bias them.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
from flax import nnx

from mmjax import losses
from mmjax.config import NON_NEGATIVE, ExperimentConfig, MethodConfig, ModelConfig, frozen
from mmjax.data.base import DatasetSpec
from mmjax.errors import UserError
from mmjax.methods.base import (Batch, Method, NNXModel, TrainState, cast_inputs, compute_dtype,
                                make_optimizer, one_phase, step_keys)
from mmjax.methods.supervised import gradient_step, initializer, predictor
from mmjax.models.projected import ProjectedEncoders, encoder_modality


@frozen
class OgmGeConfig(MethodConfig):
    """OGM-GE's hyper-parameters.

    Attributes:
      head_dim: width s of every encoder's output (the same backbone as MLA).
      alpha: alpha of eq. 10 (a required flag in the released code; 0.5 here, not tuned).
      ge: add the Gaussian generalisation enhancement (False = plain OGM).
      modulation_start: first step (epoch, with ``modulation_epoch_steps``) with modulation.
      modulation_end: first step without it; -1 = half of train.steps (the paper's 50 of 100
        epochs). With ``modulation_epoch_steps``: the last epoch with it (closed window, as
        released); -1 = half of the run's epochs.
      modulation_epoch_steps: 0 = the window is in steps, ``[start, end)``; E > 0 = in epochs of
        E steps, ``start <= step // E <= end`` (released).
      modulate: ``weights`` (encoder tensors with ndim >= 2) or ``conv`` (released: 4-d only).
    """

    name: str = "ogm_ge"
    head_dim: int = 128
    alpha: Annotated[float, NON_NEGATIVE] = 0.5
    ge: bool = True
    modulation_start: int = 0
    modulation_end: int = -1
    modulation_epoch_steps: Annotated[int, NON_NEGATIVE] = 0
    modulate: Literal["weights", "conv"] = "weights"


def modulation_coefficients(uni_logits: jax.Array, label: jax.Array, present: jax.Array,
                            alpha) -> tuple[jax.Array, jax.Array]:
    """Eq. 10 generalised: ``(k [M], rho [M])`` from unimodal logits ``[B, M, C]``."""
    p = jax.nn.softmax(uni_logits.astype(jnp.float32), -1)
    p_true = jnp.take_along_axis(p, label[:, None, None], -1)[..., 0]  # [B, M]
    w = present.astype(jnp.float32)
    score = (p_true * w).sum(0) / jnp.maximum(w.sum(0), 1.0)  # [M]
    M = score.shape[0]
    others = (score.sum() - score) / max(M - 1, 1)
    rho = score / jnp.maximum(others, 1e-12)
    k = jnp.where(rho > 1.0, 1.0 - jnp.tanh(alpha * rho), 1.0)
    return k, rho


def noise_std(g: jax.Array) -> jax.Array:
    """GE's noise scale for gradient ``g``: ``g.std() + 1e-8`` as released (PyTorch's
    ``Tensor.std()``, the unbiased n - 1 divisor)."""
    return jnp.std(g.astype(jnp.float32), ddof=1) + 1e-8


def modulate(grads, k: jax.Array, modalities: tuple[str, ...], key: jax.Array | None,
             which: str = "weights"):
    """OGM (``key`` None) or OGM-GE: scales encoder m's weight gradients by ``k[m]`` and, with a
    key, adds ``N(0, noise_std)`` noise with the std of the gradient before scaling.
    ``which``: ``weights`` (ndim >= 2) or ``conv`` (ndim == 4, released)."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(grads)
    keys = jax.random.split(key, len(leaves)) if key is not None else [None] * len(leaves)
    out = []
    for (path, g), kk in zip(leaves, keys):
        m = encoder_modality(path)
        if m is None or m not in modalities or (g.ndim != 4 if which == "conv" else g.ndim < 2):
            out.append(g)
            continue
        std = noise_std(g)  # before modulation, as the released update reads it
        g = g * k[modalities.index(m)].astype(g.dtype)
        if kk is not None:
            g = g + std.astype(g.dtype) * jax.random.normal(kk, g.shape, g.dtype)
        out.append(g)
    return jax.tree_util.tree_unflatten(treedef, out)


class ConcatLinearNet(nnx.Module):
    """``ProjectedEncoders`` + one ``Linear(M s, C)`` over the masked, concatenated features."""

    def __init__(self, spec: DatasetSpec, config: ModelConfig, head_dim: int, *, dtype=None,
                 rngs: nnx.Rngs):
        self.enc = ProjectedEncoders(spec, config, head_dim, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(head_dim * spec.num_modalities, spec.num_classes, dtype=dtype,
                               rngs=rngs)
        self.head_dim = head_dim

    def __call__(self, inputs: dict, present: jax.Array, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
        """``(fused [B, C], unimodal logits [B, M, C])``; ``f_m = W_m h_m p_m + b / M``."""
        feats = [self.enc.encode(m, inputs, deterministic=deterministic, rngs=rngs)
                 * present[:, c, None].astype(jnp.float32)
                 for c, m in enumerate(self.enc.names)]
        fused = self.head(jnp.concatenate(feats, -1))
        M, s = len(feats), self.head_dim
        kernel, bias = self.head.kernel[...], self.head.bias[...]
        uni = [h @ kernel[c * s:(c + 1) * s] + bias[None] / M for c, h in enumerate(feats)]
        return fused, jnp.stack(uni, 1)


def released(config: ExperimentConfig, epoch_steps: int) -> ExperimentConfig:
    """Every switch of the released code (tests/test_golden_ogm_ge.py), with ``epoch_steps``
    steps per epoch: 4-d kernels only, the closed window of epochs, SGD weight decay 1e-4."""
    return dataclasses.replace(
        config, method=dataclasses.replace(config.method, modulate="conv",
                                           modulation_epoch_steps=epoch_steps),
        optim=dataclasses.replace(config.optim, weight_decay=1e-4))


def make(config: ExperimentConfig, spec: DatasetSpec) -> Method:
    """OGM-GE on the Method contract; see the module docstring."""
    mc = config.method
    if spec.task != "classification":
        raise UserError(f"ogm_ge needs a classification dataset, {spec.name} is {spec.task}")
    if spec.num_modalities < 2:
        raise UserError("ogm_ge needs at least two modalities")
    modalities = spec.modalities
    epoch = mc.modulation_epoch_steps
    if epoch:
        end = mc.modulation_end if mc.modulation_end >= 0 else config.train.steps // epoch // 2
    else:
        end = mc.modulation_end if mc.modulation_end >= 0 else config.train.steps // 2
    dtype = compute_dtype(config.train.dtype)
    model = NNXModel(lambda rngs: ConcatLinearNet(spec, config.model, mc.head_dim, dtype=dtype,
                                                  rngs=rngs))
    tx = make_optimizer(config.optim, config.train.steps)

    def train_step(state: TrainState, batch: Batch) -> tuple[TrainState, dict]:
        keys = step_keys(state, "dropout", "noise")
        batch = cast_inputs(batch, dtype)
        present, label = batch["present"], batch["label"]

        def objective(params):
            (fused, uni), model_state = model.apply(params, state.model_state, batch["inputs"],
                                                    present, train=True, key=keys["dropout"])
            loss = losses.weighted_mean(losses.per_example(spec.task, fused, label),
                                        present.any(-1))
            return loss, ({"model_state": model_state}, {"unimodal_logits": uni})

        def modulated(grads, aux):
            """OGM(-GE) inside the window: the gradient changed, the coefficients as metrics."""
            k, rho = modulation_coefficients(jax.lax.stop_gradient(aux["unimodal_logits"]),
                                             label, present, mc.alpha)
            if epoch:  # released: a closed window of epochs
                active = ((state.step // epoch >= mc.modulation_start)
                          & (state.step // epoch <= end))
            else:
                active = (state.step >= mc.modulation_start) & (state.step < end)
            k = jnp.where(active, k, 1.0)
            changed = modulate(grads, k, modalities, keys["noise"] if mc.ge else None,
                               mc.modulate)
            grads = jax.tree.map(lambda a, b: jnp.where(active, a, b), changed, grads)
            metrics = {}
            for c, m in enumerate(modalities):
                metrics[f"coeff_{m}"] = k[c]
                metrics[f"ratio_{m}"] = rho[c]
            return grads, metrics

        return gradient_step(state, tx, objective, edit=modulated)

    return Method(init=initializer(model, tx.init), phases=one_phase(train_step),
                  predict=predictor(model, dtype))
