#include "histocnn/metrics/bootstrap.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "histocnn/metrics/binary.h"
#include "histocnn/metrics/curves.h"
#include "validate.h"

namespace histocnn::metrics {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The scores sorted once, ascending, cut into groups of equal score: every replicate is then a
// weighted pass over the groups, O(n) instead of a sort per replicate.
struct SortedScores {
  std::vector<size_t> order;
  std::vector<size_t> group_end;  // exclusive end of each group in `order`
};

SortedScores sort_scores(const std::vector<double>& scores) {
  SortedScores s;
  s.order.resize(scores.size());
  std::iota(s.order.begin(), s.order.end(), size_t{0});
  std::sort(s.order.begin(), s.order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  for (size_t i = 1; i <= s.order.size(); ++i) {
    if (i == s.order.size() || scores[s.order[i]] != scores[s.order[i - 1]]) s.group_end.push_back(i);
  }
  return s;
}

struct Replicate {
  double roc_auc, pr_auc, accuracy, precision, recall, f1, specificity;
};

// All metrics of the data in which sample i occurs w[i] times. Integer counts throughout, so that
// a replicate equals the metrics of the explicitly resampled data. Undefined metrics are NaN.
Replicate weighted_metrics(const std::vector<int>& y, const std::vector<double>& scores,
                           const SortedScores& sorted, const std::vector<int64_t>& w, double threshold) {
  int64_t positives = 0, negatives = 0, tp = 0, fp = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    if (w[i] == 0) continue;
    const bool predicted = scores[i] >= threshold;
    if (y[i] == 1) {
      positives += w[i];
      if (predicted) tp += w[i];
    } else {
      negatives += w[i];
      if (predicted) fp += w[i];
    }
  }
  const int64_t fn = positives - tp, tn = negatives - fp;

  Replicate r{};
  r.roc_auc = r.pr_auc = kNaN;
  if (positives > 0 && negatives > 0) {
    __int128 twice_u = 0;
    int64_t positives_below = 0, negatives_below = 0;
    double ap = 0.0;
    size_t begin = 0;
    for (size_t end : sorted.group_end) {
      int64_t group_pos = 0, group_neg = 0;
      for (size_t k = begin; k < end; ++k) {
        const size_t i = sorted.order[k];
        (y[i] == 1 ? group_pos : group_neg) += w[i];
      }
      begin = end;
      if (group_pos + group_neg == 0) continue;  // not drawn: not a threshold of this replicate
      twice_u += 2 * static_cast<__int128>(group_pos) * negatives_below +
                 static_cast<__int128>(group_pos) * group_neg;
      // Predicting score >= this group's score: tps and fps count this group and all above it.
      const int64_t tps = positives - positives_below, fps = negatives - negatives_below;
      ap += static_cast<double>(group_pos) / static_cast<double>(positives) *
            (static_cast<double>(tps) / static_cast<double>(tps + fps));
      positives_below += group_pos;
      negatives_below += group_neg;
    }
    r.roc_auc = static_cast<double>(twice_u) /
                (2.0 * static_cast<double>(positives) * static_cast<double>(negatives));
    r.pr_auc = ap;
  }
  const double total = static_cast<double>(positives + negatives);
  r.accuracy = static_cast<double>(tp + tn) / total;
  r.precision = tp + fp > 0 ? static_cast<double>(tp) / static_cast<double>(tp + fp) : kNaN;
  r.recall = positives > 0 ? static_cast<double>(tp) / static_cast<double>(positives) : kNaN;
  r.specificity = negatives > 0 ? static_cast<double>(tn) / static_cast<double>(negatives) : kNaN;
  r.f1 = tp + fp + fn > 0 ? 2.0 * static_cast<double>(tp) / static_cast<double>(2 * tp + fp + fn) : kNaN;
  return r;
}

// numpy.quantile(values, q) with the default linear interpolation; `sorted` is ascending.
double quantile(const std::vector<double>& sorted, double q) {
  const double h = static_cast<double>(sorted.size() - 1) * q;
  const size_t lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

void finish_interval(ConfidenceInterval& ci, double confidence) {
  std::vector<double> valid;
  valid.reserve(ci.replicates.size());
  for (double v : ci.replicates) {
    if (!std::isnan(v)) valid.push_back(v);
  }
  ci.n_valid = static_cast<int64_t>(valid.size());
  if (valid.empty()) {
    ci.lower = ci.upper = kNaN;
    return;
  }
  std::sort(valid.begin(), valid.end());
  const double alpha = 1.0 - confidence;
  ci.lower = quantile(valid, alpha / 2.0);
  ci.upper = quantile(valid, 1.0 - alpha / 2.0);
}

}  // namespace

uint64_t uniform_index(std::mt19937_64& rng, uint64_t n) {
  HISTOCNN_CHECK(n >= 1, "uniform_index needs n >= 1, got {}", n);
  // Accept draws >= 2^64 mod n: the accepted range is a whole multiple of n, so r % n is unbiased.
  const uint64_t reject_below = (0 - n) % n;
  for (;;) {
    const uint64_t r = rng();
    if (r >= reject_below) return r % n;
  }
}

BootstrapSampler::BootstrapSampler(size_t n_samples, const std::vector<std::string>& patients,
                                   uint64_t seed)
    : rng_(seed), by_patient_(!patients.empty()) {
  HISTOCNN_CHECK(n_samples > 0, "the bootstrap needs at least one sample");
  unit_of_sample_.resize(n_samples);
  if (by_patient_) {
    HISTOCNN_CHECK(patients.size() == n_samples,
                   "patients has {} ids but there are {} samples; pass one patient id per sample",
                   patients.size(), n_samples);
    std::map<std::string, size_t> unit_of_patient;
    for (size_t i = 0; i < n_samples; ++i) {
      HISTOCNN_CHECK(!patients[i].empty(), "patients[{}] is empty; every sample needs a patient id", i);
      unit_of_patient.emplace(patients[i], 0);
    }
    size_t next_unit = 0;
    for (auto& entry : unit_of_patient) entry.second = next_unit++;
    for (size_t i = 0; i < n_samples; ++i) unit_of_sample_[i] = unit_of_patient.at(patients[i]);
    unit_count_.assign(unit_of_patient.size(), 0);
  } else {
    std::iota(unit_of_sample_.begin(), unit_of_sample_.end(), size_t{0});
    unit_count_.assign(n_samples, 0);
  }
  counts_.assign(n_samples, 0);
}

const std::vector<int64_t>& BootstrapSampler::next() {
  std::fill(unit_count_.begin(), unit_count_.end(), 0);
  const uint64_t n_units = unit_count_.size();
  for (uint64_t k = 0; k < n_units; ++k) unit_count_[uniform_index(rng_, n_units)] += 1;
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] = unit_count_[unit_of_sample_[i]];
  return counts_;
}

