#include "bindings.h"

#include "histocnn/models/backbone.h"
#include "histocnn/models/pretrained.h"

#include <pybind11/stl.h>

namespace py = pybind11;

namespace histocnn::bindings {

void init_models(py::module_& root) {
  auto m = root.def_submodule("models", "Backbones and classifiers");
  m.def("backbone_names", &models::backbone_names, "Registered backbone names.");
  m.def(
      "count_parameters",
      [](const std::string& backbone, bool include_buffers) {
        return models::count_parameters(*models::make_backbone(backbone), include_buffers);
      },
      py::arg("backbone"), py::arg("include_buffers") = false,
      "Parameters of a backbone without its top (with BatchNorm statistics when include_buffers).");
  m.def(
      "feature_channels", [](const std::string& backbone) { return models::make_backbone(backbone)->feature_channels(); },
      py::arg("backbone"));
  m.def(
      "resolve_weights", [](const std::string& spec, const std::string& backbone) {
        return models::resolve_weights(spec, backbone).path.string();
      },
      py::arg("spec"), py::arg("backbone"), "Path of a weights spec ('imagenet' or a file); raises with instructions.");
}

}  // namespace histocnn::bindings
