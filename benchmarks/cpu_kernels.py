"""The speed attempts of issue 18 §4 on XLA:CPU, on SMIL's encoders (the cost of every AV-MNIST step).

Times forward + backward (gradient w.r.t. the kernels) of SMIL's sound CNN (three 2x2 convs, 1→32
→48→20 channels on a 20x20 MFCC, then max-pool 2 stride 4) and LeNet-5 (two 5x5 convs, pool 2)
at batch 64, with interchangeable implementations of the convolution, the max-pool and the layout,
interleaved (every round runs each variant once), and checks that every variant computes the same
loss and gradients. Prints one JSON line per network: median ms per step of each variant and its
ratio to XLA's NHWC convolution.

  python benchmarks/cpu_kernels.py                 # implementations, interleaved in one process
  python benchmarks/cpu_kernels.py --flags         # XLA_FLAGS: one process per flag, all at once

``--flags`` runs the XLA:CPU flag settings of ``FLAGS`` as concurrent processes, so that every
setting sees the same machine load (XLA reads its flags once per process); compare ratios only.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

NHWC = ("NHWC", "HWIO", "NHWC")
FLAGS = (
    "",
    "--xla_cpu_experimental_ynn_fusion_type=individual_convolution",
    "--xla_cpu_experimental_onednn_fusion_type=dot,eltwise",
    "--xla_cpu_use_onednn=true",
    "--xla_cpu_experimental_xnn_fusion_type=dot,eltwise",
    "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "--xla_cpu_enable_fast_math=true",
    "--xla_cpu_multi_thread_eigen=false",
)


def xla_conv(x, k):
    """XLA's convolution, NHWC / HWIO (what flax's nnx.Conv emits)."""
    return lax.conv_general_dilated(x, k, (1, 1), "VALID", dimension_numbers=NHWC)


def nchw_conv(x, k):
    """The same convolution computed in NCHW / OIHW (transposes at the boundary)."""
    y = lax.conv_general_dilated(jnp.transpose(x, (0, 3, 1, 2)), jnp.transpose(k, (3, 2, 0, 1)),
                                 (1, 1), "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return jnp.transpose(y, (0, 2, 3, 1))


def patch_conv(x, k):
    """A patch matrix (kh*kw shifted slices side by side) times the flattened kernel."""
    kh, kw, c, o = k.shape
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    patches = jnp.concatenate([x[:, i:i + oh, j:j + ow, :] for i in range(kh) for j in range(kw)],
                              axis=-1)
    return jnp.einsum("bhwp,po->bhwo", patches, k.reshape(kh * kw * c, o))


def shift_conv(x, k):
    """A sum over kernel offsets of shifted-slice matrix products (no patch matrix)."""
    kh, kw, _, _ = k.shape
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    return sum(jnp.einsum("bhwc,co->bhwo", x[:, i:i + oh, j:j + ow, :], k[i, j])
               for i in range(kh) for j in range(kw))


def library_patch_conv(x, k):
    """``lax.conv_general_dilated_patches`` (feature order c, kh, kw) times the kernel."""
    kh, kw, c, o = k.shape
    patches = lax.conv_general_dilated_patches(x, (kh, kw), (1, 1), "VALID", dimension_numbers=NHWC)
    return jnp.einsum("bhwp,po->bhwo", patches, jnp.transpose(k, (2, 0, 1, 3)).reshape(-1, o))


def window_pool(x, window, stride):
    """Max-pool as ``lax.reduce_window`` (its gradient is a select-and-scatter)."""
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, window, window, 1),
                             (1, stride, stride, 1), "VALID")


def reshape_pool(x, window, stride):
    """Max-pool as a reshape and a max over the window axes (gradient: an equality mask)."""
    b, h, w, c = x.shape
    oh, ow = (h - window) // stride + 1, (w - window) // stride + 1
    x = x[:, :oh * stride, :ow * stride, :].reshape(b, oh, stride, ow, stride, c)
    return jnp.max(x[:, :, :window, :, :window, :], axis=(2, 4))


VARIANTS = {  # name -> (convolution, max-pool)
    "xla": (xla_conv, window_pool),
    "nchw": (nchw_conv, window_pool),
    "patch_matmul": (patch_conv, window_pool),
    "shift_matmul": (shift_conv, window_pool),
    "library_patches": (library_patch_conv, window_pool),
    "reshape_pool": (xla_conv, reshape_pool),
}


def sound_cnn(conv, pool, kernels, x):
    """SMIL's sound CNN without BatchNorm (the convolutions and the pool are what is timed)."""
    for k in kernels:
        x = jax.nn.relu(conv(x, k))
    return jnp.sum(pool(x, 2, 4) ** 2)


