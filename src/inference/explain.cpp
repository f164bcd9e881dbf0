#include "histocnn/inference/explain.h"

#include "histocnn/core/error.h"
#include "histocnn/models/eval_mode.h"

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <algorithm>

namespace histocnn::core {
template <>
const std::vector<std::string>& choice_names<inference::CamMethod>() {
  static const std::vector<std::string> names = {"gradcam", "gradcam++"};
  return names;
}
}  // namespace histocnn::core

namespace histocnn::inference {

namespace {

// [n, 1, h, w] -> [n, 1, height, width], bilinear.
torch::Tensor resize_maps(const torch::Tensor& maps, int64_t height, int64_t width) {
  return torch::nn::functional::interpolate(maps, torch::nn::functional::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{height, width})
                                                      .mode(torch::kBilinear)
                                                      .align_corners(false));
}

// Each map [h, w] of [n, h, w] divided by its peak, however small; all-zero maps stay zero.
torch::Tensor scale_to_peak(const torch::Tensor& maps) {
  const auto peak = maps.flatten(1).amax(1).view({-1, 1, 1});
  const auto positive = peak > 0;
  return torch::where(positive, maps / torch::where(positive, peak, torch::ones_like(peak)), torch::zeros_like(maps));
}

}  // namespace

CamMethod parse_cam_method(const std::string& name) { return core::parse_choice<CamMethod>("method", name); }

torch::Tensor class_activation_maps(models::Classifier& model, const torch::Tensor& batch,
                                    const ExplainOptions& options) {
  HISTOCNN_CHECK(batch.dim() == 4 && batch.size(1) == 3, "explain expects a batch [N, 3, H, W], got {} dimensions",
                 batch.dim());
  HISTOCNN_CHECK(options.target_class >= 0 && options.target_class < model->options().num_classes(),
                 "target_class must be in [0, {}), got {}", model->options().num_classes(), options.target_class);
  HISTOCNN_CHECK(options.batch_size >= 1, "batch_size must be >= 1, got {}", options.batch_size);
  models::EvalModeScope eval_mode(*model);
  const auto device = model->parameters().front().device();
  std::vector<torch::Tensor> out;
  for (int64_t begin = 0; begin < batch.size(0); begin += options.batch_size) {
    const int64_t n = std::min(options.batch_size, batch.size(0) - begin);
    const auto x = batch.narrow(0, begin, n).to(device);
    torch::Tensor maps, features;  // the mapped layer's output [n, C, h, w]; the last feature map
    if (options.layer.empty()) {
      {
        torch::NoGradGuard no_grad;
        maps = model->backbone()->forward_features(x);  // the last convolutional block
      }
      maps = maps.detach().to(torch::kFloat32).contiguous().requires_grad_(true);
      features = maps;
    } else {
      auto cut = models::forward_from_layer(*model->backbone(), x, options.layer);
      maps = cut.layer_output;
      features = cut.features;
    }
    // The head reads the last map as training did: pooled, or as a sequence of positions.
    const auto scores =
        model->head_forward(model->feature_map_to_head_input(features)).select(1, options.target_class);
    const auto grads = torch::autograd::grad({scores.sum()}, {maps})[0].to(torch::kFloat32);  // [n, C, h, w]
    const auto activations = maps.detach().to(torch::kFloat32);
    torch::Tensor weights;
    if (options.method == CamMethod::gradcam) {
      weights = grads.mean({2, 3}, /*keepdim=*/true);
    } else {
      // Grad-CAM++ with the exponential of the score, whose higher derivatives are powers of the
      // first (Chattopadhay et al., eq. 19).
      const auto g2 = grads.pow(2), g3 = grads.pow(3);
      const auto sum_a = activations.sum({2, 3}, /*keepdim=*/true);
      auto denom = 2 * g2 + sum_a * g3;
      denom = torch::where(denom != 0, denom, torch::ones_like(denom));
      const auto alpha = torch::where(grads != 0, g2 / denom, torch::zeros_like(g2));
      weights = (alpha * torch::relu(grads)).sum({2, 3}, /*keepdim=*/true);
    }
    auto cam = torch::relu((weights * activations).sum(1, /*keepdim=*/true));  // [n, 1, h, w]
    if (options.upsample) cam = resize_maps(cam, x.size(2), x.size(3));
    out.push_back(scale_to_peak(cam.squeeze(1)).cpu());
  }
  return torch::cat(out);
}

torch::Tensor upsample_maps(const torch::Tensor& maps, int64_t height, int64_t width) {
  HISTOCNN_CHECK(maps.dim() == 3, "maps are [N, h, w], got {} dimensions", maps.dim());
  HISTOCNN_CHECK(height >= 1 && width >= 1, "the size to upsample to must be positive, got {}x{}", height, width);
  return scale_to_peak(resize_maps(maps.to(torch::kFloat32).unsqueeze(1), height, width).squeeze(1));
}

torch::Tensor explain(const Predictor& predictor, const std::vector<cv::Mat>& rgb, const ExplainOptions& options) {
  HISTOCNN_CHECK(!rgb.empty(), "explain needs at least one patch");
  return class_activation_maps(predictor.model(), predictor.prepare(rgb), options);
}

std::vector<models::FeatureLayer> explain_layers(const Predictor& predictor) {
  return models::feature_layers(*predictor.model()->backbone(), predictor.preprocessing().image_size);
}

cv::Mat cam_overlay(const cv::Mat& rgb, const torch::Tensor& map, double alpha) {
  HISTOCNN_CHECK(map.dim() == 2, "a map is [H, W], got {} dimensions", map.dim());
  HISTOCNN_CHECK(rgb.type() == CV_8UC3, "the patch must be RGB uint8");
  const int h = static_cast<int>(map.size(0)), w = static_cast<int>(map.size(1));
  const auto m = map.to(torch::kFloat32).contiguous();
  cv::Mat heat(h, w, CV_32F, m.data_ptr<float>());
  cv::Mat heat8, colour;
  heat.convertTo(heat8, CV_8U, 255.0);
  cv::applyColorMap(heat8, colour, cv::COLORMAP_JET);  // BGR
  cv::cvtColor(colour, colour, cv::COLOR_BGR2RGB);
  cv::Mat patch;
  cv::resize(rgb, patch, cv::Size(w, h), 0, 0, cv::INTER_AREA);
  cv::Mat blended;
  cv::addWeighted(colour, alpha, patch, 1.0 - alpha, 0.0, blended);
  // A colour bar: 0 at the bottom, 1 at the top, with a white gap.
  const int bar_w = std::max(4, w / 12), gap = std::max(2, w / 32);
  cv::Mat out(h, w + gap + bar_w, CV_8UC3, cv::Scalar(255, 255, 255));
  blended.copyTo(out(cv::Rect(0, 0, w, h)));
  cv::Mat ramp(h, 1, CV_8U);
  for (int y = 0; y < h; ++y) ramp.at<uint8_t>(y, 0) = static_cast<uint8_t>(255 - (255 * y) / std::max(1, h - 1));
  cv::Mat ramp_colour;
  cv::applyColorMap(ramp, ramp_colour, cv::COLORMAP_JET);
  cv::cvtColor(ramp_colour, ramp_colour, cv::COLOR_BGR2RGB);
  cv::resize(ramp_colour, out(cv::Rect(w + gap, 0, bar_w, h)), cv::Size(bar_w, h), 0, 0, cv::INTER_NEAREST);
  return out;
}

}  // namespace histocnn::inference
