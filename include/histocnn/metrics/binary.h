#pragma once
// Binary classification metrics (IDC-negative = 0, IDC-positive = 1) on plain vectors, checked
// against scikit-learn.
//
//   std::vector<int> y = {0, 0, 1, 1};
//   std::vector<double> p = {0.1, 0.6, 0.4, 0.9};                 // P(class 1) per patch
//   auto m = histocnn::metrics::evaluate_binary(y, p);            // threshold 0.5
//   fmt::print("acc {:.3f} auc {:.3f}\n", m.accuracy, m.roc_auc);  // acc 0.500 auc 0.750
//   fmt::print("{}", histocnn::metrics::classification_report(y, histocnn::metrics::threshold_scores(p)));
//
// Every function validates its input: labels must be 0 or 1, sizes equal, inputs non-empty, scores
// finite. Violations throw std::invalid_argument naming the offending index and value.
// Numbers follow scikit-learn (1.2) bit for bit where it matters for printing: precision, recall and
// F1 use its zero_division=0 convention and its operation order, so classification_report() prints
// the same digits as sklearn.metrics.classification_report.
#include <cstdint>
#include <string>
#include <vector>

namespace histocnn::metrics {

/// Counts of a binary confusion matrix; rows of the usual 2x2 layout are the true class.
struct ConfusionMatrix {
  int64_t tn = 0, fp = 0, fn = 0, tp = 0;
  int64_t total() const;
};

/// Counts (true, predicted) pairs. Both vectors hold 0/1 labels of equal, non-zero length.
ConfusionMatrix confusion_matrix(const std::vector<int>& y_true, const std::vector<int>& y_pred);

/// Hard labels from scores: score >= threshold -> 1, else 0.
std::vector<int> threshold_scores(const std::vector<double>& scores, double threshold = 0.5);

/// (tp + tn) / total. Throws when the matrix is empty.
double accuracy(const ConfusionMatrix& cm);
/// tp / (tp + fp); 0 when nothing was predicted positive (sklearn zero_division=0).
double precision(const ConfusionMatrix& cm);
/// tp / (tp + fn) (sensitivity); 0 when there are no positives.
double recall(const ConfusionMatrix& cm);
/// tn / (tn + fp) (recall of class 0); 0 when there are no negatives.
double specificity(const ConfusionMatrix& cm);
/// Harmonic mean of precision and recall; 0 when both are 0.
double f1_score(const ConfusionMatrix& cm);

/// Exact area under the ROC curve in O(n log n): the Mann-Whitney statistic with tied scores
/// counted as half, equal to sklearn.metrics.roc_auc_score. Throws std::invalid_argument when
/// y_true holds only one class (the AUC is undefined then).
double roc_auc(const std::vector<int>& y_true, const std::vector<double>& scores);

/// ROC points, one per distinct score (descending) after a leading (0, 0) point whose threshold is
/// +inf; the same points as sklearn.metrics.roc_curve(drop_intermediate=False) (sklearn < 1.3
/// writes max(score) + 1 instead of +inf for the first threshold). Throws when only one class is
/// present, where sklearn would return NaN rates.
struct RocCurve {
  std::vector<double> fpr, tpr, thresholds;
};
RocCurve roc_curve(const std::vector<int>& y_true, const std::vector<double>& scores);

/// Mean binary cross-entropy of P(class 1), probabilities clipped to [eps, 1 - eps], like
/// sklearn.metrics.log_loss(y_true, p_positive, labels=[0, 1], eps=eps). Probabilities must lie in
/// [0, 1] (apply a softmax or sigmoid to logits first); eps in [0, 0.5).
double log_loss(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                double eps = 1e-15);

/// Everything the study reported about a split, at one decision threshold.
struct BinaryMetrics {
  int64_t n = 0;
  double threshold = 0.5;
  ConfusionMatrix cm;
  double accuracy = 0, precision = 0, recall = 0, specificity = 0, f1 = 0;
  double roc_auc = 0;   // NaN when y_true holds one class only
  double log_loss = 0;  // eps = 1e-15
};

/// All metrics of p_positive = P(class 1) against y_true; labels predicted as p >= threshold.
/// Unlike roc_auc(), a single-class y_true gives roc_auc = NaN instead of throwing.
BinaryMetrics evaluate_binary(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                              double threshold = 0.5);

/// Text laid out exactly like sklearn.metrics.classification_report(y_true, y_pred,
/// labels=[0, 1], target_names=class_names, digits=digits): per-class precision, recall, f1-score
/// and support, a blank line, then accuracy, macro avg and weighted avg. When both classes occur in
/// y_true or y_pred this equals the call without labels=; when only one occurs, sklearn (and this
/// function) prints a "micro avg" row instead of "accuracy". One deliberate difference: supports
/// are always integers, where sklearn 1.2 prints "4.0" when not a single prediction is right.
/// class_names must have two entries; digits >= 0.
std::string classification_report(const std::vector<int>& y_true, const std::vector<int>& y_pred,
                                  const std::vector<std::string>& class_names = {"IDC-negative",
                                                                                 "IDC-positive"},
                                  int digits = 2);

/// A small right-aligned text table; rows are the true class, columns the predicted class:
///   true \ predicted  IDC-negative  IDC-positive
///       IDC-negative            50            10
///       IDC-positive             5            35
std::string confusion_matrix_table(const ConfusionMatrix& cm,
                                   const std::vector<std::string>& class_names = {"IDC-negative",
                                                                                  "IDC-positive"});

/// One-line JSON object with every field of `m` in declaration order, the matrix as
/// {"tn":..,"fp":..,"fn":..,"tp":..}; non-finite numbers (a NaN roc_auc) are written as null.
std::string to_json(const BinaryMetrics& m);

}  // namespace histocnn::metrics
