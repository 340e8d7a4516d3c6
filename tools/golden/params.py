"""Recorded weights in and out of mmjax parameter trees, by name.

A recording stores each weight under its mmjax path joined by ``/`` (``enc/project/a/kernel``),
already in Flax layout (``layout.py``). ``load`` puts such arrays into a freshly initialised tree
(``state.params`` or ``state.model_state``), refusing a missing, unused or mis-shaped name, so a
renamed layer fails loudly; ``named`` reads a tree back for comparison. No torch needed.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np



def path_name(path) -> str:
    """A ``jax.tree_util`` path as ``enc/encoders/audio/norms/0/mean``: keys, attribute names and
    list indices joined by ``/``, the trailing ``value`` of an ``nnx.Variable`` dropped."""
    parts = [str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", None)))) for k in path]
    if parts and parts[-1] == "value":
        parts.pop()
    return "/".join(parts)


def named(tree) -> dict[str, jax.Array]:
    """Every leaf of ``tree`` by its ``path_name``."""
    return {path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def load(tree, arrays: Mapping[str, np.ndarray], prefix: str = ""):
    """``tree`` with every leaf replaced by ``arrays[prefix + name]`` (same shape, leaf dtype).

    Raises:
      KeyError: a leaf has no array, or an array under ``prefix`` matches no leaf.
      ValueError: shapes differ.
    """
    wanted = {k[len(prefix):] for k in arrays if k.startswith(prefix)}
    used = set()

    def put(path, leaf):
        name = path_name(path)
        if name not in wanted:
            raise KeyError(f"no recorded array for {prefix + name}")
        value = np.asarray(arrays[prefix + name])
        if value.shape != leaf.shape:
            raise ValueError(f"{prefix + name}: recorded {value.shape}, mmjax {leaf.shape}")
        used.add(name)
        return jnp.asarray(value, leaf.dtype)

    out = jax.tree_util.tree_map_with_path(put, tree)
    if wanted - used:
        raise KeyError(f"recorded arrays match no mmjax leaf: {sorted(wanted - used)}")
    return out


def seeded(names, shapes, lows, highs, seed: int) -> dict[str, np.ndarray]:
    """Weights regenerated instead of stored, for a recording too large to keep whole.

    ``names[i]`` gets a float32 array of ``shapes[i]`` drawn uniformly from ``[lows[i],
    highs[i])``; one ``np.random.default_rng(seed)`` draws them in order, so the recording script
    (which stores only these lists and the seed) and the test (no torch) build the same arrays.
    """
    rng = np.random.default_rng(seed)
    return {str(n): rng.uniform(lo, hi, tuple(int(d) for d in s)).astype(np.float32)
            for n, s, lo, hi in zip(names, shapes, lows, highs)}
