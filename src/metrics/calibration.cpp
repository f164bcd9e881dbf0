#include "histocnn/metrics/calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "validate.h"

namespace histocnn::metrics {
namespace {

void check_inputs(const std::vector<int>& y_true, const std::vector<double>& p_positive) {
  detail::check_sizes(y_true.size(), p_positive.size(), "p_positive");
  detail::check_labels(y_true, "y_true");
  detail::check_probabilities(p_positive, "p_positive");
}

void check_bins(int n_bins) {
  HISTOCNN_CHECK(n_bins >= 1 && n_bins <= 100000,
                 "n_bins = {} must lie in [1, 100000]; 10 is the usual choice", n_bins);
}

// numpy.linspace(0, 1, n + 1)[i]: i * (1 / n), the last edge exactly 1.
double edge(int i, int n_bins) { return i == n_bins ? 1.0 : i * (1.0 / n_bins); }

// The bin of p: the number of inner edges strictly below p (numpy.searchsorted, side='left').
int bin_of(double p, int n_bins) {
  int b = std::min(n_bins - 1, static_cast<int>(p * n_bins));
  while (b > 0 && p <= edge(b, n_bins)) --b;
  while (b < n_bins - 1 && p > edge(b + 1, n_bins)) ++b;
  return b;
}

}  // namespace

std::vector<ReliabilityBin> reliability_table(const std::vector<int>& y_true,
                                              const std::vector<double>& p_positive, int n_bins) {
  check_inputs(y_true, p_positive);
  check_bins(n_bins);
  std::vector<ReliabilityBin> bins(static_cast<size_t>(n_bins));
  std::vector<double> sum_p(bins.size(), 0.0);
  std::vector<int64_t> positives(bins.size(), 0);
  for (size_t i = 0; i < y_true.size(); ++i) {
    const size_t b = static_cast<size_t>(bin_of(p_positive[i], n_bins));
    bins[b].count += 1;
    sum_p[b] += p_positive[i];
    positives[b] += y_true[i];
  }
  for (size_t b = 0; b < bins.size(); ++b) {
    bins[b].lower = edge(static_cast<int>(b), n_bins);
    bins[b].upper = edge(static_cast<int>(b) + 1, n_bins);
    const double count = static_cast<double>(bins[b].count);
    bins[b].mean_confidence = bins[b].count > 0 ? sum_p[b] / count : std::numeric_limits<double>::quiet_NaN();
    bins[b].positive_rate = bins[b].count > 0 ? static_cast<double>(positives[b]) / count
                                              : std::numeric_limits<double>::quiet_NaN();
  }
  return bins;
}

namespace {

// ECE and MCE from one table, so that calibration_report() bins only once.
void calibration_errors(const std::vector<ReliabilityBin>& bins, size_t n, double* ece, double* mce) {
  *ece = 0.0;
  *mce = 0.0;
  for (const ReliabilityBin& b : bins) {
    if (b.count == 0) continue;
    const double gap = std::fabs(b.positive_rate - b.mean_confidence);
    *ece += static_cast<double>(b.count) / static_cast<double>(n) * gap;
    *mce = std::max(*mce, gap);
  }
}

}  // namespace

double expected_calibration_error(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                                  int n_bins) {
  double ece = 0.0, mce = 0.0;
  calibration_errors(reliability_table(y_true, p_positive, n_bins), y_true.size(), &ece, &mce);
  return ece;
}

double maximum_calibration_error(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                                 int n_bins) {
  double ece = 0.0, mce = 0.0;
  calibration_errors(reliability_table(y_true, p_positive, n_bins), y_true.size(), &ece, &mce);
  return mce;
}

double brier_score(const std::vector<int>& y_true, const std::vector<double>& p_positive) {
  check_inputs(y_true, p_positive);
  double sum = 0.0;
  for (size_t i = 0; i < y_true.size(); ++i) {
    const double d = static_cast<double>(y_true[i]) - p_positive[i];
    sum += d * d;
  }
  return sum / static_cast<double>(y_true.size());
}

CalibrationReport calibration_report(const std::vector<int>& y_true,
                                     const std::vector<double>& p_positive, int n_bins) {
  CalibrationReport report;
  report.n_bins = n_bins;
  report.bins = reliability_table(y_true, p_positive, n_bins);
  calibration_errors(report.bins, y_true.size(), &report.ece, &report.mce);
  report.brier = brier_score(y_true, p_positive);
  return report;
}

std::string to_json(const CalibrationReport& c) {
  nlohmann::ordered_json j;
  j["n_bins"] = c.n_bins;
  j["ece"] = c.ece;
  j["mce"] = c.mce;
  j["brier"] = c.brier;
  j["bins"] = nlohmann::ordered_json::array();
  for (const ReliabilityBin& b : c.bins) {
    j["bins"].push_back({{"lower", b.lower},
                         {"upper", b.upper},
                         {"count", b.count},
                         {"mean_confidence", b.mean_confidence},
                         {"positive_rate", b.positive_rate}});
  }
  return j.dump();
}

}  // namespace histocnn::metrics
