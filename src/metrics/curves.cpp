#include "histocnn/metrics/curves.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <numeric>

#include "validate.h"

namespace histocnn::metrics {
namespace {

// Cumulative counts at each distinct score, scores descending: the points of sklearn's
// _binary_clf_curve.
struct CumulativeCounts {
  std::vector<int64_t> tps, fps;
  std::vector<double> thresholds;
};

CumulativeCounts descending_counts(const std::vector<int>& y_true, const std::vector<double>& scores) {
  std::vector<size_t> order(scores.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  CumulativeCounts c;
  int64_t tps = 0, fps = 0;
  for (size_t k = 0; k < order.size();) {
    const double score = scores[order[k]];
    for (; k < order.size() && scores[order[k]] == score; ++k) (y_true[order[k]] == 1 ? tps : fps) += 1;
    c.tps.push_back(tps);
    c.fps.push_back(fps);
    c.thresholds.push_back(score);
  }
  return c;
}

void check_has_positive(int64_t positives, const char* what) {
  HISTOCNN_CHECK(positives > 0,
                 "{} is undefined when y_true holds no positive sample (recall divides by the "
                 "number of positives); evaluate on a split that contains IDC-positive patches",
                 what);
}

}  // namespace

PrecisionRecallCurve precision_recall_curve(const std::vector<int>& y_true,
                                            const std::vector<double>& scores) {
  detail::check_scored(y_true, scores, "scores");
  const CumulativeCounts c = descending_counts(y_true, scores);
  const int64_t positives = c.tps.back();
  check_has_positive(positives, "the precision-recall curve");
  // Reversed, so that recall decreases along the arrays (sklearn 1.2 keeps every threshold,
  // also those below the first one that reaches full recall).
  PrecisionRecallCurve curve;
  for (size_t k = c.thresholds.size(); k > 0; --k) {
    const size_t i = k - 1;
    curve.precision.push_back(static_cast<double>(c.tps[i]) / static_cast<double>(c.tps[i] + c.fps[i]));
    curve.recall.push_back(static_cast<double>(c.tps[i]) / static_cast<double>(positives));
    curve.thresholds.push_back(c.thresholds[i]);
  }
  curve.precision.push_back(1.0);
  curve.recall.push_back(0.0);
  return curve;
}

double average_precision(const std::vector<int>& y_true, const std::vector<double>& scores) {
  const PrecisionRecallCurve curve = precision_recall_curve(y_true, scores);
  // sklearn: -np.sum(np.diff(recall) * precision[:-1]).
  double sum = 0.0;
  for (size_t i = 0; i + 1 < curve.recall.size(); ++i) {
    sum += (curve.recall[i + 1] - curve.recall[i]) * curve.precision[i];
  }
  return -sum;
}

ThresholdChoice choose_threshold(const std::vector<int>& y_true, const std::vector<double>& scores,
                                 const std::string& method, double target) {
  detail::check_scored(y_true, scores, "scores");
  HISTOCNN_CHECK(method == "youden" || method == "sensitivity",
                 "method = '{}' is not a threshold rule; use 'youden' (max TPR - FPR) or "
                 "'sensitivity' (highest threshold reaching a target sensitivity)",
                 method);
  if (method == "sensitivity") {
    HISTOCNN_CHECK(std::isfinite(target) && target > 0.0 && target <= 1.0,
                   "target = {} must be a sensitivity in (0, 1]", target);
  }
  const CumulativeCounts c = descending_counts(y_true, scores);
  const int64_t positives = c.tps.back();
  const int64_t negatives = c.fps.back();
  HISTOCNN_CHECK(positives > 0 && negatives > 0,
                 "choosing a threshold needs both classes in y_true ({} positives, {} negatives); "
                 "choose it on a validation split that contains both",
                 positives, negatives);

  size_t best = 0;
  if (method == "youden") {
    // J_i = tps_i / P - fps_i / N; compare tps_i * N - fps_i * P exactly (128 bits: no overflow).
    auto scaled_j = [&](size_t i) {
      return static_cast<__int128>(c.tps[i]) * negatives - static_cast<__int128>(c.fps[i]) * positives;
    };
    for (size_t i = 1; i < c.thresholds.size(); ++i) {
      if (scaled_j(i) > scaled_j(best)) best = i;
    }
  } else {
    // The lowest threshold always reaches sensitivity 1, so a point is always found.
    best = c.thresholds.size() - 1;
    for (size_t i = 0; i < c.thresholds.size(); ++i) {
      if (static_cast<double>(c.tps[i]) / static_cast<double>(positives) >= target) {
        best = i;
        break;
      }
    }
  }

  ThresholdChoice choice;
  choice.method = method;
  choice.target = method == "sensitivity" ? target : 0.0;
  choice.threshold = c.thresholds[best];
  choice.cm.tp = c.tps[best];
  choice.cm.fp = c.fps[best];
  choice.cm.fn = positives - c.tps[best];
  choice.cm.tn = negatives - c.fps[best];
  choice.sensitivity = recall(choice.cm);
  choice.specificity = specificity(choice.cm);
  choice.precision = precision(choice.cm);
  choice.youden_j = choice.sensitivity + choice.specificity - 1.0;
  return choice;
}

std::string to_json(const ThresholdChoice& c) {
  nlohmann::ordered_json j;
  j["method"] = c.method;
  j["target"] = c.target;
  j["threshold"] = c.threshold;
  j["cm"] = {{"tn", c.cm.tn}, {"fp", c.cm.fp}, {"fn", c.cm.fn}, {"tp", c.cm.tp}};
  j["sensitivity"] = c.sensitivity;
  j["specificity"] = c.specificity;
  j["precision"] = c.precision;
  j["youden_j"] = c.youden_j;
  return j.dump();
}

}  // namespace histocnn::metrics
