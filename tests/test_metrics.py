"""Tests for mmjax/metrics.py against values worked out by hand in the comments."""

import math

import numpy as np
import pytest

from mmjax import metrics
from mmjax.errors import UserError

# Example A: 6 samples, 3 classes.
#   labels = 0 0 0 1 1 2
#   preds  = 0 0 1 1 2 2
# confusion (rows true, cols pred): [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
# accuracy = 4 / 6
# recall: c0 2/3, c1 1/2, c2 1/1 -> UA = (2/3 + 1/2 + 1) / 3 = 13/18
# F1_c = 2 TP / (support + predicted): c0 4/(3+2) = 4/5, c1 2/(2+2) = 1/2, c2 2/(1+2) = 2/3
# macro F1 = (4/5 + 1/2 + 2/3) / 3 = (24 + 15 + 20) / 90 = 59/90
# weighted F1 = (3 * 4/5 + 2 * 1/2 + 1 * 2/3) / 6 = (61/15) / 6 = 61/90
LABELS_A = np.array([0, 0, 0, 1, 1, 2])
PREDS_A = np.array([0, 0, 1, 1, 2, 2])


def test_classification_example_a():
    assert metrics.accuracy(LABELS_A, PREDS_A) == pytest.approx(4 / 6)
    assert metrics.macro_recall(LABELS_A, PREDS_A) == pytest.approx(13 / 18)
    assert metrics.macro_f1(LABELS_A, PREDS_A) == pytest.approx(59 / 90)
    assert metrics.weighted_f1(LABELS_A, PREDS_A) == pytest.approx(61 / 90)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(LABELS_A, PREDS_A, 3), [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    )


def test_classification_metrics_from_logits():
    logits = np.eye(4)[PREDS_A] * 3.0 - 1.0  # argmax = PREDS_A; 4 logits, class 3 never seen
    out = metrics.classification_metrics(LABELS_A, logits)
    assert set(out) == {"accuracy", "macro_recall", "weighted_f1", "macro_f1"}
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["macro_recall"] == pytest.approx(13 / 18)  # class 3 (in neither) is ignored
    assert out["macro_f1"] == pytest.approx(59 / 90)
    assert out["weighted_f1"] == pytest.approx(61 / 90)
    assert all(isinstance(v, float) for v in out.values())


def test_classification_predicted_only_class():
    # Example B: labels 0 0 1 1, preds 0 2 1 1; class 2 is predicted but never true.
    # classes = {0, 1, 2} (scikit-learn's union); recall: c0 1/2, c1 2/2, c2 0/0 := 0
    #   UA = (1/2 + 1 + 0) / 3 = 1/2
    # F1: c0 2*1/(2+1) = 2/3, c1 2*2/(2+2) = 1, c2 0/(0+1) = 0
    #   macro = (2/3 + 1 + 0) / 3 = 5/9; weighted = (2 * 2/3 + 2 * 1 + 0 * 0) / 4 = 5/6
    y, p = np.array([0, 0, 1, 1]), np.array([0, 2, 1, 1])
    assert metrics.accuracy(y, p) == pytest.approx(3 / 4)
    assert metrics.macro_recall(y, p) == pytest.approx(1 / 2)
    assert metrics.macro_f1(y, p) == pytest.approx(5 / 9)
    assert metrics.weighted_f1(y, p) == pytest.approx(5 / 6)


def test_classification_perfect_and_errors():
    y = np.array([1, 2, 2])
    assert metrics.macro_f1(y, y) == 1.0 and metrics.macro_recall(y, y) == 1.0
    with pytest.raises(ValueError):
        metrics.accuracy(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        metrics.accuracy(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError):
        metrics.confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)


def test_multilabel_example():
    # labels        logits          predicted (sigmoid > 0.5  <=>  logit > 0)
    # [1, 0, 1]     [ 2, -1, -3]    [1, 0, 0]
    # [0, 1, 0]     [ 1,  3,  0]    [1, 1, 0]   (logit 0 -> p = 0.5, not > 0.5)
    # [0, 0, 0]     [-1, -2, -5]    [0, 0, 0]
    # TP = 2 (r0c0, r1c1); FP = 1 (r1c0); FN = 1 (r0c2)
    # micro = 2*2 / (2*2 + 1 + 1) = 4/6 = 2/3
    # per label: c0 TP1 FP1 -> 2/3; c1 TP1 -> 1; c2 FN1 -> 0   => macro = (2/3 + 1 + 0) / 3 = 5/9
    # per sample: r0 TP1 FN1 -> 2/3; r1 TP1 FP1 -> 2/3; r2 0/0 := 0   => samples = (4/3) / 3 = 4/9
    labels = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]], np.float32)
    logits = np.array([[2, -1, -3], [1, 3, 0], [-1, -2, -5]], np.float32)
    out = metrics.multilabel_metrics(labels, logits)
    assert out["f1_micro"] == pytest.approx(2 / 3)
    assert out["f1_macro"] == pytest.approx(5 / 9)
    assert out["f1_samples"] == pytest.approx(4 / 9)


