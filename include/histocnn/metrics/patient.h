#pragma once
// Patient-level results: patch probabilities aggregated per patient, then the usual metrics with
// one sample per patient.
//
//   namespace hm = histocnn::metrics;
//   auto per_patient = hm::aggregate_patients(y, p, patient_ids, "fraction", 0.5);
//   // per_patient.patients[k], .labels[k], .scores[k] (share of patches with p >= 0.5), .n_patches[k]
//   auto result = hm::evaluate_patients(y, p, patient_ids, "mean", 0.5);
//   fmt::print("{} patients, AUC {:.3f}\n", result.metrics.n, result.metrics.roc_auc);
//
// A patient's score is, by `aggregation`:
//   "mean"     the mean P(class 1) of its patches (an estimate of its tumour burden);
//   "fraction" the share of its patches with P(class 1) >= patch_threshold;
//   "max"      the largest P(class 1) of its patches (one confident patch decides; sensitive but
//              prone to false positives on patients with many patches).
// A patient's label is 1 when ANY of its patches is labelled positive (a patient with invasive
// ductal carcinoma anywhere is a positive patient), else 0.
// Caution for the Kaggle IDC data: almost every patient there has some positive patches (28 of 29
// patients in a 20,800-patch sample of it), so patient labels are nearly all 1 and patient-level
// ROC-AUC is then NaN or rests on one or two negatives. Patient-level numbers mean most on cohorts
// that include IDC-free patients.
// Patients are listed in sorted id order. Errors are std::invalid_argument naming the argument.
#include <cstdint>
#include <string>
#include <vector>

#include "histocnn/metrics/binary.h"

namespace histocnn::metrics {

struct PatientScores {
  std::string aggregation;               ///< "mean", "fraction" or "max"
  double patch_threshold = 0.5;          ///< used by "fraction"
  std::vector<std::string> patients;     ///< sorted unique ids
  std::vector<int> labels;               ///< 1 when any patch of the patient is positive
  std::vector<double> scores;            ///< the aggregated score, in [0, 1]
  std::vector<int64_t> n_patches;        ///< patches of the patient
  std::vector<int64_t> n_positive_patches;  ///< of which labelled positive
};

/// One entry per distinct patient id. `p_positive` are probabilities in [0, 1]; `patients` has
/// one non-empty id per patch; patch_threshold is finite.
PatientScores aggregate_patients(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                                 const std::vector<std::string>& patients,
                                 const std::string& aggregation = "mean", double patch_threshold = 0.5);

struct PatientMetrics {
  PatientScores per_patient;
  double threshold = 0.5;  ///< a patient is predicted positive when its score >= threshold
  BinaryMetrics metrics;   ///< one sample per patient; roc_auc NaN with one class
  double pr_auc = 0.0;     ///< average precision over patients; NaN without a positive patient
};

/// aggregate_patients() followed by evaluate_binary(labels, scores, threshold) and
/// average_precision(). With "fraction", `threshold` is the share of positive patches that makes
/// a positive patient (often well below 0.5: a small focus of carcinoma is still carcinoma).
PatientMetrics evaluate_patients(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                                 const std::vector<std::string>& patients,
                                 const std::string& aggregation = "mean", double threshold = 0.5,
                                 double patch_threshold = 0.5);

/// One-line JSON object: aggregation, thresholds, the metrics (as to_json(BinaryMetrics)), pr_auc
/// and a per-patient array of {patient, label, score, n_patches, n_positive_patches}.
std::string to_json(const PatientMetrics& m);

/// Each patient's own patch-level ROC-AUC, for the patients with patches of both classes (sorted
/// ids), and their median (NaN when no patient has both): how well a model ranks the patches of
/// one slide, apart from how its scores shift from slide to slide, which the pooled AUC mixes in.
struct WithinPatientAuc {
  std::vector<std::string> patients;
  std::vector<double> auc;
  double median = 0.0;
};
WithinPatientAuc within_patient_auc(const std::vector<int>& y_true, const std::vector<double>& p_positive,
                                    const std::vector<std::string>& patients);

}  // namespace histocnn::metrics
