#include "bindings.h"

#include "histocnn/models/backbone.h"
#include "histocnn/models/classifier.h"
#include "histocnn/models/pretrained.h"
#include "histocnn/models/summary.h"

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
  m.def(
      "summary",
      [](const std::string& backbone, const std::string& head, int64_t image_size, bool freeze_backbone,
         int64_t unfreeze_last, bool batch_norm, int64_t hidden1, int64_t hidden2, int64_t lstm_units) {
        models::Classifier model(models::ClassifierOptions()
                                     .backbone(backbone)
                                     .head(head)
                                     .freeze_backbone(freeze_backbone)
                                     .unfreeze_last(unfreeze_last)
                                     .batch_norm(batch_norm)
                                     .hidden1(hidden1)
                                     .hidden2(hidden2)
                                     .lstm_units(lstm_units));
        const auto s = models::summarize(*model, image_size);
        py::list layers;
        for (const auto& l : s.layers) {
          py::dict row;
          row["name"] = l.name;
          row["type"] = l.type;
          row["output_shape"] = py::tuple(py::cast(l.output_shape));
          row["params"] = l.params;
          row["trainable_params"] = l.trainable_params;
          layers.append(row);
        }
        py::dict out;
        out["layers"] = layers;
        out["total_params"] = s.total_params;
        out["trainable_params"] = s.trainable_params;
        out["non_trainable_params"] = s.non_trainable_params;
        out["text"] = models::format_summary(s);
        return out;
      },
      py::arg("backbone"), py::arg("head") = "dense", py::arg("image_size") = 224, py::arg("freeze_backbone") = true,
      py::arg("unfreeze_last") = 0, py::arg("batch_norm") = false, py::arg("hidden1") = 512, py::arg("hidden2") = 128,
      py::arg("lstm_units") = 512,
      "Keras-style summary of a backbone + head: {'layers': [{'name', 'type', 'output_shape', 'params', "
      "'trainable_params'}], 'total_params', 'trainable_params', 'non_trainable_params', 'text'}. unfreeze_last counts "
      "layers as Keras does (the study: vgg16, batch_norm=True, unfreeze_last=4).");
}

}  // namespace histocnn::bindings
