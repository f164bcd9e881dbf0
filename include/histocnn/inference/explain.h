#pragma once
// What the model looks at: Grad-CAM (Selvaraju et al., 2017) and Grad-CAM++ (Chattopadhay et al.,
// 2018) for every backbone and head, on the backbone's last feature map (the output of its last
// convolutional block) or on any of its layers named by module path (models/feature_layers.h).
//
//   histocnn::inference::Predictor p("runs/x/model");
//   auto maps = histocnn::inference::explain(p, patches);            // [N, S, S] in [0, 1]
//   cv::Mat shown = histocnn::inference::cam_overlay(patches[0], maps[0]);  // heatmap + colour bar
//   for (auto& l : histocnn::inference::explain_layers(p)) ...      // "features.0" ... "features"
//   histocnn::inference::ExplainOptions o;
//   o.layer = "features.6";                                          // an earlier, finer map
//   o.upsample = false;                                              // [N, 12, 12] at 96 px input
#include "histocnn/core/choice.h"
#include "histocnn/inference/predictor.h"
#include "histocnn/models/feature_layers.h"

#include <opencv2/core.hpp>
#include <torch/types.h>

#include <string>
#include <vector>

namespace histocnn::inference {

enum class CamMethod { gradcam, gradcam_plus_plus };

struct ExplainOptions {
  CamMethod method = CamMethod::gradcam;
  int64_t target_class = 1;  ///< the class whose evidence is mapped (1: IDC-positive)
  int64_t batch_size = 32;
  /// The layer mapped, a module path of the backbone (explain_layers()); "" for the backbone's
  /// last feature map (BackboneImpl::feature_layer(), the same map as naming it).
  std::string layer;
  /// true: maps at the input size, bilinear from the layer's resolution; false: at the layer's
  /// own resolution (upsample_maps() makes the first from the second).
  bool upsample = true;
};

/// "gradcam" or "gradcam++"; throws std::invalid_argument naming the allowed values.
CamMethod parse_cam_method(const std::string& name);

/// Class activation maps of a prepared batch [N, 3, S, S]: [N, S, S] on the CPU (with upsample;
/// else [N, h, w], the layer's resolution), each scaled to [0, 1] (all zeros where no location
/// raises the class score). Gradients are computed here, from the mapped layer on; the model's
/// weights and mode are not changed, so a served model can explain while it predicts. Throws
/// std::invalid_argument for a layer name that is not one of explain_layers(), naming close ones.
torch::Tensor class_activation_maps(models::Classifier& model, const torch::Tensor& batch,
                                    const ExplainOptions& options = {});

/// Maps [N, h, w] resized bilinearly to [N, height, width] and scaled to a peak of 1 again: what
/// class_activation_maps gives with upsample from what it gives without.
torch::Tensor upsample_maps(const torch::Tensor& maps, int64_t height, int64_t width);

/// The maps of RGB patches, prepared as the predictor prepares them: [N, S, S] with S the model's
/// input size (with upsample).
torch::Tensor explain(const Predictor& predictor, const std::vector<cv::Mat>& rgb, const ExplainOptions& options = {});

/// The layers the predictor's backbone can be explained at, in forward order, with their output
/// shapes at the model's input size; the last is the default.
std::vector<models::FeatureLayer> explain_layers(const Predictor& predictor);

/// The patch (resized to the map) with the map as a jet heatmap over it and a colour bar (0 to 1)
/// on the right; RGB uint8, map height x (map width + a gap + the bar).
cv::Mat cam_overlay(const cv::Mat& rgb, const torch::Tensor& map, double alpha = 0.45);

}  // namespace histocnn::inference

namespace histocnn::core {
template <>
const std::vector<std::string>& choice_names<inference::CamMethod>();
}  // namespace histocnn::core
