"""Evaluation metrics on the host (NumPy): classification, multi-label and sentiment regression.

Every function is pure, takes array-likes (NumPy or JAX arrays, moved to the host with
``np.asarray``) and returns Python floats, so results serialise to JSON as they are. Conventions
follow the code the papers report with, so numbers are comparable:

- classification: scikit-learn's ``accuracy_score``, ``recall_score(average="macro")`` (UA, as
  MMIN/RedCore), ``f1_score(average="weighted" | "macro")`` with ``zero_division=0``;
- multi-label: F1 micro / macro / samples on ``sigmoid(logits) > 0.5`` (MultiBench, SMIL, MM-IMDb);
- regression: MMSA's ``MetricsTop.__eval_mosei_regression`` (MOSI/MOSEI).

A "0/0" that scikit-learn would resolve with ``zero_division=0`` is 0 here too. Ill-defined values
never come out as NaN (the training runtime stops on non-finite metrics); each docstring says what
is returned instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.special import expit

from mmjax.errors import UserError

__all__ = [
    "accuracy",
    "classification_metrics",
    "compute",
    "confusion_matrix",
    "macro_f1",
    "macro_recall",
    "mean_std",
    "multilabel_metrics",
    "regression_metrics",
    "weighted_f1",
]


def _pair(labels, preds) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).reshape(-1)
    p = np.asarray(preds).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"labels and predictions differ in length: {y.shape[0]} vs {p.shape[0]}")
    if y.size == 0:
        raise ValueError("cannot compute a metric on zero samples")
    return y, p


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Element-wise num / den with 0 where den == 0 (scikit-learn's ``zero_division=0``)."""
    num = np.asarray(num, np.float64)
    den = np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


# --------------------------------------------------------------------------------------------
# Classification


def confusion_matrix(labels, preds, num_classes: int) -> np.ndarray:
    """Counts ``C[i, j]`` = number of samples with true class i predicted as class j.

    Args:
      labels: int[N] true classes in ``[0, num_classes)``.
      preds: int[N] predicted classes in ``[0, num_classes)``.
      num_classes: C.

    Returns:
      int64[C, C]; rows are true classes, columns predicted classes (scikit-learn's layout).
    """
    y, p = _pair(labels, preds)
    y = y.astype(np.int64)
    p = p.astype(np.int64)
    if y.min() < 0 or p.min() < 0 or y.max() >= num_classes or p.max() >= num_classes:
        raise ValueError(f"classes must lie in [0, {num_classes - 1}]")
    return np.bincount(y * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def _per_class(labels, preds):
    """TP, support (true count) and predicted count per class over the union of seen classes."""
    y, p = _pair(labels, preds)
    classes = np.union1d(y, p)
    tp = np.array([np.sum((y == c) & (p == c)) for c in classes], np.float64)
    support = np.array([np.sum(y == c) for c in classes], np.float64)
    predicted = np.array([np.sum(p == c) for c in classes], np.float64)
    return tp, support, predicted


def accuracy(labels, preds) -> float:
    """Fraction of correct predictions, ``mean(labels == preds)`` (WA, weighted accuracy)."""
    y, p = _pair(labels, preds)
    return float(np.mean(y == p))


def macro_recall(labels, preds) -> float:
    """Unweighted mean of per-class recall, ``mean_c TP_c / (TP_c + FN_c)`` (UA / UAR).

    Classes are those that occur in ``labels`` or in ``preds``, as scikit-learn's
    ``recall_score(average="macro")`` (used by MMIN and RedCore) takes them: a class that is
    predicted but absent from the labels has recall 0/0 := 0 and still counts in the mean; a class
    absent from both is ignored. So on a subset lacking some class, UA is the mean over the classes
    that appear, minus a penalty for every spurious predicted class.
    """
    tp, support, _ = _per_class(labels, preds)
    return float(np.mean(_div(tp, support)))


def _f1_per_class(labels, preds):
    tp, support, predicted = _per_class(labels, preds)
    # F1_c = 2 TP / (2 TP + FP + FN) = 2 TP / (support + predicted); 0 when both are zero.
    return _div(2 * tp, support + predicted), support


def macro_f1(labels, preds) -> float:
    """Unweighted mean over classes of ``F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c)``.

    Classes as in ``macro_recall`` (the union of true and predicted classes); a predicted-only class
    has F1 = 0. Equals scikit-learn's ``f1_score(average="macro", zero_division=0)``.
    """
    f1, _ = _f1_per_class(labels, preds)
    return float(np.mean(f1))


def weighted_f1(labels, preds) -> float:
    """Support-weighted mean of per-class F1, ``sum_c n_c F1_c / N`` with n_c true samples of c.

    Predicted-only classes have weight 0. Equals scikit-learn's ``f1_score(average="weighted")``.
    """
    f1, support = _f1_per_class(labels, preds)
    return float(np.sum(f1 * support) / np.sum(support))


def classification_metrics(labels, logits) -> dict[str, float]:
    """Accuracy (WA), macro recall (UA), weighted F1 and macro F1 of ``argmax(logits, -1)``.

    Args:
      labels: int[N] true classes.
      logits: float[N, C] scores (logits or probabilities; only the argmax is used).

    Returns:
      ``{"accuracy", "macro_recall", "weighted_f1", "macro_f1"}`` as floats.
    """
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C], got shape {logits.shape}")
    preds = np.argmax(logits, axis=-1)
    return {
        "accuracy": accuracy(labels, preds),
        "macro_recall": macro_recall(labels, preds),
        "weighted_f1": weighted_f1(labels, preds),
        "macro_f1": macro_f1(labels, preds),
    }


