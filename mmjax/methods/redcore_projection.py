"""RedCore's supervision regulation ("Red"): moving averages, relative advantage, the eta update.

Sun et al., "RedCore: Relative Advantage Aware Cross-Modal Representation Learning for Missing
Modalities with Imbalanced Missing Rates", AAAI 2024 (papers/000), section "Red". Pure functions
of small vectors (one entry per modality), used inside RedCore's jitted training step:

- ``moving_average``: eq. (10), L_MAL^m <- (1 - beta) L_MAL^m + beta L_MSE^m;
- ``relative_advantage``: eqs. (4)-(5), RA^m = (mean_k L^k - L^m) / mean_k L^k (sums to zero,
  eq. 8);
- ``project_exact``: the Euclidean projection onto Gamma_1 = {eta >= xi1 1, ||eta||_2 = xi2}
  used by eq. (9) (the paper's rule);
- ``project_clamp_normalize``: the released code's rule, eta <- max(eta, xi1), then
  eta <- xi2 eta / ||eta||_2 (official-code-notes §1.4); after the normalisation a component can
  fall below xi1, so the result is not always in Gamma_1;
- ``update_eta``: eq. (9), eta <- Pro_Gamma1[eta - alpha1 r].

The exact projection. Because ||eta|| is fixed on Gamma_1, the nearest point to v maximises
<eta, v>. (a) If some v_i > 0 the maximiser of this linear function over the convex relaxation
Gamma_2 = {eta >= xi1, ||eta|| <= xi2} lies on the sphere (raising a positive coordinate helps), so
it is the projection onto Gamma_1 too; its KKT conditions give eta = max(xi1 1, c v) with the unique
c > 0 for which ||eta|| = xi2, found in closed form over the sorted coordinates. (b) If every
v_i <= 0 we minimise sum_i |v_i| eta_i over the sphere patch: a linear function with non-negative
weights has no interior minimum on any face of the patch, so the minimum sits at a vertex where all
coordinates but one equal xi1, the free one being the largest v_i. Both cases need
M xi1^2 <= xi2^2 (Gamma_1 non-empty), which ``check_constraints`` enforces.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mmjax.errors import UserError

_TINY = 1e-12


def check_constraints(num_modalities: int, xi1: float, xi2: float) -> None:
    """``UserError`` unless Gamma_1 = {eta >= xi1, ||eta||_2 = xi2} is non-empty with xi1 > 0."""
    if xi1 <= 0 or xi2 <= 0:
        raise UserError(f"method.xi1 and method.xi2 must be positive, got {xi1}, {xi2}")
    if num_modalities * xi1 ** 2 > xi2 ** 2:
        raise UserError(f"Gamma_1 is empty: {num_modalities} modalities * xi1^2 = "
                        f"{num_modalities * xi1 ** 2:g} > xi2^2 = {xi2 ** 2:g}")


def moving_average(mal: jax.Array, loss: jax.Array, beta: float, valid: jax.Array,
                   first: jax.Array) -> jax.Array:
    """Eq. (10): ``(1 - beta) * mal + beta * loss``; ``loss`` itself on the first step.

    Args:
      mal: previous moving averages ``[M]``.
      loss: this step's imputation losses ``[M]``.
      beta: weight of the new value (paper 0.7).
      valid: ``bool[M]``, False where the batch had no sample of modality m (its loss is not
        defined): the previous average is kept, as the released code does.
      first: scalar bool, the first step (no previous average yet).
    """
    new = jnp.where(first, loss, (1.0 - beta) * mal + beta * loss)
    return jnp.where(valid, new, mal)


def relative_advantage(losses: jax.Array) -> jax.Array:
    """Eqs. (4)-(5): ``(mean(losses) - losses) / mean(losses)``; positive = stronger modality.

    The mean is floored at a tiny positive number so all-zero losses give zero advantages.
    """
    mean = losses.mean()
    return (mean - losses) / jnp.maximum(mean, _TINY)


def project_exact(v: jax.Array, xi1: float, xi2: float) -> jax.Array:
    """The nearest point of Gamma_1 = {eta >= xi1 1, ||eta||_2 = xi2} to ``v`` (see module doc)."""
    m = v.shape[-1]
    # (a) eta = max(xi1, c v): with the k largest coordinates above xi1,
    #     c_k^2 sum_{top k} v^2 + (M - k) xi1^2 = xi2^2.
    order = jnp.argsort(-v)
    vs = v[order]  # descending
    k = jnp.arange(1, m + 1)
    top_sq = jnp.cumsum(jnp.where(vs > 0, vs, 0.0) ** 2)
    c = jnp.sqrt(jnp.maximum(xi2 ** 2 - (m - k) * xi1 ** 2, 0.0) / jnp.maximum(top_sq, _TINY))
    nxt = jnp.concatenate([vs[1:], jnp.full((1,), -jnp.inf, vs.dtype)])
    # Valid k: its k-th coordinate is positive and clears xi1, the next one does not.
    valid = (vs > 0) & (c * vs >= xi1 * (1 - 1e-6)) & (c * nxt <= xi1 * (1 + 1e-6))
    c_star = c[jnp.argmax(valid)]
    case_a = jnp.maximum(xi1, c_star * v)
    # (b) every v_i <= 0: xi1 everywhere except the largest v_i, which takes the rest of the norm.
    top = jnp.sqrt(jnp.maximum(xi2 ** 2 - (m - 1) * xi1 ** 2, 0.0))
    case_b = jnp.where(jnp.arange(m) == jnp.argmax(v), top, xi1)
    return jnp.where(v.max() > 0, case_a, case_b)


def project_clamp_normalize(v: jax.Array, xi1: float, xi2: float) -> jax.Array:
    """The released rule: ``max(v, xi1)`` then rescaled to L2 norm ``xi2`` (not a projection)."""
    clamped = jnp.maximum(v, xi1)
    return xi2 * clamped / jnp.maximum(jnp.linalg.norm(clamped), _TINY)


PROJECTIONS = {"exact": project_exact, "clamp_normalize": project_clamp_normalize}


def update_eta(eta: jax.Array, ra: jax.Array, alpha, xi1: float, xi2: float,
               projection: str = "exact") -> jax.Array:
    """Eq. (9): ``Pro_Gamma1[eta - alpha * ra]`` with the chosen projection rule."""
    return PROJECTIONS[projection](eta - alpha * ra, xi1, xi2)