BootstrapResult bootstrap_metrics(const std::vector<int>& y_true, const std::vector<double>& scores,
                                  const std::vector<std::string>& patients,
                                  const BootstrapOptions& options) {
  detail::check_scored(y_true, scores, "scores");
  if (!patients.empty()) detail::check_patients(patients, y_true.size());
  HISTOCNN_CHECK(options.n_boot >= 1 && options.n_boot <= 10'000'000,
                 "n_boot = {} must lie in [1, 10000000]; 1000 is the usual choice", options.n_boot);
  HISTOCNN_CHECK(std::isfinite(options.confidence) && options.confidence > 0.0 && options.confidence < 1.0,
                 "confidence = {} must lie in (0, 1), e.g. 0.95", options.confidence);
  HISTOCNN_CHECK(std::isfinite(options.threshold), "threshold = {} is not finite", options.threshold);

  const bool by_patient = options.by_patient && !patients.empty();
  BootstrapSampler sampler(y_true.size(), by_patient ? patients : std::vector<std::string>{}, options.seed);
  const SortedScores sorted = sort_scores(scores);

  BootstrapResult result;
  result.unit = by_patient ? "patient" : "patch";
  result.n_units = sampler.n_units();
  result.n_boot = options.n_boot;
  result.confidence = options.confidence;
  result.seed = options.seed;
  result.threshold = options.threshold;

  const std::vector<int64_t> ones(y_true.size(), 1);
  const Replicate estimate = weighted_metrics(y_true, scores, sorted, ones, options.threshold);
  ConfidenceInterval* intervals[] = {&result.roc_auc,   &result.pr_auc, &result.accuracy,
                                     &result.precision, &result.recall, &result.f1,
                                     &result.specificity};
  auto values = [](const Replicate& r) {
    return std::vector<double>{r.roc_auc, r.pr_auc, r.accuracy, r.precision, r.recall, r.f1, r.specificity};
  };
  const std::vector<double> point = values(estimate);
  for (size_t m = 0; m < point.size(); ++m) {
    intervals[m]->estimate = point[m];
    intervals[m]->replicates.reserve(static_cast<size_t>(options.n_boot));
  }
  // The original data's estimates follow the library's conventions exactly (sklearn's operation
  // order for PR-AUC, zero_division = 0 for precision and recall).
  if (!std::isnan(result.pr_auc.estimate)) result.pr_auc.estimate = average_precision(y_true, scores);
  const ConfusionMatrix cm = confusion_matrix(y_true, threshold_scores(scores, options.threshold));
  result.precision.estimate = precision(cm);
  result.recall.estimate = recall(cm);
  result.specificity.estimate = specificity(cm);
  result.f1.estimate = f1_score(cm);

  for (int64_t b = 0; b < options.n_boot; ++b) {
    const std::vector<double> v =
        values(weighted_metrics(y_true, scores, sorted, sampler.next(), options.threshold));
    for (size_t m = 0; m < v.size(); ++m) intervals[m]->replicates.push_back(v[m]);
  }
  for (ConfidenceInterval* ci : intervals) finish_interval(*ci, options.confidence);
  return result;
}

std::string to_json(const BootstrapResult& r) {
  nlohmann::ordered_json j;
  j["unit"] = r.unit;
  j["n_units"] = r.n_units;
  j["n_boot"] = r.n_boot;
  j["confidence"] = r.confidence;
  j["seed"] = r.seed;
  j["threshold"] = r.threshold;
  auto interval = [](const ConfidenceInterval& ci) {
    return nlohmann::ordered_json{
        {"estimate", ci.estimate}, {"lower", ci.lower}, {"upper", ci.upper}, {"n_valid", ci.n_valid}};
  };
  j["roc_auc"] = interval(r.roc_auc);
  j["pr_auc"] = interval(r.pr_auc);
  j["accuracy"] = interval(r.accuracy);
  j["precision"] = interval(r.precision);
  j["recall"] = interval(r.recall);
  j["f1"] = interval(r.f1);
  j["specificity"] = interval(r.specificity);
  return j.dump();
}

}  // namespace histocnn::metrics