def test_multilabel_threshold_and_extremes():
    labels = np.array([[1, 0], [0, 1]])
    # threshold 0.8 <=> logit > log(4) = 1.386: only the 2.0 logit passes.
    # predicted [[1, 0], [0, 0]]: TP 1, FN 1 -> micro = 2/3; macro = (1 + 0)/2; samples = (1 + 0)/2
    logits = np.array([[2.0, -1.0], [-3.0, 1.0]])
    out = metrics.multilabel_metrics(labels, logits, threshold=0.8)
    assert out == pytest.approx({"f1_micro": 2 / 3, "f1_macro": 0.5, "f1_samples": 0.5})
    # huge logits must not overflow the sigmoid
    out = metrics.multilabel_metrics(labels, np.array([[1e4, -1e4], [-1e4, 1e4]]))
    assert out == pytest.approx({"f1_micro": 1.0, "f1_macro": 1.0, "f1_samples": 1.0})
    # nothing true, nothing predicted: all 0/0 := 0
    out = metrics.multilabel_metrics(np.zeros((2, 2)), -np.ones((2, 2)))
    assert out == {"f1_micro": 0.0, "f1_macro": 0.0, "f1_samples": 0.0}


def test_regression_example():
    # y = [2, -1, 0, 2], p = [1, 0.5, -1, 2.5]
    # mae = (1 + 1.5 + 1 + 0.5) / 4 = 1.0
    # corr: y mean 0.75, yc = [1.25, -1.75, -0.75, 1.25]; p mean 0.75, pc = [.25, -.25, -1.75, 1.75]
    #   sum yc pc = .3125 + .4375 + 1.3125 + 2.1875 = 4.25; sum yc^2 = 6.75; sum pc^2 = 6.25
    #   r = 4.25 / sqrt(6.75 * 6.25) = 1.7 / sqrt(6.75)
    # acc2 (y != 0: samples 0, 1, 3): truth y>0 = [T, F, T], pred p>0 = [T, T, T] -> 2/3
    #   f1_2 weighted: class T: TP 2, support 2, predicted 3 -> 4/5; class F: 0
    #   -> (2 * 4/5 + 1 * 0) / 3 = 8/15
    # with zero: truth y>=0 = [T, F, T, T], pred p>=0 = [T, T, F, T] -> 2/4
    #   class T: TP 2, support 3, predicted 3 -> 2/3; class F: TP 0 -> 0 => (3 * 2/3) / 4 = 1/2
    # acc3: clip to [-1, 1]: y [1, -1, 0, 1], p [1, 0.5, -1, 1] -> round p [1, 0, -1, 1]
    #   (0.5 rounds to even 0) -> matches at 0 and 3 -> 1/2
    # acc5: clip to [-2, 2]: p [1, 0.5, -1, 2] -> round [1, 0, -1, 2] vs y [2, -1, 0, 2] -> 1/4
    # acc7: p [1, 0.5, -1, 2.5] -> round [1, 0, -1, 2] (2.5 to even 2) vs y [2, -1, 0, 2] -> 1/4
    y = np.array([2.0, -1.0, 0.0, 2.0])
    p = np.array([[1.0], [0.5], [-1.0], [2.5]])  # [N, 1] is accepted
    out = metrics.regression_metrics(y, p)
    expect = {
        "mae": 1.0,
        "corr": 1.7 / math.sqrt(6.75),
        "acc2": 2 / 3,
        "f1_2": 8 / 15,
        "acc2_with_zero": 0.5,
        "f1_2_with_zero": 0.5,
        "acc3": 0.5,
        "acc5": 0.25,
        "acc7": 0.25,
    }
    assert out == pytest.approx(expect)


def test_regression_degenerate_cases_are_finite():
    # constant predictions: Pearson r undefined -> 0; all labels zero: non-zero acc2/f1 := 0
    out = metrics.regression_metrics(np.zeros(3), np.ones(3))
    assert out["corr"] == 0.0 and out["acc2"] == 0.0 and out["f1_2"] == 0.0
    assert out["acc2_with_zero"] == 1.0  # 0 >= 0 and 1 >= 0
    assert all(math.isfinite(v) for v in out.values())


def test_compute_dispatch():
    out = metrics.compute("classification", LABELS_A, np.eye(3)[PREDS_A])
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert "f1_micro" in metrics.compute("multilabel", np.ones((2, 2)), np.ones((2, 2)))
    assert metrics.compute("regression", np.array([1.0, -1.0]), np.array([1.0, -1.0]))["mae"] == 0.0
    with pytest.raises(UserError):
        metrics.compute("ranking", LABELS_A, PREDS_A)


def test_mean_std():
    # a: 1, 3, 5 -> mean 3; squared deviations 4 + 0 + 4 = 8; ddof=1: sqrt(8/2) = 2;
    #   ddof=0: sqrt(8/3). b constant -> std 0. c is missing from two runs -> dropped.
    runs = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 2.0}, {"a": 5.0, "b": 2.0, "c": 1.0}]
    out = metrics.mean_std(runs)
    assert out == {
        "a": {"mean": 3.0, "std": 2.0, "n": 3.0},
        "b": {"mean": 2.0, "std": 0.0, "n": 3.0},
    }
    assert metrics.mean_std(runs, ddof=0)["a"]["std"] == pytest.approx(math.sqrt(8 / 3))
    assert metrics.mean_std([{"a": 0.7}])["a"] == {"mean": 0.7, "std": 0.0, "n": 1.0}
    with pytest.raises(ValueError):
        metrics.mean_std([])
