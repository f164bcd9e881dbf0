"""histocnn.metrics against live scikit-learn on seeded random inputs, tied scores included.

The C++ tests (tests/cpp/metrics/binary_test.cpp) pin fixed cases; these sweep random ones.
Written against the Python bindings' API:
    histocnn.metrics.roc_auc(y_true, scores) -> float
    histocnn.metrics.evaluate_binary(y_true, p, threshold=0.5) -> object with accuracy, precision,
        recall, f1, roc_auc, specificity, log_loss
    histocnn.metrics.classification_report(y_true, y_pred) -> str
Exact report equality holds for scikit-learn 1.2, whose F1 operation order histocnn follows; later
releases compute F1 from counts, which can move a printed last digit in rare cases.
"""
import math
import re

import numpy as np
import pytest
from sklearn import metrics as skm

import histocnn

SEEDS = list(range(20))
NAMES = ["IDC-negative", "IDC-positive"]
TOL = 1e-12


def random_case(seed):
    """Labels with both classes and P(class 1) scores; every other seed has heavy ties."""
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(20, 400))
    y = rng.integers(0, 2, n)
    y[0], y[1] = 0, 1  # both classes, so the AUC is defined
    signal = rng.uniform(0.0, 0.5)
    p = np.clip(signal * y + (1 - signal) * rng.random(n), 1e-6, 1 - 1e-6)  # no eps clipping
    if seed % 2 == 0:
        p = np.round(p * 8) / 8  # at most 9 distinct scores: many ties, some exactly 0.5
        p = np.clip(p, 1e-6, 1 - 1e-6)
    return y, p


def int_support(report):
    """sklearn 1.2 prints supports as floats ("4.0") when no prediction is right; histocnn prints ints."""
    return re.sub(r"(?m)^(.*) +(\d+)\.0$",
                  lambda m: f"{m[1]} {m[2]:>{len(m[0]) - len(m[1]) - 1}}", report)


@pytest.mark.parametrize("seed", SEEDS)
def test_roc_auc_matches_sklearn(seed):
    y, p = random_case(seed)
    expected = skm.roc_auc_score(y, p)
    got = histocnn.metrics.roc_auc(y.tolist(), p.tolist())
    assert got == pytest.approx(expected, abs=TOL)
    # Scores need not be probabilities.
    logits = np.log(p / (1 - p))
    assert histocnn.metrics.roc_auc(y.tolist(), logits.tolist()) == pytest.approx(
        skm.roc_auc_score(y, logits), abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_evaluate_binary_matches_sklearn(seed):
    y, p = random_case(seed)
    threshold = 0.5 if seed % 3 else float(np.random.default_rng(seed).uniform(0.2, 0.8))
    y_pred = (p >= threshold).astype(int)

    m = histocnn.metrics.evaluate_binary(y.tolist(), p.tolist(), threshold=threshold)

    assert m.accuracy == pytest.approx(skm.accuracy_score(y, y_pred), abs=TOL)
    assert m.precision == pytest.approx(skm.precision_score(y, y_pred, zero_division=0), abs=TOL)
    assert m.recall == pytest.approx(skm.recall_score(y, y_pred, zero_division=0), abs=TOL)
    assert m.f1 == pytest.approx(skm.f1_score(y, y_pred, zero_division=0), abs=TOL)
    assert m.specificity == pytest.approx(
        skm.recall_score(y, y_pred, pos_label=0, zero_division=0), abs=TOL)
    assert m.roc_auc == pytest.approx(skm.roc_auc_score(y, p), abs=TOL)
    assert m.log_loss == pytest.approx(skm.log_loss(y, p, labels=[0, 1]), abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_classification_report_matches_sklearn(seed):
    y, p = random_case(seed)
    rng = np.random.default_rng(2000 + seed)
    if seed % 4 == 0:
        y_pred = rng.integers(0, 2, len(y))  # an uninformative classifier
    else:
        y_pred = (p >= rng.uniform(0.3, 0.7)).astype(int)
    expected = int_support(
        skm.classification_report(y, y_pred, labels=[0, 1], target_names=NAMES, digits=2))
    got = histocnn.metrics.classification_report(y.tolist(), y_pred.tolist())
    assert isinstance(got, str)
    assert got == expected


def test_single_class_auc_is_nan_in_evaluate_and_an_error_in_roc_auc():
    m = histocnn.metrics.evaluate_binary([0, 0, 0], [0.1, 0.7, 0.3])
    assert math.isnan(m.roc_auc)
    assert m.log_loss == pytest.approx(
        skm.log_loss([0, 0, 0], [0.1, 0.7, 0.3], labels=[0, 1]), abs=TOL)
    with pytest.raises(ValueError, match="only one class"):
        histocnn.metrics.roc_auc([1, 1], [0.2, 0.4])


def test_invalid_labels_raise_value_error_naming_the_index():
    with pytest.raises(ValueError, match=r"y_true\[2\] = 2"):
        histocnn.metrics.roc_auc([0, 1, 2], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="samples"):
        histocnn.metrics.evaluate_binary([0, 1], [0.5])
