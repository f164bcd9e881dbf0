#pragma once
// Everything one evaluation split has to say, in one struct: the metrics at the decision threshold
// (chosen on validation), bootstrap confidence intervals, PR-AUC, calibration and patient-level
// results, as JSON for machines and text for people.
//
//   namespace hm = histocnn::metrics;
//   hm::EvaluationOptions opt;
//   opt.validation_choice = hm::choose_threshold(y_val, p_val, "youden");  // never on test data
//   auto report = hm::evaluate_full(y_test, p_test, patients_test, opt);
//   fmt::print("{}", report.to_text());
//   histocnn::io::write_file_atomic("runs/1/test_metrics.json", report.to_json());
//   histocnn::metrics::write_evaluation_plots("runs/1/plots", report, "test_");   // plots.h
//
// `patients` may be empty: then the bootstrap resamples patches and there is no patient section.
// With patient ids the bootstrap resamples patients (see bootstrap.h for why). Splits with a single
// class still get a report: the metrics that need both classes (ROC-AUC, PR-AUC, their curves)
// are NaN or empty and the text says so.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "histocnn/metrics/binary.h"
#include "histocnn/metrics/bootstrap.h"
#include "histocnn/metrics/calibration.h"
#include "histocnn/metrics/curves.h"
#include "histocnn/metrics/patient.h"

namespace histocnn::metrics {

struct EvaluationOptions {
  /// Decision threshold on P(class 1), used unless validation_choice is set.
  double threshold = 0.5;
  /// A threshold chosen on the validation split (choose_threshold()); when set its threshold is
  /// used and the report records how it was chosen and what it did on validation.
  std::optional<ThresholdChoice> validation_choice;
  int64_t n_boot = 1000;       ///< bootstrap resamples; 0 skips the intervals
  double confidence = 0.95;    ///< of the intervals
  uint64_t seed = 42;          ///< of the bootstrap
  bool by_patient = true;      ///< resample patients when patient ids are given
  int calibration_bins = 10;
  std::string patient_aggregation = "mean";  ///< "mean", "fraction" or "max" (patient.h)
  double patient_threshold = 0.5;            ///< on the patient score
  std::vector<std::string> class_names = {"IDC-negative", "IDC-positive"};
};

struct EvaluationReport {
  double threshold = 0.5;
  std::string threshold_method = "fixed";     ///< "fixed", "youden" or "sensitivity"
  std::optional<ThresholdChoice> validation_choice;
  std::vector<std::string> class_names;
  BinaryMetrics metrics;                      ///< at `threshold`
  double positive_rate = 0.0;                 ///< share of positives: PR-AUC's chance level
  double pr_auc = 0.0;                        ///< average precision; NaN without a positive
  RocCurve roc;                               ///< empty with a single class
  PrecisionRecallCurve pr;                    ///< empty without a positive
  std::optional<BootstrapResult> intervals;   ///< absent when n_boot = 0
  CalibrationReport calibration;
  std::optional<PatientMetrics> patient;      ///< present when patient ids were given
  std::string classification_report;          ///< sklearn's layout, at `threshold`

  /// One JSON object: threshold (with the validation choice), metrics, pr_auc, intervals,
  /// calibration (with the reliability table), patient results; the ROC and PR curves only when
  /// include_curves (they have one point per distinct score). NaN is written as null.
  std::string to_json(bool include_curves = false) const;
  /// A plain-text summary for a terminal or a log file.
  std::string to_text() const;
};

/// Evaluates P(class 1) `p_positive` against `y_true` (0/1), optionally with one patient id per
/// sample. Probabilities must lie in [0, 1].
EvaluationReport evaluate_full(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                               const std::vector<std::string>& patients = {},
                               const EvaluationOptions& options = {});

}  // namespace histocnn::metrics
