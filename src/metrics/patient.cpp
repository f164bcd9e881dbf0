#include "histocnn/metrics/patient.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "histocnn/metrics/curves.h"
#include "validate.h"

namespace histocnn::metrics {

PatientScores aggregate_patients(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                                 const std::vector<std::string>& patients,
                                 const std::string& aggregation, double patch_threshold) {
  detail::check_sizes(y_true.size(), p_positive.size(), "p_positive");
  detail::check_labels(y_true, "y_true");
  detail::check_probabilities(p_positive, "p_positive");
  detail::check_patients(patients, y_true.size());
  HISTOCNN_CHECK(aggregation == "mean" || aggregation == "fraction" || aggregation == "max",
                 "aggregation = '{}' is not known; use 'mean', 'fraction' or 'max'", aggregation);
  HISTOCNN_CHECK(std::isfinite(patch_threshold), "patch_threshold = {} is not finite", patch_threshold);

  struct Accumulator {
    int64_t n = 0, positives = 0, above = 0;
    double sum = 0.0, max = 0.0;
  };
  std::map<std::string, Accumulator> by_patient;
  for (size_t i = 0; i < y_true.size(); ++i) {
    HISTOCNN_CHECK(!patients[i].empty(), "patients[{}] is empty; every patch needs a patient id", i);
    Accumulator& a = by_patient[patients[i]];
    a.max = a.n == 0 ? p_positive[i] : std::max(a.max, p_positive[i]);
    a.n += 1;
    a.positives += y_true[i];
    a.above += p_positive[i] >= patch_threshold ? 1 : 0;
    a.sum += p_positive[i];
  }

  PatientScores out;
  out.aggregation = aggregation;
  out.patch_threshold = patch_threshold;
  for (const auto& [id, a] : by_patient) {
    out.patients.push_back(id);
    out.labels.push_back(a.positives > 0 ? 1 : 0);
    const double n = static_cast<double>(a.n);
    double score = a.max;
    if (aggregation == "mean") score = std::min(1.0, a.sum / n);  // rounding may pass 1 by an ulp
    if (aggregation == "fraction") score = static_cast<double>(a.above) / n;
    out.scores.push_back(score);
    out.n_patches.push_back(a.n);
    out.n_positive_patches.push_back(a.positives);
  }
  return out;
}

PatientMetrics evaluate_patients(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                                 const std::vector<std::string>& patients,
                                 const std::string& aggregation, double threshold,
                                 double patch_threshold) {
  HISTOCNN_CHECK(std::isfinite(threshold), "threshold = {} is not finite", threshold);
  PatientMetrics m;
  m.per_patient = aggregate_patients(y_true, p_positive, patients, aggregation, patch_threshold);
  m.threshold = threshold;
  m.metrics = evaluate_binary(m.per_patient.labels, m.per_patient.scores, threshold);
  const bool any_positive =
      std::find(m.per_patient.labels.begin(), m.per_patient.labels.end(), 1) != m.per_patient.labels.end();
  m.pr_auc = any_positive ? average_precision(m.per_patient.labels, m.per_patient.scores)
                          : std::numeric_limits<double>::quiet_NaN();
  return m;
}

std::string to_json(const PatientMetrics& m) {
  nlohmann::ordered_json j;
  j["aggregation"] = m.per_patient.aggregation;
  j["patch_threshold"] = m.per_patient.patch_threshold;
  j["threshold"] = m.threshold;
  j["n_patients"] = m.per_patient.patients.size();
  j["metrics"] = nlohmann::ordered_json::parse(to_json(m.metrics));
  j["pr_auc"] = m.pr_auc;
  j["patients"] = nlohmann::ordered_json::array();
  const PatientScores& s = m.per_patient;
  for (size_t k = 0; k < s.patients.size(); ++k) {
    j["patients"].push_back({{"patient", s.patients[k]},
                             {"label", s.labels[k]},
                             {"score", s.scores[k]},
                             {"n_patches", s.n_patches[k]},
                             {"n_positive_patches", s.n_positive_patches[k]}});
  }
  return j.dump();
}

WithinPatientAuc within_patient_auc(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                                    const std::vector<std::string>& patients) {
  detail::check_patients(patients, y_true.size());
  HISTOCNN_CHECK(p_positive.size() == y_true.size(), "p_positive has {} values but y_true has {} samples",
                 p_positive.size(), y_true.size());
  std::map<std::string, std::pair<std::vector<int>, std::vector<double>>> by_patient;
  for (size_t i = 0; i < y_true.size(); ++i) {
    auto& yp = by_patient[patients[i]];
    yp.first.push_back(y_true[i]);
    yp.second.push_back(p_positive[i]);
  }
  WithinPatientAuc out;
  for (const auto& [id, yp] : by_patient) {
    const auto positives = std::count(yp.first.begin(), yp.first.end(), 1);
    if (positives == 0 || positives == static_cast<int64_t>(yp.first.size())) continue;
    out.patients.push_back(id);
    out.auc.push_back(roc_auc(yp.first, yp.second));
  }
  std::vector<double> sorted = out.auc;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  out.median = n == 0 ? std::nan("") : n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
  return out;
}

}  // namespace histocnn::metrics
