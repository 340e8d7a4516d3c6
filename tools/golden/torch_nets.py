"""PyTorch twins of the mmjax encoders the recordings feed to the authors' training code.

The authors' scripts train ResNets, BERTs and M3AEs that mmjax does not have; what is recorded is
their training *rule* (loss, fusion, optimiser loop, modulation, history), so each recording
plugs these small twins of mmjax's own modules (``mmjax/models/encoders.py``, ``ProjectedEncoders``,
``MLPHead``) into the authors' model interface. Module attribute names follow mmjax's, so
``flax_named`` turns a state dict into mmjax's ``/``-joined names in Flax layout.
Used only by the recording scripts (torch is no dependency of mmjax or its tests).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from tools.golden import layout


class MLPEncoder(nn.Module):
    """mmjax ``MLPEncoder``: flatten -> fc1 -> ReLU -> dropout -> fc2 -> ReLU."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = x.reshape(x.shape[0], -1)
        return torch.relu(self.fc2(self.drop(torch.relu(self.fc1(x)))))


class LeNet5(nn.Module):
    """mmjax ``LeNet5`` (SMIL's image features) on ``[B, 1, 28, 28]`` -> 160, H, W, C order."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 5, 5)
        self.conv2 = nn.Conv2d(5, 10, 5)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = torch.relu(nn.functional.max_pool2d(self.conv1(x), 2))
        x = torch.relu(nn.functional.max_pool2d(self.drop(self.conv2(x)), 2))
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # H, W, C as mmjax flattens


class SoundCNN(nn.Module):
    """mmjax ``SoundCNN`` (SMIL's ``SNetPluse`` features) on ``[B, 1, 20, 20]`` -> 320."""

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        chans = (1, 32, 48, 20)
        self.convs = nn.ModuleList([nn.Conv2d(a, b, 2) for a, b in zip(chans, chans[1:])])
        self.norms = nn.ModuleList([nn.BatchNorm2d(c) for c in chans[1:]])
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        for conv, norm in zip(self.convs, self.norms):
            x = torch.relu(norm(conv(x)))
        x = self.drop(nn.functional.max_pool2d(x, 2, 4))
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)


class MLPHead(nn.Module):
    """mmjax ``MLPHead``: fc1 -> ReLU -> dropout -> fc2."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, hidden)
        self.fc2 = nn.Linear(hidden, out_dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.fc2(self.drop(torch.relu(self.fc1(x))))


class ProjectedEncoders(nn.Module):
    """mmjax ``ProjectedEncoders``: ``relu(project[m](encoders[m](x)))`` per modality."""

    def __init__(self, encoders: dict[str, nn.Module], out_dims: dict[str, int], head_dim: int):
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.project = nn.ModuleDict({m: nn.Linear(out_dims[m], head_dim) for m in encoders})

    def encode(self, m: str, x):
        """Features ``[B, s]`` of modality ``m``."""
        return torch.relu(self.project[m](self.encoders[m](x)))


def flax_named(module: nn.Module, prefix: str = "") -> tuple[dict, dict]:
    """``(params, model_state)`` of ``module`` as mmjax names -> float32 numpy in Flax layout.

    Linear ``weight`` -> ``kernel`` (transposed), Conv2d ``weight`` -> HWIO ``kernel``, BatchNorm
    ``weight``/``bias`` -> ``scale``/``bias`` and ``running_mean``/``running_var`` ->
    ``mean``/``var`` (model state). A ``prefix`` module path is dropped from the names.
    """
    params, state = {}, {}
    for path, sub in module.named_modules():
        if prefix and not path.startswith(prefix):
            continue
        name = path[len(prefix):].lstrip(".").replace(".", "/")
        join = (lambda leaf: f"{name}/{leaf}" if name else leaf)
        if isinstance(sub, nn.Linear):
            params[join("kernel")] = layout.dense_kernel(_np(sub.weight))
            if sub.bias is not None:
                params[join("bias")] = _np(sub.bias)
        elif isinstance(sub, nn.Conv2d):
            params[join("kernel")] = layout.conv_kernel(_np(sub.weight))
            if sub.bias is not None:
                params[join("bias")] = _np(sub.bias)
        elif isinstance(sub, nn.BatchNorm2d):
            params[join("scale")] = _np(sub.weight)
            params[join("bias")] = _np(sub.bias)
            state[join("mean")] = _np(sub.running_mean)
            state[join("var")] = _np(sub.running_var)
    return params, state


def grads_named(module: nn.Module) -> dict:
    """The ``.grad`` of every parameter as ``flax_named`` names them (zeros where None)."""
    saved = {n: p.data.clone() for n, p in module.named_parameters()}
    with torch.no_grad():
        for _, p in module.named_parameters():
            p.data = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
    grads, _ = flax_named(module)
    with torch.no_grad():
        for n, p in module.named_parameters():
            p.data = saved[n]
    return grads


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)
