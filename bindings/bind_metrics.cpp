#include "bindings.h"

#include "histocnn/metrics/binary.h"
#include "histocnn/metrics/bootstrap.h"
#include "histocnn/metrics/calibration.h"
#include "histocnn/metrics/curves.h"
#include "histocnn/metrics/patient.h"
#include "histocnn/metrics/plots.h"
#include "histocnn/metrics/report.h"

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

#include <optional>

namespace py = pybind11;

namespace histocnn::bindings {
namespace {

// Options structs become keyword arguments with the same names as their fields.
metrics::PlotOptions plot_options(int width, int height, const std::string& title, const std::string& x_label,
                                  const std::string& y_label) {
  metrics::PlotOptions o;
  o.width = width;
  o.height = height;
  o.title = title;
  o.x_label = x_label;
  o.y_label = y_label;
  return o;
}

#define HISTOCNN_PLOT_ARGS                                                                        \
  py::arg("width") = 640, py::arg("height") = 480, py::arg("title") = "", py::arg("x_label") = "", \
      py::arg("y_label") = ""

void init_evaluation(py::module_& m);
void init_plots(py::module_& m);

}  // namespace

void init_metrics(py::module_& root) {
  auto m = root.def_submodule("metrics", "Binary classification metrics (checked against scikit-learn)");
  using metrics::ConfusionMatrix;
  py::class_<ConfusionMatrix>(m, "ConfusionMatrix")
      .def_readonly("tn", &ConfusionMatrix::tn)
      .def_readonly("fp", &ConfusionMatrix::fp)
      .def_readonly("fn", &ConfusionMatrix::fn)
      .def_readonly("tp", &ConfusionMatrix::tp)
      .def("total", &ConfusionMatrix::total)
      .def("__repr__", [](const ConfusionMatrix& c) {
        return "ConfusionMatrix(tn=" + std::to_string(c.tn) + ", fp=" + std::to_string(c.fp) +
               ", fn=" + std::to_string(c.fn) + ", tp=" + std::to_string(c.tp) + ")";
      });
  using metrics::BinaryMetrics;
  py::class_<BinaryMetrics>(m, "BinaryMetrics")
      .def_readonly("n", &BinaryMetrics::n)
      .def_readonly("threshold", &BinaryMetrics::threshold)
      .def_readonly("confusion_matrix", &BinaryMetrics::cm)
      .def_readonly("accuracy", &BinaryMetrics::accuracy)
      .def_readonly("precision", &BinaryMetrics::precision)
      .def_readonly("recall", &BinaryMetrics::recall)
      .def_readonly("specificity", &BinaryMetrics::specificity)
      .def_readonly("f1", &BinaryMetrics::f1)
      .def_readonly("roc_auc", &BinaryMetrics::roc_auc)
      .def_readonly("log_loss", &BinaryMetrics::log_loss)
      .def("to_json", [](const BinaryMetrics& b) { return metrics::to_json(b); });
  m.def("confusion_matrix", &metrics::confusion_matrix, py::arg("y_true"), py::arg("y_pred"));
  m.def("roc_auc", &metrics::roc_auc, py::arg("y_true"), py::arg("scores"),
        "Exact ROC-AUC with ties counted half (as sklearn.metrics.roc_auc_score).");
  m.def(
      "roc_curve",
      [](const std::vector<int>& y, const std::vector<double>& s) {
        auto c = metrics::roc_curve(y, s);
        return py::make_tuple(c.fpr, c.tpr, c.thresholds);
      },
      py::arg("y_true"), py::arg("scores"), "(fpr, tpr, thresholds) as sklearn's roc_curve(drop_intermediate=False).");
  m.def("log_loss", &metrics::log_loss, py::arg("y_true"), py::arg("p_positive"), py::arg("eps") = 1e-15);
  m.def("evaluate_binary", &metrics::evaluate_binary, py::arg("y_true"), py::arg("p_positive"),
        py::arg("threshold") = 0.5);
  m.def("classification_report", &metrics::classification_report, py::arg("y_true"), py::arg("y_pred"),
        py::arg("class_names") = std::vector<std::string>{"IDC-negative", "IDC-positive"}, py::arg("digits") = 2);
  init_evaluation(m);
  init_plots(m);
}

namespace {

void init_evaluation(py::module_& m) {
  // Curves and thresholds.
  m.def(
      "precision_recall_curve",
      [](const std::vector<int>& y, const std::vector<double>& s) {
        auto c = metrics::precision_recall_curve(y, s);
        return py::make_tuple(c.precision, c.recall, c.thresholds);
      },
      py::arg("y_true"), py::arg("scores"), "(precision, recall, thresholds) as sklearn's precision_recall_curve.");
  m.def("average_precision", &metrics::average_precision, py::arg("y_true"), py::arg("scores"),
        "PR-AUC, equal to sklearn.metrics.average_precision_score.");
  using metrics::ThresholdChoice;
  py::class_<ThresholdChoice>(m, "ThresholdChoice")
      .def_readonly("method", &ThresholdChoice::method)
      .def_readonly("target", &ThresholdChoice::target)
      .def_readonly("threshold", &ThresholdChoice::threshold)
      .def_readonly("confusion_matrix", &ThresholdChoice::cm)
      .def_readonly("sensitivity", &ThresholdChoice::sensitivity)
      .def_readonly("specificity", &ThresholdChoice::specificity)
      .def_readonly("precision", &ThresholdChoice::precision)
      .def_readonly("youden_j", &ThresholdChoice::youden_j)
      .def("to_json", [](const ThresholdChoice& c) { return metrics::to_json(c); })
      .def("__repr__", [](const ThresholdChoice& c) {
        return "ThresholdChoice(method='" + c.method + "', threshold=" + py::repr(py::float_(c.threshold)).cast<std::string>() +
               ", sensitivity=" + py::repr(py::float_(c.sensitivity)).cast<std::string>() +
               ", specificity=" + py::repr(py::float_(c.specificity)).cast<std::string>() + ")";
      });
  m.def("choose_threshold", &metrics::choose_threshold, py::arg("y_true"), py::arg("scores"),
        py::arg("method") = "youden", py::arg("target") = 0.9,
        "Threshold chosen on validation data: 'youden' (max TPR - FPR) or 'sensitivity' (highest threshold "
        "with recall >= target).");

  // Calibration.
  using metrics::ReliabilityBin;
  py::class_<ReliabilityBin>(m, "ReliabilityBin")
      .def_readonly("lower", &ReliabilityBin::lower)
      .def_readonly("upper", &ReliabilityBin::upper)
      .def_readonly("count", &ReliabilityBin::count)
      .def_readonly("mean_confidence", &ReliabilityBin::mean_confidence)
      .def_readonly("positive_rate", &ReliabilityBin::positive_rate);
  using metrics::CalibrationReport;
  py::class_<CalibrationReport>(m, "CalibrationReport")
      .def_readonly("n_bins", &CalibrationReport::n_bins)
      .def_readonly("ece", &CalibrationReport::ece)
      .def_readonly("mce", &CalibrationReport::mce)
      .def_readonly("brier", &CalibrationReport::brier)
      .def_readonly("bins", &CalibrationReport::bins)
      .def("to_json", [](const CalibrationReport& c) { return metrics::to_json(c); });
  m.def("reliability_table", &metrics::reliability_table, py::arg("y_true"), py::arg("p_positive"),
        py::arg("n_bins") = 10);
  m.def("expected_calibration_error", &metrics::expected_calibration_error, py::arg("y_true"),
        py::arg("p_positive"), py::arg("n_bins") = 10);
  m.def("maximum_calibration_error", &metrics::maximum_calibration_error, py::arg("y_true"),
        py::arg("p_positive"), py::arg("n_bins") = 10);
  m.def("brier_score", &metrics::brier_score, py::arg("y_true"), py::arg("p_positive"),
        "Mean squared error of P(class 1), equal to sklearn.metrics.brier_score_loss.");
  m.def("calibration_report", &metrics::calibration_report, py::arg("y_true"), py::arg("p_positive"),
        py::arg("n_bins") = 10);

  // Bootstrap.
  using metrics::ConfidenceInterval;
  py::class_<ConfidenceInterval>(m, "ConfidenceInterval")
      .def_readonly("estimate", &ConfidenceInterval::estimate)
      .def_readonly("lower", &ConfidenceInterval::lower)
      .def_readonly("upper", &ConfidenceInterval::upper)
      .def_readonly("n_valid", &ConfidenceInterval::n_valid)
      .def_readonly("replicates", &ConfidenceInterval::replicates)
      .def("__repr__", [](const ConfidenceInterval& c) {
        return "ConfidenceInterval(estimate=" + py::repr(py::float_(c.estimate)).cast<std::string>() +
               ", lower=" + py::repr(py::float_(c.lower)).cast<std::string>() +
               ", upper=" + py::repr(py::float_(c.upper)).cast<std::string>() + ")";
      });
  using metrics::BootstrapResult;
  py::class_<BootstrapResult>(m, "BootstrapResult")
      .def_readonly("unit", &BootstrapResult::unit)
      .def_readonly("n_units", &BootstrapResult::n_units)
      .def_readonly("n_boot", &BootstrapResult::n_boot)
      .def_readonly("confidence", &BootstrapResult::confidence)
      .def_readonly("seed", &BootstrapResult::seed)
      .def_readonly("threshold", &BootstrapResult::threshold)
      .def_readonly("roc_auc", &BootstrapResult::roc_auc)
      .def_readonly("pr_auc", &BootstrapResult::pr_auc)
      .def_readonly("accuracy", &BootstrapResult::accuracy)
      .def_readonly("precision", &BootstrapResult::precision)
      .def_readonly("recall", &BootstrapResult::recall)
      .def_readonly("f1", &BootstrapResult::f1)
      .def_readonly("specificity", &BootstrapResult::specificity)
      .def("to_json", [](const BootstrapResult& r) { return metrics::to_json(r); });
  m.def(
      "bootstrap_metrics",
      [](const std::vector<int>& y, const std::vector<double>& s, const std::vector<std::string>& patients,
         int64_t n_boot, double confidence, uint64_t seed, double threshold, bool by_patient) {
        metrics::BootstrapOptions o;
        o.n_boot = n_boot;
        o.confidence = confidence;
        o.seed = seed;
        o.threshold = threshold;
        o.by_patient = by_patient;
        py::gil_scoped_release release;
        return metrics::bootstrap_metrics(y, s, patients, o);
      },
      py::arg("y_true"), py::arg("scores"), py::arg("patients") = std::vector<std::string>{},
      py::arg("n_boot") = 1000, py::arg("confidence") = 0.95, py::arg("seed") = 42, py::arg("threshold") = 0.5,
      py::arg("by_patient") = true,
      "Percentile bootstrap intervals; resamples patients when patient ids are given (and by_patient).");

  // Patients.
  using metrics::PatientScores;
  py::class_<PatientScores>(m, "PatientScores")
      .def_readonly("aggregation", &PatientScores::aggregation)
      .def_readonly("patch_threshold", &PatientScores::patch_threshold)
      .def_readonly("patients", &PatientScores::patients)
      .def_readonly("labels", &PatientScores::labels)
      .def_readonly("scores", &PatientScores::scores)
      .def_readonly("n_patches", &PatientScores::n_patches)
      .def_readonly("n_positive_patches", &PatientScores::n_positive_patches);
  using metrics::PatientMetrics;
  py::class_<PatientMetrics>(m, "PatientMetrics")
      .def_readonly("per_patient", &PatientMetrics::per_patient)
      .def_readonly("threshold", &PatientMetrics::threshold)
      .def_readonly("metrics", &PatientMetrics::metrics)
      .def_readonly("pr_auc", &PatientMetrics::pr_auc)
      .def("to_json", [](const PatientMetrics& p) { return metrics::to_json(p); });
  m.def("aggregate_patients", &metrics::aggregate_patients, py::arg("y_true"), py::arg("p_positive"),
        py::arg("patients"), py::arg("aggregation") = "mean", py::arg("patch_threshold") = 0.5);
  py::class_<metrics::WithinPatientAuc>(m, "WithinPatientAuc")
      .def_readonly("patients", &metrics::WithinPatientAuc::patients)
      .def_readonly("auc", &metrics::WithinPatientAuc::auc)
      .def_readonly("median", &metrics::WithinPatientAuc::median);
  m.def("within_patient_auc", &metrics::within_patient_auc, py::arg("y_true"), py::arg("p_positive"),
        py::arg("patients"),
        "Each patient's own ROC-AUC (patients with both classes) and their median: ranking within slides.");
  m.def("evaluate_patients", &metrics::evaluate_patients, py::arg("y_true"), py::arg("p_positive"),
        py::arg("patients"), py::arg("aggregation") = "mean", py::arg("threshold") = 0.5,
        py::arg("patch_threshold") = 0.5);

  // The full report.
  using metrics::EvaluationReport;
  py::class_<EvaluationReport>(m, "EvaluationReport")
      .def_readonly("threshold", &EvaluationReport::threshold)
      .def_readonly("threshold_method", &EvaluationReport::threshold_method)
      .def_readonly("validation_choice", &EvaluationReport::validation_choice)
      .def_readonly("class_names", &EvaluationReport::class_names)
      .def_readonly("metrics", &EvaluationReport::metrics)
      .def_readonly("positive_rate", &EvaluationReport::positive_rate)
      .def_readonly("pr_auc", &EvaluationReport::pr_auc)
      .def_property_readonly("roc_curve",
                             [](const EvaluationReport& r) { return py::make_tuple(r.roc.fpr, r.roc.tpr, r.roc.thresholds); })
      .def_property_readonly(
          "pr_curve", [](const EvaluationReport& r) { return py::make_tuple(r.pr.precision, r.pr.recall, r.pr.thresholds); })
      .def_readonly("intervals", &EvaluationReport::intervals)
      .def_readonly("calibration", &EvaluationReport::calibration)
      .def_readonly("patient", &EvaluationReport::patient)
      .def_readonly("classification_report", &EvaluationReport::classification_report)
      .def("to_json", &EvaluationReport::to_json, py::arg("include_curves") = false)
      .def("to_text", &EvaluationReport::to_text)
      .def("__str__", &EvaluationReport::to_text);
  m.def(
      "evaluate_full",
      [](const std::vector<int>& y, const std::vector<double>& p, const std::vector<std::string>& patients,
         double threshold, std::optional<metrics::ThresholdChoice> validation_choice, int64_t n_boot, double confidence,
         uint64_t seed, bool by_patient, int calibration_bins, const std::string& patient_aggregation,
         double patient_threshold, const std::vector<std::string>& class_names) {
        metrics::EvaluationOptions o;
        o.threshold = threshold;
        o.validation_choice = std::move(validation_choice);
        o.n_boot = n_boot;
        o.confidence = confidence;
        o.seed = seed;
        o.by_patient = by_patient;
        o.calibration_bins = calibration_bins;
        o.patient_aggregation = patient_aggregation;
        o.patient_threshold = patient_threshold;
        o.class_names = class_names;
        py::gil_scoped_release release;
        return metrics::evaluate_full(y, p, patients, o);
      },
      py::arg("y_true"), py::arg("p_positive"), py::arg("patients") = std::vector<std::string>{},
      py::arg("threshold") = 0.5, py::arg("validation_choice") = py::none(), py::arg("n_boot") = 1000,
      py::arg("confidence") = 0.95, py::arg("seed") = 42, py::arg("by_patient") = true,
      py::arg("calibration_bins") = 10, py::arg("patient_aggregation") = "mean", py::arg("patient_threshold") = 0.5,
      py::arg("class_names") = std::vector<std::string>{"IDC-negative", "IDC-positive"},
      "Metrics at the threshold (validation_choice's when given), bootstrap intervals, PR-AUC, calibration and "
      "patient-level results.");
}

void init_plots(py::module_& m) {
  using metrics::TrainingCurves;
  m.def(
      "plot_roc_curve",
      [](const std::filesystem::path& path, const std::vector<double>& fpr, const std::vector<double>& tpr, double auc,
         int width, int height, const std::string& title, const std::string& x_label, const std::string& y_label) {
        metrics::plot_roc_curve(path, fpr, tpr, auc, plot_options(width, height, title, x_label, y_label));
      },
      py::arg("path"), py::arg("fpr"), py::arg("tpr"), py::arg("auc"), HISTOCNN_PLOT_ARGS);
  m.def(
      "plot_pr_curve",
      [](const std::filesystem::path& path, const std::vector<double>& recall, const std::vector<double>& precision,
         double average_precision, double positive_rate, int width, int height, const std::string& title,
         const std::string& x_label, const std::string& y_label) {
        metrics::plot_pr_curve(path, recall, precision, average_precision, positive_rate,
                               plot_options(width, height, title, x_label, y_label));
      },
      py::arg("path"), py::arg("recall"), py::arg("precision"), py::arg("average_precision"),
      py::arg("positive_rate"), HISTOCNN_PLOT_ARGS);
  m.def(
      "plot_confusion_matrix",
      [](const std::filesystem::path& path, const metrics::ConfusionMatrix& cm,
         const std::vector<std::string>& class_names, int width, int height, const std::string& title,
         const std::string& x_label, const std::string& y_label) {
        metrics::plot_confusion_matrix(path, cm, class_names, plot_options(width, height, title, x_label, y_label));
      },
      py::arg("path"), py::arg("cm"),
      py::arg("class_names") = std::vector<std::string>{"IDC-negative", "IDC-positive"}, HISTOCNN_PLOT_ARGS);
  m.def(
      "plot_reliability_diagram",
      [](const std::filesystem::path& path, const std::vector<metrics::ReliabilityBin>& bins, double ece, int width,
         int height, const std::string& title, const std::string& x_label, const std::string& y_label) {
        metrics::plot_reliability_diagram(path, bins, ece, plot_options(width, height, title, x_label, y_label));
      },
      py::arg("path"), py::arg("bins"), py::arg("ece"), HISTOCNN_PLOT_ARGS);
  m.def(
      "plot_training_curves",
      [](const std::filesystem::path& path, const std::vector<double>& train_loss, const std::vector<double>& val_loss,
         const std::vector<double>& train_accuracy, const std::vector<double>& val_accuracy,
         const std::vector<double>& train_auc, const std::vector<double>& val_auc, int width, int height,
         const std::string& title, const std::string& x_label, const std::string& y_label) {
        TrainingCurves c{train_loss, val_loss, train_accuracy, val_accuracy, train_auc, val_auc};
        metrics::plot_training_curves(path, c, plot_options(width, height, title, x_label, y_label));
      },
      py::arg("path"), py::arg("train_loss") = std::vector<double>{}, py::arg("val_loss") = std::vector<double>{},
      py::arg("train_accuracy") = std::vector<double>{}, py::arg("val_accuracy") = std::vector<double>{},
      py::arg("train_auc") = std::vector<double>{}, py::arg("val_auc") = std::vector<double>{}, HISTOCNN_PLOT_ARGS,
      "Loss (left) and accuracy / AUC (right) per epoch; the keyword arguments are TrainingCurves' fields.");
  m.def(
      "plot_accuracy_vs_size",
      [](const std::filesystem::path& path, const std::vector<std::string>& labels, const std::vector<double>& sizes,
         const std::vector<double>& accuracies, int width, int height, const std::string& title,
         const std::string& x_label, const std::string& y_label) {
        metrics::plot_accuracy_vs_size(path, labels, sizes, accuracies,
                                       plot_options(width, height, title, x_label, y_label));
      },
      py::arg("path"), py::arg("labels"), py::arg("sizes"), py::arg("accuracies"), HISTOCNN_PLOT_ARGS);
  m.def(
      "write_evaluation_plots",
      [](const std::filesystem::path& folder, const metrics::EvaluationReport& report, const std::string& prefix,
         int width, int height, const std::string& title, const std::string& x_label, const std::string& y_label) {
        return metrics::write_evaluation_plots(folder, report, prefix,
                                               plot_options(width, height, title, x_label, y_label));
      },
      py::arg("folder"), py::arg("report"), py::arg("prefix") = "", HISTOCNN_PLOT_ARGS,
      "Writes <prefix>roc.png, pr.png, confusion_matrix.png and reliability.png; returns the paths.");
}

}  // namespace

}  // namespace histocnn::bindings
