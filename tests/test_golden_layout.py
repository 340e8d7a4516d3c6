"""The PyTorch → Flax weight layouts of tools/golden/layout.py, checked against direct computation."""

import numpy as np
from jax import lax

from tools.golden import layout


def _torch_conv2d(x_nchw, w_oihw):
    """Cross-correlation as PyTorch's Conv2d (valid padding, stride 1), written out in numpy."""
    b, c, h, w = x_nchw.shape
    o, _, kh, kw = w_oihw.shape
    out = np.zeros((b, o, h - kh + 1, w - kw + 1))
    for i in range(h - kh + 1):
        for j in range(w - kw + 1):
            patch = x_nchw[:, :, i:i + kh, j:j + kw]
            out[:, :, i, j] = np.einsum("bchw,ochw->bo", patch, w_oihw)
    return out


def test_conv_kernel_matches_torch_cross_correlation():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 5))
    w = rng.normal(size=(4, 3, 3, 2))
    want = _torch_conv2d(x, w)
    got = lax.conv_general_dilated(layout.nchw_to_nhwc(x), layout.conv_kernel(w), (1, 1), "VALID",
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   precision=lax.Precision.HIGHEST)
    # float32 on the JAX side (x64 is off): values are O(1), so an absolute bound is the right one.
    np.testing.assert_allclose(np.transpose(np.asarray(got), (0, 3, 1, 2)), want, atol=1e-5)


def test_conv1d_kernel_is_width_in_out():
    w = np.arange(4 * 3 * 5).reshape(4, 3, 5)
    k = layout.conv_kernel(w)
    assert k.shape == (5, 3, 4) and k[2, 1, 3] == w[3, 1, 2]


def test_dense_kernel_after_flatten_matches_chw_view():
    rng = np.random.default_rng(1)
    c, h, w, out = 3, 4, 2, 5
    fmap = rng.normal(size=(2, c, h, w))
    weight = rng.normal(size=(out, c * h * w))
    want = fmap.reshape(2, -1) @ weight.T  # PyTorch: view(B, -1) of NCHW, then Linear
    got = layout.nchw_to_nhwc(fmap).reshape(2, -1) @ layout.dense_kernel_after_flatten(weight, c, h, w)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(layout.dense_kernel(weight), weight.T)


def test_dense_kernel_after_flatten_checks_size():
    import pytest

    with pytest.raises(ValueError, match="not 3\\*4\\*2"):
        layout.dense_kernel_after_flatten(np.zeros((5, 23)), 3, 4, 2)
