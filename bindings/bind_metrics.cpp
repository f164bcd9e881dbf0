#include "bindings.h"

#include "histocnn/metrics/binary.h"

#include <pybind11/stl.h>

namespace py = pybind11;

namespace histocnn::bindings {

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
}

}  // namespace histocnn::bindings
