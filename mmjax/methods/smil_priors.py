"""SMIL's modality priors: K-means (default) or PCA over modality-2 features, in JAX.

Ma et al., "SMIL: Multimodal Learning with Severely Missing Modality", AAAI 2021 (papers/004),
section "Missing Modality Reconstruction": the priors ``M`` are "clustered among all
modality-complete samples using K-means (MacQueen 1967) or PCA (Pearson 1901)". The released code
(official-code-notes §5.3) runs ``sklearn.cluster.KMeans(n_clusters=10)`` over the 320-d sound
features of the paired training subset; PCA priors are described but were never released.

Both functions take a fixed-size feature matrix with a validity weight per row (rows of an unfilled
memory have weight 0), so they run inside a jitted step with static shapes, and are deterministic
for a key: the same key and data give bit-identical priors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _sq_dists(x: jax.Array, centers: jax.Array) -> jax.Array:
    """``[N, K]`` squared Euclidean distances."""
    return ((x[:, None, :] - centers[None, :, :]) ** 2).sum(-1)


def kmeans_plusplus(key: jax.Array, x: jax.Array, weights: jax.Array, k: int) -> jax.Array:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) restricted to rows with weight > 0.

    The first centre is drawn with probability proportional to ``weights``, each next one with
    probability proportional to ``weights * min squared distance to the chosen centres``.
    Returns ``[k, D]``.
    """
    n = x.shape[0]
    keys = jax.random.split(key, k)
    w = jnp.maximum(weights.astype(x.dtype), 0.0)

    def pick(key, probs):
        total = probs.sum()
        # With no valid row (empty memory) fall back to a uniform pick: the priors are then
        # meaningless but finite, and the caller's weights keep them out of every loss.
        probs = jnp.where(total > 0, probs / jnp.where(total > 0, total, 1.0), 1.0 / n)
        return jax.random.choice(key, n, p=probs)

    first = x[pick(keys[0], w)]
    centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(first)
    dist = ((x - first[None, :]) ** 2).sum(-1)

    def body(i, carry):
        centers, dist = carry
        c = x[pick(keys[i], w * dist)]
        return centers.at[i].set(c), jnp.minimum(dist, ((x - c[None, :]) ** 2).sum(-1))

    centers, _ = jax.lax.fori_loop(1, k, body, (centers, dist))
    return centers


def kmeans(key: jax.Array, x: jax.Array, weights: jax.Array, k: int,
           iters: int = 50) -> jax.Array:
    """Weighted Lloyd's K-means from k-means++ seeds: the K-means priors, ``[k, D]``.

    Args:
      key: seeding key (the only randomness).
      x: ``[N, D]`` features.
      weights: ``[N]`` row weights; 0 excludes a row (an unfilled memory slot).
      k: number of clusters K (the paper and released code use 10).
      iters: Lloyd iterations (a fixed count, so the loop has a static trip count).

    A cluster that loses all its points keeps its previous centre.
    """
    w = weights.astype(x.dtype)
    centers = kmeans_plusplus(key, x, w, k)

    def body(_, centers):
        assign = jnp.argmin(_sq_dists(x, centers), -1)
        onehot = jax.nn.one_hot(assign, k, dtype=x.dtype) * w[:, None]  # [N, K]
        mass = onehot.sum(0)
        sums = onehot.T @ x
        return jnp.where(mass[:, None] > 0, sums / jnp.maximum(mass, 1e-12)[:, None], centers)

    return jax.lax.fori_loop(0, iters, body, centers)


def pca(x: jax.Array, weights: jax.Array, k: int) -> jax.Array:
    """PCA priors: ``mean + sqrt(lambda_i) v_i`` for the top-k principal axes, ``[k, D]``.

    The paper names PCA without saying how components become priors; we place one prior one
    standard deviation along each of the k leading axes from the (weighted) mean, so that their
    average is the mean feature and the reconstruction stays in the data's region. Eigenvector
    signs are fixed (largest-magnitude entry positive), so the result is deterministic.
    """
    w = weights.astype(x.dtype)
    total = jnp.maximum(w.sum(), 1.0)
    mean = (w[:, None] * x).sum(0) / total
    xc = (x - mean[None, :]) * jnp.sqrt(w)[:, None]
    cov = xc.T @ xc / total
    evals, evecs = jnp.linalg.eigh(cov)  # ascending
    evals, evecs = evals[::-1][:k], evecs[:, ::-1][:, :k]  # [k], [D, k]
    idx = jnp.argmax(jnp.abs(evecs), 0)
    signs = jnp.sign(evecs[idx, jnp.arange(k)])
    evecs = evecs * jnp.where(signs == 0, 1.0, signs)[None, :]
    return mean[None, :] + (jnp.sqrt(jnp.maximum(evals, 0.0))[:, None] * evecs.T)