# --------------------------------------------------------------------------------------------
# Multi-label


def multilabel_metrics(labels, logits, threshold: float = 0.5) -> dict[str, float]:
    """F1 micro, macro and samples for multi-label prediction (MM-IMDb).

    A label is predicted when ``sigmoid(logit) > threshold`` (strict; MultiBench's
    ``sigmoid(out).round()`` is the same at 0.5 because NumPy rounds 0.5 to 0). With
    ``TP, FP, FN`` counted over the [N, C] label matrix:

    - ``f1_micro = 2 sum TP / (2 sum TP + sum FP + sum FN)``, pooled over every entry;
    - ``f1_macro = mean_c 2 TP_c / (2 TP_c + FP_c + FN_c)`` over all C labels;
    - ``f1_samples = mean_i 2 TP_i / (2 TP_i + FP_i + FN_i)`` over samples.

    Any 0/0 (a label never true nor predicted; a sample with no true and no predicted label) is 0,
    as scikit-learn with ``zero_division=0``; such labels and samples still count in the means.

    Args:
      labels: {0, 1}[N, C] targets.
      logits: float[N, C] logits (not probabilities).
      threshold: probability threshold.

    Returns:
      ``{"f1_micro", "f1_macro", "f1_samples"}`` as floats.
    """
    y = np.asarray(labels).astype(bool)
    z = np.asarray(logits, np.float64)
    if y.shape != z.shape or y.ndim != 2:
        raise ValueError(f"labels and logits must both be [N, C], got {y.shape} and {z.shape}")
    if y.shape[0] == 0:
        raise ValueError("cannot compute a metric on zero samples")
    p = expit(z) > threshold  # expit is the overflow-free logistic sigmoid
    tp = y & p
    wrong = y ^ p  # FP + FN
    f1_micro = _div(2 * tp.sum(), 2 * tp.sum() + wrong.sum())
    f1_macro = np.mean(_div(2 * tp.sum(0), 2 * tp.sum(0) + wrong.sum(0)))
    f1_samples = np.mean(_div(2 * tp.sum(1), 2 * tp.sum(1) + wrong.sum(1)))
    return {
        "f1_micro": float(f1_micro),
        "f1_macro": float(f1_macro),
        "f1_samples": float(f1_samples),
    }


# --------------------------------------------------------------------------------------------
# Sentiment regression (MOSI / MOSEI)


def _binary_weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """scikit-learn's weighted F1 on two boolean classes (0 on empty input)."""
    if truth.size == 0:
        return 0.0
    return weighted_f1(truth.astype(np.int64), pred.astype(np.int64))


