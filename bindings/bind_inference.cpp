#include "bindings.h"

#include "histocnn/core/error.h"
#include "histocnn/inference/evaluate.h"
#include "histocnn/inference/explain.h"
#include "histocnn/inference/predictor.h"
#include "histocnn/inference/slide_maps.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>
#include <torch/torch.h>

namespace py = pybind11;

namespace histocnn::bindings {

namespace {

using ImageArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

// HxWx3 uint8 arrays -> RGB cv::Mats (copied, so the GIL can be released afterwards).
std::vector<cv::Mat> to_mats(const std::vector<ImageArray>& arrays) {
  std::vector<cv::Mat> mats;
  mats.reserve(arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) {
    const auto& a = arrays[i];
    HISTOCNN_CHECK(a.ndim() == 3 && a.shape(2) == 3 && a.shape(0) > 0 && a.shape(1) > 0,
                   "image {} must be an HxWx3 uint8 array (RGB); got {} dimensions", i, a.ndim());
    cv::Mat view(static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)), CV_8UC3,
                 const_cast<uint8_t*>(a.data()));
    mats.push_back(view.clone());
  }
  return mats;
}

py::array_t<double> to_numpy(const std::vector<double>& v) { return py::array_t<double>(v.size(), v.data()); }

py::array_t<float> to_numpy(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat32).contiguous();
  std::vector<py::ssize_t> shape(c.sizes().begin(), c.sizes().end());
  return py::array_t<float>(shape, c.data_ptr<float>());
}

// Runs `fn` without the GIL: the C++ work needs no Python objects, and other threads may run.
template <typename Fn>
auto without_gil(Fn&& fn) {
  py::gil_scoped_release release;
  return fn();
}

}  // namespace

void init_inference(py::module_& root) {
  auto m = root.def_submodule("inference", "Saved models predicting on images and files");
  py::class_<inference::Predictor>(m, "Predictor")
      .def(py::init<const std::filesystem::path&, const std::string&>(), py::arg("model_dir"),
           py::arg("device") = "auto")
      .def(
          "predict_proba",
          [](inference::Predictor& p, const std::vector<ImageArray>& images, int64_t batch_size) {
            auto mats = to_mats(images);
            return to_numpy(without_gil([&] { return p.predict_proba(mats, batch_size); }));
          },
          py::arg("images"), py::arg("batch_size") = 64, "Class probabilities [N, classes] for HxWx3 uint8 arrays.")
      .def(
          "predict_files",
          [](inference::Predictor& p, const std::vector<std::filesystem::path>& files, int64_t batch_size) {
            return to_numpy(without_gil([&] { return p.predict_files(files, batch_size); }));
          },
          py::arg("files"), py::arg("batch_size") = 64, "P(class 1) for image files.")
      .def(
          "features",
          [](inference::Predictor& p, const std::vector<ImageArray>& images, int64_t batch_size) {
            auto mats = to_mats(images);
            return to_numpy(without_gil([&] { return p.features(mats, batch_size); }));
          },
          py::arg("images"), py::arg("batch_size") = 64)
      .def(
          "explain",
          [](inference::Predictor& p, const std::vector<ImageArray>& images, const std::string& method,
             int64_t target_class) {
            auto mats = to_mats(images);
            inference::ExplainOptions o;
            o.method = inference::parse_cam_method(method);
            o.target_class = target_class;
            return to_numpy(without_gil([&] { return inference::explain(p, mats, o); }));
          },
          py::arg("images"), py::arg("method") = "gradcam", py::arg("target_class") = 1,
          "Grad-CAM maps [N, S, S] in [0, 1] on the backbone's last feature map.")
      .def_property("tta", &inference::Predictor::tta, &inference::Predictor::set_tta,
                    "Test-time augmentation: the mean over the 8 flips and quarter turns of each patch.")
      .def_property_readonly("class_names", &inference::Predictor::class_names)
      .def_property_readonly("threshold", &inference::Predictor::threshold)
      .def_property_readonly("model_json", &inference::Predictor::model_json)
      .def_property_readonly("image_size", [](const inference::Predictor& p) { return p.preprocessing().image_size; })
      .def_property_readonly("directory", &inference::Predictor::directory);

  py::class_<inference::Predictions>(m, "Predictions")
      .def_readonly("p_positive", &inference::Predictions::p_positive)
      .def_readonly("labels", &inference::Predictions::labels);
  py::class_<inference::EvaluationResult>(m, "EvaluationResult")
      .def_readonly("metrics", &inference::EvaluationResult::metrics)
      .def_readonly("report", &inference::EvaluationResult::report)
      .def_readonly("predictions", &inference::EvaluationResult::predictions)
      .def_readonly("threshold", &inference::EvaluationResult::threshold)
      .def_readonly("model_directory", &inference::EvaluationResult::model_directory)
      .def("to_json", [](const inference::EvaluationResult& r) { return inference::to_json(r); });
  m.def(
      "evaluate_bundle",
      [](const std::filesystem::path& model_dir, const data::Manifest& manifest, std::optional<double> threshold,
         const std::string& device, int workers, bool progress, double stain_shift, uint64_t seed, bool tta) {
        inference::EvaluateOptions o;
        o.threshold = threshold;
        o.device = device;
        o.workers = workers;
        o.progress = progress;
        o.stain_shift = stain_shift;
        o.seed = seed;
        o.tta = tta;
        return inference::evaluate_bundle(model_dir, manifest, o);
      },
      py::arg("model_dir"), py::arg("manifest"), py::arg("threshold") = py::none(), py::arg("device") = "auto",
      py::arg("workers") = 2, py::arg("progress") = true, py::arg("stain_shift") = 0.0, py::arg("seed") = 42, py::arg("tta") = false,
      py::call_guard<py::gil_scoped_release>());

  py::class_<inference::PatientBurden>(m, "PatientBurden")
      .def_readonly("patient", &inference::PatientBurden::patient)
      .def_readonly("patches", &inference::PatientBurden::patches)
      .def_readonly("true_burden", &inference::PatientBurden::true_burden)
      .def_readonly("predicted_burden", &inference::PatientBurden::predicted_burden);
  py::class_<inference::SlideMapReport>(m, "SlideMapReport")
      .def_readonly("burden", &inference::SlideMapReport::burden)
      .def_readonly("images", &inference::SlideMapReport::images)
      .def_readonly("text", &inference::SlideMapReport::text);
  m.def("smooth_over_neighbours", &inference::smooth_over_neighbours, py::arg("manifest"), py::arg("p"),
        py::arg("radius") = 1, "Each patch's probability averaged over its slide neighbourhood (spatial context).");
  m.def("tumour_burden", &inference::tumour_burden, py::arg("manifest"), py::arg("p"), py::arg("threshold"),
        "Per patient: patches, true and predicted fraction of IDC-positive patches.");
  m.def("write_slide_maps", &inference::write_slide_maps, py::arg("manifest"), py::arg("p"), py::arg("threshold"),
        py::arg("out_dir"), py::arg("smooth_radius") = 1, py::arg("max_patients") = 0, py::arg("tile") = 8,
        py::call_guard<py::gil_scoped_release>(),
        "What `histocnn maps` writes: <patient>.png (tissue, true IDC, P(IDC), errors), burden.csv and a report.");
}

}  // namespace histocnn::bindings
