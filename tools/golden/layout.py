"""PyTorch → JAX weight layouts, so recorded weights load into mmjax's modules unchanged.

PyTorch stores a convolution kernel as OIHW and a linear weight as (out, in); Flax stores HWIO and
(in, out). A linear layer after ``x.view(B, -1)`` on an NCHW feature map sees the features in
C, H, W order, while mmjax flattens NHWC maps in H, W, C order: its kernel rows must be permuted.
The recording scripts and the golden tests share these functions (the tests need no torch).
"""

from __future__ import annotations

import numpy as np


def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """A PyTorch convolution weight (O, I, kH[, kW]) as a Flax kernel (kH[, kW], I, O)."""
    weight = np.asarray(weight)
    return np.transpose(weight, tuple(range(2, weight.ndim)) + (1, 0))


def dense_kernel(weight: np.ndarray) -> np.ndarray:
    """A PyTorch ``nn.Linear`` weight (out, in) as a Flax ``Dense`` kernel (in, out)."""
    return np.asarray(weight).T


def dense_kernel_after_flatten(weight: np.ndarray, channels: int, height: int,
                               width: int) -> np.ndarray:
    """The kernel of a Linear that follows ``view(B, -1)`` of an NCHW map, for an NHWC flatten.

    Row ``(h, w, c)`` of the returned (in, out) kernel is PyTorch's input column ``(c, h, w)``.
    """
    weight = np.asarray(weight)
    out = weight.shape[0]
    if weight.shape[1] != channels * height * width:
        raise ValueError(f"weight has {weight.shape[1]} inputs, not {channels}*{height}*{width}")
    chw = weight.reshape(out, channels, height, width)
    return np.transpose(chw, (2, 3, 1, 0)).reshape(height * width * channels, out)


def nchw_to_nhwc(x: np.ndarray) -> np.ndarray:
    """An input batch (B, C, H, W) as (B, H, W, C)."""
    return np.transpose(np.asarray(x), (0, 2, 3, 1))