def regression_metrics(labels, preds) -> dict[str, float]:
    """Sentiment-regression metrics for CMU-MOSI / MOSEI, as MMSA's ``MetricsTop`` computes them.

    Labels and predictions are sentiment scores in [-3, 3]. With y = labels, p = predictions:

    - ``mae = mean |p - y|``;
    - ``corr`` = Pearson r of p and y (0 when either is constant, where NumPy would give NaN);
    - ``acc2`` / ``f1_2``: samples with ``y != 0`` only, classes ``y > 0`` vs ``y < 0`` and
      ``p > 0`` vs ``p <= 0`` (MMSA's "Non0"; MultiBench's ``exclude_zero=True``); accuracy and
      support-weighted F1. If every label is 0 both are 0;
    - ``acc2_with_zero`` / ``f1_2_with_zero``: all samples, non-negative (``>= 0``) vs negative for
      both y and p (MMSA's "Has0");
    - ``acc3`` / ``acc5`` / ``acc7``: ``mean(round(clip(p, -k, k)) == round(clip(y, -k, k)))`` for
      k = 1, 2, 3, with NumPy's round-half-to-even (so 0.5 -> 0, 1.5 -> 2), exactly as MMSA.

    Args:
      labels: float[N] (or [N, 1]) true sentiment scores.
      preds: float[N] (or [N, 1]) predicted scores.

    Returns:
      ``{"mae", "corr", "acc2", "f1_2", "acc2_with_zero", "f1_2_with_zero", "acc3", "acc5",
      "acc7"}`` as floats.

    References:
      ``thuiar/MMSA``, ``src/MMSA/utils/metricsTop.py`` (``__eval_mosei_regression``);
      ``pliang279/MultiBench``, ``eval_scripts/performance.py``.
    """
    y, p = _pair(labels, preds)
    y = y.astype(np.float64)
    p = p.astype(np.float64)
    out: dict[str, float] = {"mae": float(np.mean(np.abs(p - y)))}
    yc, pc = y - y.mean(), p - p.mean()
    den = np.sqrt(np.sum(yc**2) * np.sum(pc**2))
    out["corr"] = float(np.sum(yc * pc) / den) if den > 0 else 0.0
    nz = y != 0
    if nz.any():
        t2, p2 = y[nz] > 0, p[nz] > 0
        out["acc2"] = float(np.mean(t2 == p2))
        out["f1_2"] = _binary_weighted_f1(t2, p2)
    else:
        out["acc2"] = out["f1_2"] = 0.0
    t2z, p2z = y >= 0, p >= 0
    out["acc2_with_zero"] = float(np.mean(t2z == p2z))
    out["f1_2_with_zero"] = _binary_weighted_f1(t2z, p2z)
    for k, name in ((1.0, "acc3"), (2.0, "acc5"), (3.0, "acc7")):
        out[name] = float(np.mean(np.round(np.clip(p, -k, k)) == np.round(np.clip(y, -k, k))))
    return out


# --------------------------------------------------------------------------------------------
# Dispatch and aggregation


def compute(task: str, labels, outputs) -> dict[str, float]:
    """Metrics for a task: ``"classification"`` (outputs = logits [N, C]), ``"multilabel"``
    (logits [N, C]) or ``"regression"`` (predictions [N] or [N, 1]).

    Raises:
      UserError: for an unknown task.
    """
    if task == "classification":
        return classification_metrics(labels, outputs)
    if task == "multilabel":
        return multilabel_metrics(labels, outputs)
    if task == "regression":
        return regression_metrics(labels, outputs)
    raise UserError(f"unknown task {task!r}; expected classification, multilabel or regression")


def mean_std(runs: Sequence[Mapping[str, float]], *, ddof: int = 1) -> dict[str, dict[str, float]]:
    """Aggregates per-seed metric dicts into mean and standard deviation per metric.

    ``std`` is the sample standard deviation (``ddof=1``, dividing by n - 1), the usual reading
    of "mean ± std over 3 seeds"; pass ``ddof=0`` for the population std (``np.std``'s default).
    With a single run the std is 0.0. Only metrics present in every run are aggregated.

    Args:
      runs: one ``{metric: value}`` dict per seed.
      ddof: delta degrees of freedom of the std.

    Returns:
      ``{metric: {"mean": m, "std": s, "n": n}}`` (``n`` as a float, for uniform JSON).
    """
    if not runs:
        raise ValueError("mean_std needs at least one run")
    keys = [k for k in runs[0] if all(k in r for r in runs[1:])]
    out = {}
    for k in keys:
        v = np.asarray([float(r[k]) for r in runs], np.float64)
        std = float(np.std(v, ddof=ddof)) if v.size > ddof else 0.0
        out[k] = {"mean": float(np.mean(v)), "std": std, "n": float(v.size)}
    return out
