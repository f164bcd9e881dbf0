#include "histocnn/metrics/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "validate.h"

namespace histocnn::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

nlohmann::ordered_json parse(const std::string& text) { return nlohmann::ordered_json::parse(text); }

// "0.9312", or "n/a" for NaN.
std::string number(double v, int digits = 4) {
  return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : std::string("n/a");
}

std::string interval_text(const std::optional<BootstrapResult>& intervals,
                          const ConfidenceInterval BootstrapResult::*member) {
  if (!intervals) return "";
  const ConfidenceInterval& ci = (*intervals).*member;
  if (!std::isfinite(ci.lower)) return "  [n/a]";
  std::string text = fmt::format("  [{}, {}]", number(ci.lower), number(ci.upper));
  if (ci.n_valid < intervals->n_boot) text += fmt::format("  ({} of {} resamples defined)", ci.n_valid, intervals->n_boot);
  return text;
}

}  // namespace

EvaluationReport evaluate_full(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                               const std::vector<std::string>& patients,
                               const EvaluationOptions& options) {
  detail::check_sizes(y_true.size(), p_positive.size(), "p_positive");
  detail::check_labels(y_true, "y_true");
  detail::check_probabilities(p_positive, "p_positive");
  if (!patients.empty()) detail::check_patients(patients, y_true.size());
  HISTOCNN_CHECK(options.class_names.size() == 2,
                 "class_names must name the 2 classes (0 then 1), got {} names", options.class_names.size());
  HISTOCNN_CHECK(options.n_boot >= 0, "n_boot = {} must be >= 0 (0 skips the bootstrap)", options.n_boot);

  EvaluationReport r;
  r.class_names = options.class_names;
  r.validation_choice = options.validation_choice;
  if (options.validation_choice) {
    r.threshold = options.validation_choice->threshold;
    r.threshold_method = options.validation_choice->method;
  } else {
    r.threshold = options.threshold;
  }
  HISTOCNN_CHECK(std::isfinite(r.threshold), "threshold = {} is not finite", r.threshold);

  r.metrics = evaluate_binary(y_true, p_positive, r.threshold);
  const int64_t positives = r.metrics.cm.tp + r.metrics.cm.fn;
  r.positive_rate = static_cast<double>(positives) / static_cast<double>(r.metrics.n);
  r.pr_auc = kNaN;
  if (positives > 0) {
    r.pr = precision_recall_curve(y_true, p_positive);
    r.pr_auc = average_precision(y_true, p_positive);
  }
  if (positives > 0 && positives < r.metrics.n) r.roc = roc_curve(y_true, p_positive);

  if (options.n_boot > 0) {
    BootstrapOptions b;
    b.n_boot = options.n_boot;
    b.confidence = options.confidence;
    b.seed = options.seed;
    b.threshold = r.threshold;
    b.by_patient = options.by_patient;
    r.intervals = bootstrap_metrics(y_true, p_positive, patients, b);
  }
  r.calibration = calibration_report(y_true, p_positive, options.calibration_bins);
  if (!patients.empty()) {
    r.patient = evaluate_patients(y_true, p_positive, patients, options.patient_aggregation,
                                  options.patient_threshold, r.threshold);
  }
  r.classification_report =
      metrics::classification_report(y_true, threshold_scores(p_positive, r.threshold), r.class_names, 4);
  return r;
}

std::string EvaluationReport::to_json(bool include_curves) const {
  nlohmann::ordered_json j;
  j["threshold"] = threshold;
  j["threshold_method"] = threshold_method;
  j["validation_choice"] = validation_choice ? parse(metrics::to_json(*validation_choice)) : nullptr;
  j["class_names"] = class_names;
  j["metrics"] = parse(metrics::to_json(metrics));
  j["positive_rate"] = positive_rate;
  j["pr_auc"] = pr_auc;
  j["intervals"] = intervals ? parse(metrics::to_json(*intervals)) : nullptr;
  j["calibration"] = parse(metrics::to_json(calibration));
  j["patient"] = patient ? parse(metrics::to_json(*patient)) : nullptr;
  if (include_curves) {
    j["roc_curve"] = {{"fpr", roc.fpr}, {"tpr", roc.tpr}, {"thresholds", roc.thresholds}};
    j["pr_curve"] = {{"precision", pr.precision}, {"recall", pr.recall}, {"thresholds", pr.thresholds}};
  }
  return j.dump();
}

