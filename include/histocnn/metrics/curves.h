#pragma once
// Precision-recall curve, average precision (PR-AUC) and the choice of a decision threshold on
// validation data, checked against scikit-learn.
//
//   namespace hm = histocnn::metrics;
//   double ap = hm::average_precision(y_val, p_val);                 // sklearn average_precision_score
//   auto pr = hm::precision_recall_curve(y_val, p_val);              // for a plot
//   auto choice = hm::choose_threshold(y_val, p_val, "youden");      // max TPR - FPR
//   auto safe = hm::choose_threshold(y_val, p_val, "sensitivity", 0.95);
//   auto test = hm::evaluate_binary(y_test, p_test, choice.threshold);  // apply it to test data
//
// The threshold is chosen on validation data and then applied unchanged to test data: choosing it
// on the test split would report an operating point that no deployed model has. Predictions are
// positive when score >= threshold, as in threshold_scores() and evaluate_binary().
// Errors are std::invalid_argument naming the argument, index and value (see binary.h).
#include <string>
#include <vector>

#include "histocnn/metrics/binary.h"

namespace histocnn::metrics {

/// The same arrays as sklearn.metrics.precision_recall_curve (scikit-learn 1.2): thresholds are
/// all distinct scores in ascending order; precision[i] and recall[i] belong to predicting
/// score >= thresholds[i]; the last point (precision 1, recall 0) has no threshold, so precision
/// and recall are one longer than thresholds.
struct PrecisionRecallCurve {
  std::vector<double> precision, recall, thresholds;
};

/// Throws std::invalid_argument when y_true holds no positive (recall is undefined then).
PrecisionRecallCurve precision_recall_curve(const std::vector<int>& y_true,
                                            const std::vector<double>& scores);

/// Average precision, the step-wise area under the PR curve without interpolation:
/// sum over thresholds of (R_k - R_{k-1}) * P_k, equal to sklearn.metrics.average_precision_score.
/// Its chance level is the positive rate, not 0.5. Throws when y_true holds no positive.
double average_precision(const std::vector<int>& y_true, const std::vector<double>& scores);

/// A decision threshold and what it does on the data it was chosen on.
struct ThresholdChoice {
  std::string method;         ///< "youden" or "sensitivity"
  double target = 0.0;        ///< the sensitivity asked for ("sensitivity" only, else 0)
  double threshold = 0.5;     ///< predict positive when score >= threshold; one of the scores
  ConfusionMatrix cm;         ///< at that threshold
  double sensitivity = 0.0;   ///< recall, TPR
  double specificity = 0.0;   ///< 1 - FPR
  double precision = 0.0;     ///< 0 when nothing is predicted positive
  double youden_j = 0.0;      ///< sensitivity + specificity - 1
};

/// Chooses a threshold among the distinct scores:
///  - "youden": the one that maximises TPR - FPR (Youden's J), the highest such score on ties;
///    the same threshold as sklearn's roc_curve followed by argmax(tpr - fpr), except that the
///    curve's leading "predict nothing" point is never chosen. J is compared exactly (in integer
///    counts), so mathematically equal points tie even where floating point would not.
///  - "sensitivity": the highest threshold whose sensitivity (recall) >= target, i.e. the most
///    specific operating point that still finds that share of the positives; target in (0, 1].
/// Needs both classes in y_true. Scores need not be probabilities. `target` is ignored by "youden".
ThresholdChoice choose_threshold(const std::vector<int>& y_true, const std::vector<double>& scores,
                                 const std::string& method = "youden", double target = 0.9);

/// One-line JSON object with every field of `c` in declaration order, the matrix as
/// {"tn":..,"fp":..,"fn":..,"tp":..}.
std::string to_json(const ThresholdChoice& c);

}  // namespace histocnn::metrics
