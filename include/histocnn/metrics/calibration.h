#pragma once
// Calibration of P(class 1): does a patch scored 0.8 turn out positive 80 % of the time?
//
//   namespace hm = histocnn::metrics;
//   double ece = hm::expected_calibration_error(y, p);          // 10 equal-width bins
//   double brier = hm::brier_score(y, p);                       // sklearn brier_score_loss
//   for (const auto& b : hm::reliability_table(y, p, 10))
//     if (b.count > 0) fmt::print("[{:.1f}, {:.1f}] n={} predicted {:.3f} observed {:.3f}\n",
//                                 b.lower, b.upper, b.count, b.mean_confidence, b.positive_rate);
//
// Confidence here is the predicted probability of the positive class (as in
// sklearn.calibration.calibration_curve and Naeini et al.'s binary ECE), not the probability of the
// predicted class ("top-label" ECE of Guo et al.); for two classes the two differ, and this one is
// what the reliability diagram shows.
// Bins: n_bins equal-width bins over [0, 1] with edges i * (1 / n_bins), as numpy.linspace makes
// them; a probability on an inner edge belongs to the lower bin, 0 to the first bin (the
// convention of calibration_curve, whose numbers reliability_table reproduces).
#include <cstdint>
#include <string>
#include <vector>

namespace histocnn::metrics {

/// One bin of a reliability table. Empty bins have count 0 and NaN means.
struct ReliabilityBin {
  double lower = 0.0, upper = 0.0;  ///< the bin covers (lower, upper], the first one [0, upper]
  int64_t count = 0;                ///< patches whose P(class 1) falls in the bin
  double mean_confidence = 0.0;     ///< their mean P(class 1)
  double positive_rate = 0.0;       ///< the fraction of them that are truly positive
};

/// All n_bins bins (empty ones included, so the table always has n_bins rows); n_bins >= 1.
std::vector<ReliabilityBin> reliability_table(const std::vector<int>& y_true,
                                              const std::vector<double>& p_positive, int n_bins = 10);

/// sum over bins of (count / n) * |positive_rate - mean_confidence|; 0 for perfect calibration.
double expected_calibration_error(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                                  int n_bins = 10);

/// Maximum calibration error: the largest |positive_rate - mean_confidence| over non-empty bins.
double maximum_calibration_error(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                                 int n_bins = 10);

/// Mean of (y - p)^2, equal to sklearn.metrics.brier_score_loss; 0 is perfect, 0.25 is what a
/// constant 0.5 scores.
double brier_score(const std::vector<int>& y_true, const std::vector<double>& p_positive);

/// The whole calibration picture of one split.
struct CalibrationReport {
  int n_bins = 10;
  double ece = 0.0, mce = 0.0, brier = 0.0;
  std::vector<ReliabilityBin> bins;
};

CalibrationReport calibration_report(const std::vector<int>& y_true,
                                     const std::vector<double>& p_positive, int n_bins = 10);

/// One-line JSON object; empty bins' NaN means are written as null.
std::string to_json(const CalibrationReport& c);

}  // namespace histocnn::metrics