std::string EvaluationReport::to_text() const {
  const ConfusionMatrix& cm = metrics.cm;
  const int64_t positives = cm.tp + cm.fn;
  std::string t = fmt::format("{} samples, {} positive ({:.1f} %)", metrics.n, positives, 100.0 * positive_rate);
  if (patient) t += fmt::format(", from {} patients", patient->per_patient.patients.size());
  t += "\n";
  t += fmt::format("Decision threshold {:.6g}", threshold);
  if (validation_choice) {
    const ThresholdChoice& c = *validation_choice;
    t += c.method == "youden"
             ? std::string(" (Youden's J on validation")
             : fmt::format(" (sensitivity >= {:.3g} on validation", c.target);
    t += fmt::format(": sensitivity {:.4f}, specificity {:.4f})", c.sensitivity, c.specificity);
  } else {
    t += " (fixed)";
  }
  t += "\n\n";

  if (intervals) {
    t += fmt::format("{:<22}{:>8}  {:.0f} % CI, {} bootstrap over {} {}s\n", "metric", "value",
                     100.0 * intervals->confidence, intervals->n_boot, intervals->n_units, intervals->unit);
  } else {
    t += fmt::format("{:<22}{:>8}\n", "metric", "value");
  }
  auto line = [&](const char* name, double v, const ConfidenceInterval BootstrapResult::*member) {
    t += fmt::format("{:<22}{:>8}{}\n", name, number(v), member ? interval_text(intervals, member) : "");
  };
  line("ROC-AUC", metrics.roc_auc, &BootstrapResult::roc_auc);
  line("PR-AUC (avg precision)", pr_auc, &BootstrapResult::pr_auc);
  line("accuracy", metrics.accuracy, &BootstrapResult::accuracy);
  line("precision", metrics.precision, &BootstrapResult::precision);
  line("recall (sensitivity)", metrics.recall, &BootstrapResult::recall);
  line("specificity", metrics.specificity, &BootstrapResult::specificity);
  line("F1", metrics.f1, &BootstrapResult::f1);
  line("log-loss", metrics.log_loss, nullptr);
  line("Brier score", calibration.brier, nullptr);
  t += fmt::format("{:<22}{:>8}  (max calibration error {})\n",
                   fmt::format("ECE ({} bins)", calibration.n_bins), number(calibration.ece), number(calibration.mce));
  if (positives == 0 || positives == metrics.n) {
    t += "Only one class is present: ROC-AUC and PR-AUC are undefined here.\n";
  }

  t += "\n" + confusion_matrix_table(cm, class_names) + "\n" + classification_report + "\n";

  t += "Reliability (P(class 1) in equal-width bins)\n";
  t += fmt::format("{:>14}{:>9}{:>12}{:>12}\n", "bin", "count", "mean p", "observed");
  for (const ReliabilityBin& b : calibration.bins) {
    t += fmt::format("{:>14}{:>9}{:>12}{:>12}\n", fmt::format("({:.2f}, {:.2f}]", b.lower, b.upper), b.count,
                     b.count > 0 ? number(b.mean_confidence) : "-", b.count > 0 ? number(b.positive_rate) : "-");
  }

  if (patient) {
    const PatientMetrics& pm = *patient;
    const BinaryMetrics& m = pm.metrics;
    const int64_t positive_patients = m.cm.tp + m.cm.fn;
    t += fmt::format("\nPatient level: {} patients, {} positive (any positive patch); score = {}",
                     m.n, positive_patients, pm.per_patient.aggregation);
    if (pm.per_patient.aggregation == "fraction") {
      t += fmt::format(" of patches with p >= {:.6g}", pm.per_patient.patch_threshold);
    }
    t += fmt::format(", positive when score >= {:.6g}\n", pm.threshold);
    t += fmt::format("  accuracy {}  precision {}  recall {}  specificity {}  F1 {}\n", number(m.accuracy),
                     number(m.precision), number(m.recall), number(m.specificity), number(m.f1));
    t += fmt::format("  ROC-AUC {}  PR-AUC {}", number(m.roc_auc), number(pm.pr_auc));
    if (positive_patients == 0 || positive_patients == m.n) t += "  (one class only: ROC-AUC undefined)";
    t += "\n";
  }
  return t;
}

}  // namespace histocnn::metrics
