#pragma once
// The Evaluator's rule: a candidate model is BLESSED when every value threshold holds and, when a
// baseline (the served version, evaluated now on the same test patients) exists, every change
// threshold against it holds too. As TFX's model validation: with no baseline only the value
// thresholds apply.
//
//   auto rule = histocnn::pipeline::BlessingRule::from_json(
//       R"({"value_thresholds": {"roc_auc": 0.90, "recall": 0.85},
//           "change_thresholds": {"roc_auc": -0.01}})");
//   auto b = histocnn::pipeline::decide_blessing(rule, candidate_metrics, baseline_metrics);
//   if (!b.blessed) for (auto& r : b.reasons()) fmt::print("{}\n", r);
//
// Metrics are named as metrics::to_json(BinaryMetrics) names them (accuracy, precision, recall,
// sensitivity = recall, specificity, f1, roc_auc, log_loss), at the model's own decision threshold,
// on the test split as stained; "restained.<metric>" reads the same test patients restained. For
// log_loss lower is better: its value threshold is an upper bound and its change threshold reads
// baseline - candidate. A threshold is a number (the bound) or {"lower": x, "upper": y}. A change
// threshold c asks candidate - baseline >= c (c = -0.01: may lose at most 0.01). A metric that is
// undefined (NaN, e.g. AUC on one class) fails its checks.
#include <optional>
#include <string>
#include <vector>

namespace histocnn::pipeline {

struct MetricThreshold {
  std::string metric;            ///< "roc_auc", "restained.recall"
  std::optional<double> lower, upper;
};

struct BlessingRule {
  std::vector<MetricThreshold> value_thresholds;
  std::vector<MetricThreshold> change_thresholds;  ///< lower: the least change allowed
  /// Parses {"value_thresholds": {...}, "change_thresholds": {...}} (other keys are ignored);
  /// std::invalid_argument names an unknown metric or a bad bound.
  static BlessingRule from_json(const std::string& json);
};

struct BlessingCheck {
  std::string kind;    ///< "value" or "change"
  std::string metric;
  double candidate = 0;
  std::optional<double> baseline;
  std::string bound;   ///< ">= 0.9", "<= 0.5", "change >= -0.01"
  bool passed = false;
  std::string text;    ///< "roc_auc 0.931 >= 0.900: passed"
};

struct Blessing {
  bool blessed = false;
  bool has_baseline = false;
  std::vector<BlessingCheck> checks;
  /// The failed checks' texts (empty when blessed).
  std::vector<std::string> reasons() const;
  std::string to_json() const;
};

/// `candidate` and `baseline` are {"plain": <BinaryMetrics JSON>, "restained": <...>} objects
/// (restained may be absent when no check names it).
Blessing decide_blessing(const BlessingRule& rule, const std::string& candidate_json,
                         const std::optional<std::string>& baseline_json);

}  // namespace histocnn::pipeline