def lenet5(conv, pool, kernels, x):
    """SMIL's LeNet-5 feature extractor: conv → pool → ReLU, twice."""
    for k in kernels:
        x = jax.nn.relu(pool(conv(x, k), 2, 2))
    return jnp.sum(x ** 2)


NETS = {
    "sound_cnn": (sound_cnn, (64, 20, 20, 1), [(2, 2, 1, 32), (2, 2, 32, 48), (2, 2, 48, 20)]),
    "lenet5": (lenet5, (64, 28, 28, 1), [(5, 5, 1, 5), (5, 5, 5, 10)]),
}


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [float(v) for v in open("/proc/loadavg").read().split()[:3]]


def time_variants(variants: dict, rounds: int, calls: int = 5) -> list[dict]:
    """Per network: every variant's loss and gradients checked against ``xla``, then timed."""
    rng = np.random.default_rng(0)
    records = []
    for net_name, (net, x_shape, k_shapes) in NETS.items():
        x = jnp.asarray(rng.normal(size=x_shape), jnp.float32)
        kernels = [jnp.asarray(0.1 * rng.normal(size=s), jnp.float32) for s in k_shapes]
        steps, reference = {}, None
        for name, (conv, pool) in variants.items():
            step = jax.jit(jax.value_and_grad(
                lambda ks, x, conv=conv, pool=pool: net(conv, pool, ks, x)))
            value, grads = jax.block_until_ready(step(kernels, x))
            if reference is None:
                reference = (value, grads)
            np.testing.assert_allclose(value, reference[0], rtol=1e-4)
            for g, g0 in zip(grads, reference[1]):
                np.testing.assert_allclose(g, g0, rtol=2e-3, atol=2e-4)
            steps[name] = step
        times = {name: [] for name in steps}
        start = load()
        for _ in range(rounds):
            for name, step in steps.items():
                t = time.perf_counter()
                for _ in range(calls):
                    out = step(kernels, x)
                jax.block_until_ready(out)
                times[name].append((time.perf_counter() - t) / calls * 1e3)
        ms = {name: round(float(np.median(v)), 3) for name, v in times.items()}
        first = next(iter(ms.values()))
        records.append({"network": net_name, "batch": x_shape[0], "ms_per_step": ms,
                        "ratio": {name: round(v / first, 3) for name, v in ms.items()},
                        "xla_flags": os.environ.get("XLA_FLAGS", ""), "rounds": rounds,
                        "load_avg": start + load(), "jax": jax.__version__})
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", action="store_true", help="compare XLA_FLAGS settings")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--only-xla", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.flags:
        variants = {"xla": VARIANTS["xla"]} if args.only_xla else VARIANTS
        for record in time_variants(variants, args.rounds):
            print(json.dumps(record), flush=True)
        return
    procs = [subprocess.Popen([sys.executable, __file__, "--only-xla", "--rounds", str(args.rounds)],
                              env={**os.environ, "XLA_FLAGS": flags}, stdout=subprocess.PIPE,
                              text=True) for flags in FLAGS]
    for proc in procs:
        out, _ = proc.communicate()
        sys.stdout.write(out)


if __name__ == "__main__":
    main()
