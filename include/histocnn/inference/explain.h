#pragma once
// What the model looks at: Grad-CAM (Selvaraju et al., 2017) and Grad-CAM++ (Chattopadhay et al.,
// 2018) on the backbone's last feature map, the output of its last convolutional block, for every
// backbone and head.
//
//   histocnn::inference::Predictor p("runs/x/model");
//   auto maps = histocnn::inference::explain(p, patches);            // [N, S, S] in [0, 1]
//   cv::Mat shown = histocnn::inference::cam_overlay(patches[0], maps[0]);  // heatmap + colour bar
#include "histocnn/inference/predictor.h"

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
};

/// "gradcam" or "gradcam++"; throws std::invalid_argument naming the allowed values.
CamMethod parse_cam_method(const std::string& name);

/// Class activation maps of a prepared batch [N, 3, S, S]: [N, S, S] on the CPU, each scaled to
/// [0, 1] (all zeros where no location raises the class score), upsampled bilinearly from the
/// feature map. Gradients are computed here; the model's weights are not changed.
torch::Tensor class_activation_maps(models::Classifier& model, const torch::Tensor& batch,
                                    const ExplainOptions& options = {});

/// The maps of RGB patches, prepared as the predictor prepares them: [N, S, S] with S the model's
/// input size.
torch::Tensor explain(Predictor& predictor, const std::vector<cv::Mat>& rgb, const ExplainOptions& options = {});

/// The patch (resized to the map) with the map as a jet heatmap over it and a colour bar (0 to 1)
/// on the right; RGB uint8.
cv::Mat cam_overlay(const cv::Mat& rgb, const torch::Tensor& map, double alpha = 0.45);

/// Writes a float32 tensor as a NumPy .npy file (atomically).
void write_npy(const std::filesystem::path& path, const torch::Tensor& tensor);

}  // namespace histocnn::inference
