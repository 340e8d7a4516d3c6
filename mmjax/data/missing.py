"""Missing-modality protocols: samplers of ``present`` masks, subset enumeration, zero-filling.

Every sampler is a pure JAX function returning ``bool[N, M]`` (True = modality present) with a
shape fixed by its static arguments (``n``, the number of modalities, ``mode``). Rates, masks and
labels are ordinary array arguments, so they may be traced: changing a rate inside a jitted
training step never retraces or recompiles (DESIGN §2, §5). Counts that depend on a rate
(``round(rate * n)`` and friends) are computed in-graph and compared against random ranks, which
is what keeps the shapes static.

Protocols and where they come from:

- ``independent``: per-modality missing rates, possibly imbalanced (RedCore, AAAI'24,
  ``RedCore/missing_index.py``);
- ``at_least_one``: CPM-Net's sampler as copied into MLA (``dataset/dataset.py::random_mask``);
- ``paired_fraction``: SMIL's "100% modality 1 + eta% modality 2" (AAAI'21);
- ``augmentation_dropout``: UME-MMA's missing-modality augmentation (§3.3, drop p = 0.3);
- ``test_missing_rate``: a test-time rate with every sample keeping a modality (MLA §3.2);
- ``all_subsets`` / ``subset_mask``: the 2^M - 1 test patterns (RedCore/MMIN/RAML);
- ``apply``: the batch contract's zero-fill of missing inputs.

Rates given as Python numbers are validated with ``check_rate`` (a ``UserError`` outside [0, 1]);
traced rates cannot be checked and are clipped where a formula needs it.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from mmjax.data.base import length_key
from mmjax.errors import UserError

__all__ = [
    "all_subsets",
    "apply",
    "at_least_one",
    "augmentation_dropout",
    "check_rate",
    "independent",
    "paired_fraction",
    "subset_mask",
    "test_missing_rate",
]


# --------------------------------------------------------------------------------------------
# Validation


def check_rate(name: str, value) -> None:
    """Raises ``UserError`` unless ``value`` is a rate in [0, 1].

    Only concrete host values are checked: Python and NumPy numbers, and lists/tuples/NumPy arrays
    of them. JAX arrays are skipped on purpose, because inside ``jax.jit`` they are tracers whose
    value is unknown; validating them would need a host sync or fail. The config layer calls this
    on user input before any training starts.

    Args:
      name: what the value is called in the user's config, used in the message.
      value: a number, or a sequence / NumPy array of numbers.

    Raises:
      UserError: if a concrete value is not a real number, is NaN, or lies outside [0, 1].
    """
    if isinstance(value, jax.Array):
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_rate(f"{name}[{i}]", v)
        return
    if isinstance(value, np.ndarray):
        real = np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)
        if not real:
            raise UserError(f"{name} must hold rates in [0, 1], got an array of {value.dtype}")
        flat = value.ravel()
        bad = ~((flat >= 0) & (flat <= 1))  # NaN fails both comparisons, so it is flagged too
        if bad.any():
            i = int(np.argmax(bad))
            raise UserError(f"{name} must lie in [0, 1], got {flat[i]!r} at flat index {i}")
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise UserError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0.0 <= float(value) <= 1.0:
        raise UserError(f"{name} must lie in [0, 1], got {value!r}")


# --------------------------------------------------------------------------------------------
# Helpers


def _ranks(key: jax.Array, shape: tuple[int, ...], axis: int = 0) -> jax.Array:
    """Uniformly random ranks 0..shape[axis]-1 along ``axis``: a random permutation per column."""
    u = jax.random.uniform(key, shape)
    return jnp.argsort(jnp.argsort(u, axis=axis), axis=axis)


def _round_count(x: jax.Array) -> jax.Array:
    """Nearest integer, halves rounded up (``floor(x + 0.5)``); robust to float32 error."""
    return jnp.floor(x + 0.5).astype(jnp.int32)


def _floor_count(x: jax.Array) -> jax.Array:
    """``int(x)`` as Python computes it on a float64 product, reproduced in float32.

    ``float32(0.7) * 10`` is 6.9999999 where Python's ``0.7 * 10`` is 7.000000000000001, so a bare
    floor would lose one sample. Scaling by (1 + 1e-6) absorbs float32's ~1.2e-7 relative error of
    the rate and the product; it can only mis-round a product whose fractional part lies within
    1e-6 relative of the next integer, which needs a rate with 6+ significant digits.
    """
    return jnp.floor(x * (1.0 + 1e-6)).astype(jnp.int32)


def _uniform_choice(key: jax.Array, allowed: jax.Array) -> jax.Array:
    """One index per row chosen uniformly among the True entries of ``allowed`` ([N, M] -> [N]).

    Rows without a True entry get an arbitrary index; callers mask them out.
    """
    score = jnp.where(allowed, jax.random.uniform(key, allowed.shape), -1.0)  # [N, M]
    return jnp.argmax(score, axis=1)


def _one_hot(idx: jax.Array, m: int) -> jax.Array:
    return idx[:, None] == jnp.arange(m)[None, :]  # [N, M]


def _as_rates(rates) -> jax.Array:
    check_rate("rates", rates)  # checks concrete values only; traced ones pass through
    r = jnp.asarray(rates, jnp.float32)
    if r.ndim != 1:
        raise ValueError(f"rates must be one rate per modality (a vector), got shape {r.shape}")
    return r


# --------------------------------------------------------------------------------------------
# Training-time protocols


def independent(
    key: jax.Array,
    n: int,
    rates,
    *,
    exact: bool = True,
    forbid_empty: bool = False,
) -> jax.Array:
    """Each modality independently missing for a fraction ``rates[m]`` of the samples (RedCore).

    ``exact=True`` reproduces RedCore's ``missing_pattern``: for every modality, a uniformly random
    subset of exactly ``int(n * rates[m])`` samples (NumPy ``choice(..., replace=False)``; note
    the *truncation*, not rounding: n = 5, rate 0.7 gives 3) is marked missing, independently of
    the other modalities. ``exact=False`` draws each entry from Bernoulli(rates[m]) instead.

    With independent draws a sample can lose every modality (RedCore's code allows it: with rates
    (0.2, 0.5, 0.8) about 8% of samples do). ``forbid_empty=True`` prevents it:

    - ``exact=True``: the per-modality counts stay exactly ``int(n * rates[m])``. The columns are
      drawn one after another in a random order; each column's present set is a uniform random
      subset of its size, except that it must contain just enough of the still-empty samples for
      the remaining columns to be able to cover the rest (with the last column covering all that
      remain). While that constraint is slack, columns are independent as without the switch.
      This succeeds whenever any such mask exists, i.e. ``sum_m int(n * rates[m]) <= n (M - 1)``
      (enough present entries to give every sample one). Beyond that limit the samples left empty
      get one modality back, chosen uniformly, so those modalities end with fewer missing samples
      than requested.
    - ``exact=False``: each empty sample gets one modality back, chosen uniformly among all M, so
      the realised missing rate of modality m is ``rates[m] - prod(rates) / M`` in expectation.

    Args:
      key: a typed PRNG key.
      n: number of samples (static).
      rates: float[M] missing rate per modality, e.g. ``(0.2, 0.5, 0.8)``; may be traced.
      exact: exact per-modality counts (released code) rather than Bernoulli draws.
      forbid_empty: never leave a sample without any modality (see above).

    Returns:
      bool[n, M] mask, True where the modality is present.

    References:
      Sun et al., "RedCore", AAAI 2024; ``sunjunaimer/RedCore``, ``RedCore/missing_index.py``
      (``missing_pattern``). Official-code notes §1.5.
    """
    r = _as_rates(rates)  # [M]
    m = r.shape[0]
    k_draw, k_fix = jax.random.split(key)
    if exact:
        count = _floor_count(jnp.clip(r, 0.0, 1.0) * n)  # [M] missing per modality
        if forbid_empty:
            present = _exact_covering(k_draw, n, n - count)
        else:
            present = _ranks(k_draw, (n, m), axis=0) >= count[None, :]  # [N, M]
    else:
        present = jax.random.uniform(k_draw, (n, m)) >= r[None, :]  # [N, M]
    if forbid_empty:
        present = _repair_empty(k_fix, present)  # a no-op for exact counts unless infeasible
    return present


def _exact_covering(key: jax.Array, n: int, keep: jax.Array) -> jax.Array:
    """A mask with column sums ``keep`` ([M]) and no empty row whenever ``sum(keep) >= n``.

    Columns are filled in a random order. Before filling a column with ``keep[c]`` present rows,
    E rows are still empty and the later columns hold F present entries in total; the column must
    cover at least ``q = max(0, E - F)`` of the empty rows (chosen uniformly among them) so that
    the later columns can cover the others, and its other ``keep[c] - q`` rows are uniform among the
    rest. Invariant E <= F (true at the start iff sum(keep) >= n) gives q <= keep[c], so every
    column gets its exact count and no row is left empty.
    """
    m = keep.shape[0]
    k_perm, k_cols = jax.random.split(key)
    order = jax.random.permutation(k_perm, m)  # [M] column order
    keep_ordered = keep[order]
    later = jnp.sum(keep_ordered) - jnp.cumsum(keep_ordered)  # [M] present entries after column i
    present = jnp.zeros((n, m), jnp.bool_)
    keys = jax.random.split(k_cols, m)
    for i in range(m):  # static M
        c = order[i]
        k_forced, k_rest = jax.random.split(keys[i])
        empty = ~present.any(axis=1)  # [N]
        q = jnp.maximum(empty.sum() - later[i], 0)
        u_empty = jnp.where(empty, jax.random.uniform(k_forced, (n,)), 2.0)
        empty_rank = jnp.argsort(jnp.argsort(u_empty))  # empty rows take ranks 0..E-1
        forced = empty & (empty_rank < q)  # [N]
        score = jnp.where(forced, -1.0, jax.random.uniform(k_rest, (n,)))  # forced rows rank first
        column = jnp.argsort(jnp.argsort(score)) < keep_ordered[i]  # [N]
        present = present.at[:, c].set(column)
    return present


def _repair_empty(key: jax.Array, present: jax.Array) -> jax.Array:
    """Gives each empty row one modality back, chosen uniformly among all M."""
    n, m = present.shape
    empty = ~present.any(axis=1)  # [N]
    pick = jax.random.randint(key, (n,), 0, m)  # [N]
    return present | (empty[:, None] & _one_hot(pick, m))


def at_least_one(
    key: jax.Array,
    n: int,
    num_modalities: int,
    rate,
    *,
    exact: bool = True,
) -> jax.Array:
    """CPM-Net's sampler (used by MLA): a fraction ``rate`` of (sample, modality) entries missing,
    every sample keeping at least one modality.

    ``rate`` is the *entry-wise* missing rate, as in CPM-Net's ``random_mask`` and MLA §3.2 ("we
    randomly mask each modality of each sample with a probability eta"); it is not the fraction
    of incomplete samples. The sampler works like CPM-Net's: every sample first keeps one modality
    chosen uniformly at random; the remaining ``n * (M - 1)`` entries are then dropped so that
    ``rate * n * M`` entries are missing in total.

    - ``exact=True``: exactly ``round(rate * n * M)`` missing entries, a uniformly random subset of
      the non-kept ones. CPM-Net draws Bernoulli entries and redraws until the realised rate is
      within 0.005 of the target; this is the zero-tolerance version of the same distribution.
    - ``exact=False``: each non-kept entry missing with probability ``rate * M / (M - 1)`` (one
      draw, no redraw loop).

    A rate of ``(M - 1) / M`` or more leaves exactly one modality per sample, which is also what
    CPM-Net returns in that regime (its ``one_rate <= 1 / view_num`` branch). With M = 1 nothing
    can be dropped and the mask is all True.

    Args:
      key: a typed PRNG key.
      n: number of samples (static).
      num_modalities: M (static).
      rate: entry-wise missing rate in [0, 1]; may be traced.
      exact: exact count of missing entries rather than independent draws.

    Returns:
      bool[n, M] mask, True where present; every row has at least one True.

    References:
      Zhang et al., "Deep Partial Multi-View Learning" (CPM-Net), TPAMI 2022; its
      ``random_mask`` as copied into ``Cecile-hi/Multimodal-Learning-with-Alternating-Unimodal-
      Adaptation``, ``dataset/dataset.py``. Official-code notes §3.5.
    """
    if isinstance(rate, numbers.Real):
        check_rate("rate", rate)
    m = num_modalities
    if m == 1:
        return jnp.ones((n, 1), jnp.bool_)
    rate = jnp.clip(jnp.asarray(rate, jnp.float32), 0.0, (m - 1) / m)
    k_keep, k_drop = jax.random.split(key)
    kept = _one_hot(jax.random.randint(k_keep, (n,), 0, m), m)  # [N, M] one guaranteed modality
    u = jax.random.uniform(k_drop, (n, m))  # [N, M]
    if exact:
        total = jnp.minimum(_round_count(rate * (n * m)), n * (m - 1))
        score = jnp.where(kept, 2.0, u).reshape(-1)  # kept entries rank last, never dropped
        rank = jnp.argsort(jnp.argsort(score)).reshape(n, m)
        missing = rank < total
    else:
        missing = ~kept & (u < rate * m / (m - 1))
    return ~missing


def paired_fraction(
    key: jax.Array,
    n: int,
    num_modalities: int,
    eta,
    *,
    complete: int = 0,
    label: jax.Array | None = None,
) -> jax.Array:
    """SMIL's severely-missing protocol: one modality complete, the others on a fraction eta.

    Modality ``complete`` is present for every sample. All other modalities are present together
    on a random subset of the samples (the "paired" set D^f of SMIL, eta = |D^f| / N) and missing
    on the rest (D^m), so the paired subset is modality-complete and the rest is single-modality.

    - Without ``label``: exactly ``round(eta * n)`` paired samples, uniformly at random.
    - With ``label`` (int class ids): stratified as SMIL's code does (``per_class_num`` paired
      samples per class): class c gets ``round(eta * n_c)`` paired samples chosen uniformly within
      the class; the total is the sum of the per-class counts, which may differ from
      ``round(eta * n)`` by up to half the number of classes. SMIL takes the *first*
      ``per_class_num`` images of each class; a random choice within the class is the same
      protocol up to the order of the files. SMIL's avMNIST setting (105 training images per
      class, 15 paired) is ``eta = 15 / 105``.

    Rounding is to nearest with halves up. No static number of classes is needed: classes are
    found by sorting the labels.

    Args:
      key: a typed PRNG key.
      n: number of samples (static).
      num_modalities: M (static).
      eta: fraction of samples on which the other modalities are present; may be traced.
      complete: index of the always-present modality (static).
      label: optional int[n] class ids for per-class counts; may be traced.

    Returns:
      bool[n, M] mask, True where present.

    References:
      Ma et al., "SMIL: Multimodal Learning with Severely Missing Modality", AAAI 2021 (eta = M/N,
      "100% image + eta% audio"); ``mengmenm/SMIL``. Official-code notes §5.5, §5.7.
    """
    if isinstance(eta, numbers.Real):
        check_rate("eta", eta)
    if not 0 <= complete < num_modalities:
        raise ValueError(f"complete={complete} is not a modality index below {num_modalities}")
    eta = jnp.clip(jnp.asarray(eta, jnp.float32), 0.0, 1.0)
    if label is None:
        paired = _ranks(key, (n,)) < _round_count(eta * n)  # [N]
    else:
        label = jnp.asarray(label)
        if label.shape != (n,):
            raise ValueError(f"label must have shape ({n},), got {label.shape}")
        u = jax.random.uniform(key, (n,))
        order = jnp.lexsort((u, label))  # by class, random order within a class
        sorted_label = label[order]
        start = jnp.searchsorted(sorted_label, sorted_label, side="left")  # [N] class start
        stop = jnp.searchsorted(sorted_label, sorted_label, side="right")
        pos = jnp.arange(n) - start  # rank within the class
        paired_sorted = pos < _round_count(eta * (stop - start))
        paired = jnp.zeros((n,), jnp.bool_).at[order].set(paired_sorted)
    is_complete = (jnp.arange(num_modalities) == complete)[None, :]  # [1, M]
    return paired[:, None] | is_complete


def augmentation_dropout(
    key: jax.Array,
    present: jax.Array,
    p,
    *,
    mode: str = "one",
) -> jax.Array:
    """UME-MMA's missing-modality augmentation: drop present modalities, never all of them.

    Applied per training step on top of the batch's ``present`` mask (modalities that are already
    missing stay missing; UME-MMA treats them "as if generated by the augmentation"). Samples with
    a single present modality are never changed.

    Modes (static):

    - ``"one"`` (default, the paper's wording): a sample with k >= 2 present modalities loses
      exactly one of them, chosen uniformly among the present ones, with probability ``min(1,
      k * p)``; otherwise it is left complete. Each present modality is then dropped with
      probability exactly p (when k * p <= 1) and two are never dropped together. With two
      modalities and p = 0.3: drop modality 1 (30%), drop modality 2 (30%), complete (40%).
      This matches UME-MMA §3.3: "randomly dropping one modality with a certain probability ...
      we never drop both modalities simultaneously ... we allocate a probability for feeding
      complete data", and Table 5's "drop probability of each modality" (0..0.5 with M = 2).
    - ``"independent"``: each present modality is dropped independently with probability p; a
      sample that would lose all of its present modalities keeps one of them, chosen uniformly
      among the present ones. The realised drop rate per modality is ``p - p**k / k`` for a
      sample with k present modalities (0.255 for k = 2, p = 0.3). This is classic modality
      dropout with a keep-one fix, offered for comparison; the paper does not describe it.

    Args:
      key: a typed PRNG key.
      present: bool[B, M] mask before augmentation.
      p: drop probability per modality; may be traced. UME-MMA uses 0.3.
      mode: ``"one"`` or ``"independent"``.

    Returns:
      bool[B, M] mask, a subset of ``present`` with the same number of empty rows (none if none).

    References:
      Li et al., "What Makes for Robust Multi-Modal Models in the Face of Missing Modalities?"
      (UME-MMA), 2023, §3.3 and Table 5; Hussen Abdelaziz et al., "Modality dropout", ICMI 2020.
    """
    if isinstance(p, numbers.Real):
        check_rate("p", p)
    present = jnp.asarray(present, jnp.bool_)
    b, m = present.shape
    p = jnp.asarray(p, jnp.float32)
    k_draw, k_pick = jax.random.split(key)
    pick = _one_hot(_uniform_choice(k_pick, present), m)  # [B, M] one present modality
    k = present.sum(axis=1)  # [B]
    if mode == "one":
        prob = jnp.where(k >= 2, jnp.clip(k * p, 0.0, 1.0), 0.0)  # [B]
        drop_one = jax.random.uniform(k_draw, (b,)) < prob  # [B]
        return present & ~(drop_one[:, None] & pick)
    if mode == "independent":
        kept = present & (jax.random.uniform(k_draw, (b, m)) >= p)  # [B, M]
        lost_all = ~kept.any(axis=1) & (k >= 1)  # [B]
        return kept | (lost_all[:, None] & pick)
    raise ValueError(f"unknown augmentation_dropout mode {mode!r}; use 'one' or 'independent'")


# --------------------------------------------------------------------------------------------
# Test-time protocols


def test_missing_rate(key: jax.Array, n: int, num_modalities: int, rate) -> jax.Array:
    """Test-time missingness at an overall (entry-wise) rate, every sample keeping a modality.

    MLA applies the same CPM-Net sampler, at the same rate, to training, validation and test data;
    this is ``at_least_one(..., exact=True)``: exactly ``round(rate * n * M)`` of the ``n * M``
    (sample, modality) entries are missing. Use a fixed key per evaluation so that every method
    sees the same test mask.

    Args:
      key: a typed PRNG key.
      n: number of test samples (static).
      num_modalities: M (static).
      rate: entry-wise missing rate, clipped to ``(M - 1) / M``; may be traced.

    Returns:
      bool[n, M] mask with at least one True per row.

    References:
      MLA (CVPR 2024) §3.2 with CPM-Net's ``random_mask``; official-code notes §3.5.
    """
    return at_least_one(key, n, num_modalities, rate, exact=True)


# Keep pytest from collecting the function above as a test when it is imported into a test module.
test_missing_rate.__test__ = False


def all_subsets(modalities: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Every non-empty subset of the modalities: the 2^M - 1 test patterns.

    Order: the full set first, then subsets by decreasing size; subsets of equal size in dataset
    order of their members (lexicographic in modality indices, as ``itertools.combinations``).
    For ``("audio", "video", "text")``: ``audio+video+text, audio+video, audio+text, video+text,
    audio, video, text``. Names join member names with ``"+"`` in dataset order.

    Args:
      modalities: modality names in the dataset's fixed order.

    Returns:
      ``(names, masks)``: a list of 2^M - 1 names and a bool[2^M - 1, M] NumPy array whose row i
      is the ``present`` pattern of ``names[i]``.

    References:
      RedCore / MMIN evaluation over every pattern (notes §1.5, §8.2); RAML §III ("2^M - 1
      meaningful combinations").
    """
    mods = tuple(modalities)
    m = len(mods)
    if m == 0:
        raise UserError("a dataset needs at least one modality")
    if len(set(mods)) != m:
        raise UserError(f"modality names must be unique, got {mods}")
    names, rows = [], []
    for size in range(m, 0, -1):
        for combo in itertools.combinations(range(m), size):
            names.append("+".join(mods[i] for i in combo))
            row = np.zeros(m, np.bool_)
            row[list(combo)] = True
            rows.append(row)
    return names, np.stack(rows)


def subset_mask(subset, modalities: Sequence[str]) -> np.ndarray:
    """The ``present`` row for one modality subset.

    Args:
      subset: a name such as ``"image+audio"``, a sequence of modality names, or a sequence of
        modality indices.
      modalities: modality names in the dataset's fixed order.

    Returns:
      bool[M] NumPy array.

    Raises:
      UserError: for an unknown modality, an index out of range, or an empty subset.
    """
    mods = tuple(modalities)
    items = subset.split("+") if isinstance(subset, str) else list(subset)
    if not items:
        raise UserError("a modality subset must name at least one modality")
    row = np.zeros(len(mods), np.bool_)
    for item in items:
        if isinstance(item, str):
            if item not in mods:
                raise UserError(f"unknown modality {item!r}; the dataset has {mods}")
            row[mods.index(item)] = True
        elif isinstance(item, numbers.Integral) and not isinstance(item, bool):
            if not 0 <= int(item) < len(mods):
                raise UserError(f"modality index {item} out of range for {mods}")
            row[int(item)] = True
        else:
            raise UserError(f"a modality is named by a string or an index, got {item!r}")
    return row


# --------------------------------------------------------------------------------------------
# The batch contract


def apply(
    inputs: Mapping[str, jax.Array],
    present: jax.Array,
    modalities: Sequence[str],
) -> dict[str, jax.Array]:
    """Zero-fills every missing input: the batch contract's substitute for a missing modality.

    ``modalities`` gives the column of ``present`` for each input and is required: dicts passed
    through ``jax.jit`` come back with sorted keys, so the dict's own order cannot be trusted.
    A sequence modality's lengths (``inputs["<m>_len"]``) are zeroed with it: a missing sequence
    is an empty one, so not even its length reaches a model. Other entries (e.g. a time mask) are
    passed through unchanged. Works for any trailing shape and dtype (``jnp.where``, so NaN or inf
    in a missing input does not leak through).

    Args:
      inputs: modality name -> array ``[B, ...]``.
      present: bool[B, M], columns in ``modalities`` order.
      modalities: modality names in the dataset's fixed order.

    Returns:
      A new dict with the same keys; ``out[m][b]`` (and ``out[m + "_len"][b]``) is zero where
      ``present[b, m]`` is False.
    """
    present = jnp.asarray(present, jnp.bool_)
    if present.ndim != 2 or present.shape[1] != len(modalities):
        raise ValueError(f"present must be [B, {len(modalities)}], got {present.shape}")
    out = dict(inputs)
    for j, name in enumerate(modalities):
        if name not in inputs:
            raise KeyError(f"modality {name!r} is not among the inputs {sorted(inputs)}")
        x = jnp.asarray(inputs[name])
        keep = present[:, j].reshape((x.shape[0],) + (1,) * (x.ndim - 1))  # [B, 1, ...]
        out[name] = jnp.where(keep, x, jnp.zeros((), x.dtype))
        if length_key(name) in inputs:
            out[length_key(name)] = jnp.where(present[:, j], inputs[length_key(name)], 0)
    return out
