#pragma once
// Bootstrap 95 % confidence intervals for the binary metrics, resampling patients when patient ids
// are given.
//
//   namespace hm = histocnn::metrics;
//   hm::BootstrapOptions opt;          // 1000 resamples, 95 %, seed 42, threshold 0.5, by patient
//   opt.threshold = choice.threshold;  // e.g. chosen on validation with choose_threshold()
//   auto ci = hm::bootstrap_metrics(y_test, p_test, patient_ids, opt);
//   fmt::print("AUC {:.3f} [{:.3f}, {:.3f}] over {} {}s\n", ci.roc_auc.estimate, ci.roc_auc.lower,
//              ci.roc_auc.upper, ci.n_units, ci.unit);
//
// Why patients: patches of one patient share tissue, staining and scanner, so they are strongly
// correlated, and a test set of 20,000 patches from 6 patients holds far less information than
// 20,000 independent samples. Resampling patches pretends otherwise and gives intervals that are
// too narrow. The clustered bootstrap draws patients with replacement and takes all patches of
// each drawn patient; it is used whenever patient ids are given (set by_patient = false to
// resample patches anyway). With few patients the interval is wide: that is the honest answer.
//
// Method: the percentile bootstrap. Replicate b draws n_units units uniformly with replacement;
// each metric is recomputed on the replicate; the interval is the (1 - confidence) / 2 and
// (1 + confidence) / 2 quantiles of the replicates (linear interpolation, numpy's default).
// The estimate is the metric on the original data, not the replicates' mean.
// Replicates in which a metric is undefined (AUC or PR-AUC without both classes, precision with
// nothing predicted positive, recall without positives, specificity without negatives, F1 with
// tp + fp + fn = 0) are left out of that metric's interval, and counted: n_valid < n_boot says
// how many were left; they are NaN in `replicates`.
// Reproducible: a seeded std::mt19937_64 with an unbiased draw of our own (the standard library's
// distributions differ between implementations), so a seed gives the same intervals everywhere.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace histocnn::metrics {

struct BootstrapOptions {
  int64_t n_boot = 1000;     ///< number of resamples, >= 1 (1000 is the usual minimum for 95 % CIs)
  double confidence = 0.95;  ///< in (0, 1)
  uint64_t seed = 42;
  double threshold = 0.5;    ///< predicted positive when score >= threshold
  bool by_patient = true;    ///< resample patients when patient ids are given
};

struct ConfidenceInterval {
  double estimate = 0.0;            ///< on the original data; NaN where undefined there
  double lower = 0.0, upper = 0.0;  ///< NaN when no replicate was valid
  int64_t n_valid = 0;              ///< replicates in which the metric was defined
  std::vector<double> replicates;   ///< one value per replicate, NaN where undefined
};

struct BootstrapResult {
  std::string unit;        ///< "patient" or "patch": what was resampled
  int64_t n_units = 0;     ///< number of patients or patches
  int64_t n_boot = 0;
  double confidence = 0.95;
  uint64_t seed = 0;
  double threshold = 0.5;
  ConfidenceInterval roc_auc, pr_auc, accuracy, precision, recall, f1, specificity;
};

/// Draws bootstrap replicates as multiplicities: how often each sample occurs in the replicate.
/// With patient ids (one per sample) it draws patients, and every patch of a drawn patient gets
/// the patient's multiplicity. Units are patches in input order or patients in sorted id order.
/// bootstrap_metrics() uses it; it is public so that any other statistic can be bootstrapped with
/// the same resamples.
class BootstrapSampler {
 public:
  /// `patients` empty: resample the n_samples samples; else one non-empty id per sample.
  BootstrapSampler(size_t n_samples, const std::vector<std::string>& patients, uint64_t seed);

  /// The multiplicities of the next replicate (size n_samples); valid until the next call.
  const std::vector<int64_t>& next();
  int64_t n_units() const { return static_cast<int64_t>(unit_count_.size()); }
  bool by_patient() const { return by_patient_; }

 private:
  std::mt19937_64 rng_;
  bool by_patient_ = false;
  std::vector<size_t> unit_of_sample_;
  std::vector<int64_t> unit_count_;
  std::vector<int64_t> counts_;
};

/// Unbiased integer in [0, n) from one or more 64-bit draws (rejection sampling); n >= 1.
uint64_t uniform_index(std::mt19937_64& rng, uint64_t n);

/// Percentile intervals for ROC-AUC, PR-AUC (average precision), accuracy, precision, recall, F1
/// and specificity. `scores` need only be finite; `patients` is empty or has one id per sample.
BootstrapResult bootstrap_metrics(const std::vector<int>& y_true, const std::vector<double>& scores,
                                  const std::vector<std::string>& patients = {},
                                  const BootstrapOptions& options = {});

/// One-line JSON object: the settings, then per metric {"estimate", "lower", "upper", "n_valid"}
/// (replicates are left out); NaN is written as null.
std::string to_json(const BootstrapResult& r);

}  // namespace histocnn::metrics
