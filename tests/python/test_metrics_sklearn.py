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


# Evaluation beyond the foundation: PR-AUC, Brier score, ECE and the Youden threshold.

@pytest.mark.parametrize("seed", SEEDS)
def test_average_precision_and_pr_curve_match_sklearn(seed):
    y, p = random_case(seed)
    assert histocnn.metrics.average_precision(y.tolist(), p.tolist()) == pytest.approx(
        skm.average_precision_score(y, p), abs=TOL)
    precision, recall, thresholds = histocnn.metrics.precision_recall_curve(y.tolist(), p.tolist())
    exp_precision, exp_recall, exp_thresholds = skm.precision_recall_curve(y, p)
    np.testing.assert_allclose(precision, exp_precision, rtol=0, atol=TOL)
    np.testing.assert_allclose(recall, exp_recall, rtol=0, atol=TOL)
    np.testing.assert_array_equal(thresholds, exp_thresholds)


@pytest.mark.parametrize("seed", SEEDS)
def test_brier_score_matches_sklearn(seed):
    y, p = random_case(seed)
    assert histocnn.metrics.brier_score(y.tolist(), p.tolist()) == pytest.approx(
        skm.brier_score_loss(y, p), abs=TOL)


def ece_reference(y, p, n_bins):
    """Equal-width bins as sklearn's calibration_curve makes them: (lo, hi], 0 in the first."""
    ids = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], p)
    return sum(np.mean(ids == b) * abs(y[ids == b].mean() - p[ids == b].mean())
               for b in range(n_bins) if np.any(ids == b))


@pytest.mark.parametrize("seed", SEEDS)
def test_expected_calibration_error_matches_numpy(seed):
    y, p = random_case(seed)
    for n_bins in (5, 10, 15):
        assert histocnn.metrics.expected_calibration_error(y.tolist(), p.tolist(), n_bins=n_bins) == \
            pytest.approx(ece_reference(y, p, n_bins), abs=TOL)


@pytest.mark.parametrize("seed", SEEDS)
def test_youden_threshold_matches_sklearn_roc_curve_argmax(seed):
    y, p = random_case(seed)
    fpr, tpr, thresholds = skm.roc_curve(y, p)
    j = tpr - fpr
    best = np.argmax(j)
    assert best > 0, "the case must have a useful threshold (sklearn's first point predicts nothing)"
    choice = histocnn.metrics.choose_threshold(y.tolist(), p.tolist(), method="youden")
    assert choice.method == "youden"
    # The same J, and the same threshold unless another point ties with it (then histocnn takes the
    # highest threshold, compared exactly, where float rounding decides for sklearn).
    assert choice.youden_j == pytest.approx(j[best], abs=TOL)
    if np.sum(np.abs(j - j[best]) <= 1e-12) == 1:
        assert choice.threshold == thresholds[best]
    y_pred = (p >= choice.threshold).astype(int)
    assert choice.sensitivity == pytest.approx(skm.recall_score(y, y_pred), abs=TOL)
    assert choice.specificity == pytest.approx(skm.recall_score(y, y_pred, pos_label=0), abs=TOL)


def test_youden_thresholds_agree_on_most_seeds():
    """Ties are the exception: the thresholds must be identical on nearly every case."""
    same = 0
    for seed in SEEDS:
        y, p = random_case(seed)
        fpr, tpr, thresholds = skm.roc_curve(y, p)
        choice = histocnn.metrics.choose_threshold(y.tolist(), p.tolist(), method="youden")
        same += choice.threshold == thresholds[np.argmax(tpr - fpr)]
    assert same >= len(SEEDS) - 2


def test_sensitivity_threshold_is_the_highest_reaching_the_target():
    y, p = random_case(3)
    choice = histocnn.metrics.choose_threshold(y.tolist(), p.tolist(), method="sensitivity", target=0.95)
    assert skm.recall_score(y, (p >= choice.threshold).astype(int)) >= 0.95
    higher = np.unique(p[p > choice.threshold])
    if higher.size:
        assert skm.recall_score(y, (p >= higher.min()).astype(int)) < 0.95
    with pytest.raises(ValueError, match="method = 'f1'"):
        histocnn.metrics.choose_threshold(y.tolist(), p.tolist(), method="f1")


def test_evaluate_full_and_plots_from_python(tmp_path):
    y, p = random_case(1)
    patients = [f"P{i % 5}" for i in range(len(y))]
    choice = histocnn.metrics.choose_threshold(y.tolist(), p.tolist())
    report = histocnn.metrics.evaluate_full(y.tolist(), p.tolist(), patients, validation_choice=choice, n_boot=100)
    assert report.threshold == choice.threshold
    assert report.threshold_method == "youden"
    assert report.pr_auc == pytest.approx(skm.average_precision_score(y, p), abs=TOL)
    assert report.calibration.brier == pytest.approx(skm.brier_score_loss(y, p), abs=TOL)
    assert report.intervals.unit == "patient"
    assert report.intervals.roc_auc.lower <= report.metrics.roc_auc <= report.intervals.roc_auc.upper
    assert report.patient.metrics.n == 5
    assert "Patient level" in report.to_text()
    import json
    assert json.loads(report.to_json())["intervals"]["n_boot"] == 100
    written = histocnn.metrics.write_evaluation_plots(tmp_path, report, prefix="val_")
    assert [f.name for f in written] == ["val_roc.png", "val_pr.png", "val_confusion_matrix.png", "val_reliability.png"]
    histocnn.metrics.plot_training_curves(tmp_path / "curves.png", train_loss=[0.7, 0.5], val_loss=[0.6, 0.55],
                                          width=800, height=600)
    for f in written + [tmp_path / "curves.png"]:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="val_loss has 1 values but train_loss has 2"):
        histocnn.metrics.plot_training_curves(tmp_path / "bad.png", train_loss=[0.7, 0.5], val_loss=[0.6])


@pytest.mark.parametrize("seed", SEEDS[:6])
def test_within_patient_auc_matches_sklearn_per_patient_and_numpy_median(seed):
    y, p = random_case(seed)
    rng = np.random.default_rng(seed)
    patients = [f"p{k}" for k in rng.integers(0, 7, len(y))]
    patients[0] = "all-negative"  # a patient with one class has no AUC of its own
    y[0] = 0
    got = histocnn.metrics.within_patient_auc(y.tolist(), p.tolist(), patients)
    ids = np.array(patients)
    expected = {q: skm.roc_auc_score(y[ids == q], p[ids == q]) for q in sorted(set(patients))
                if 0 < y[ids == q].sum() < (ids == q).sum()}
    assert got.patients == list(expected)
    assert got.auc == pytest.approx(list(expected.values()), abs=TOL)
    assert got.median == pytest.approx(float(np.median(list(expected.values()))), abs=TOL)
    assert math.isnan(histocnn.metrics.within_patient_auc([0, 0, 1], [0.1, 0.2, 0.3], ["a", "a", "b"]).median)
