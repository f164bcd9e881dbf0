#include "histocnn/inference/explain.h"

#include "histocnn/core/error.h"
#include "histocnn/io/atomic_file.h"

#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include <algorithm>

namespace histocnn::inference {

CamMethod parse_cam_method(const std::string& name) {
  if (name == "gradcam") return CamMethod::gradcam;
  if (name == "gradcam++") return CamMethod::gradcam_plus_plus;
  HISTOCNN_FAIL("explanation method '{}' is not known; choose one of: gradcam, gradcam++", name);
}

torch::Tensor class_activation_maps(models::Classifier& model, const torch::Tensor& batch,
                                    const ExplainOptions& options) {
  HISTOCNN_CHECK(batch.dim() == 4 && batch.size(1) == 3, "explain expects a batch [N, 3, H, W], got {} dimensions",
                 batch.dim());
  HISTOCNN_CHECK(options.target_class >= 0 && options.target_class < model->options().num_classes(),
                 "target_class must be in [0, {}), got {}", model->options().num_classes(), options.target_class);
  HISTOCNN_CHECK(options.batch_size >= 1, "batch_size must be >= 1, got {}", options.batch_size);
  const bool was_training = model->is_training();
  model->eval();
  const auto device = model->parameters().front().device();
  std::vector<torch::Tensor> out;
  for (int64_t begin = 0; begin < batch.size(0); begin += options.batch_size) {
    const int64_t n = std::min(options.batch_size, batch.size(0) - begin);
    const auto x = batch.narrow(0, begin, n).to(device);
    torch::Tensor maps;
    {
      torch::NoGradGuard no_grad;
      maps = model->backbone()->forward_features(x);  // [n, C, h, w]: the last convolutional block
    }
    maps = maps.detach().to(torch::kFloat32).contiguous().requires_grad_(true);
    // The head reads the map as training did: pooled, or as a sequence of positions.
    const auto scores =
        model->head_forward(model->feature_map_to_head_input(maps)).select(1, options.target_class);
    const auto grads = torch::autograd::grad({scores.sum()}, {maps})[0];  // [n, C, h, w]
    torch::Tensor weights;
    if (options.method == CamMethod::gradcam) {
      weights = grads.mean({2, 3}, /*keepdim=*/true);
    } else {
      // Grad-CAM++ with the exponential of the score, whose higher derivatives are powers of the
      // first (Chattopadhay et al., eq. 19).
      const auto g2 = grads.pow(2), g3 = grads.pow(3);
      const auto sum_a = maps.detach().sum({2, 3}, /*keepdim=*/true);
      auto denom = 2 * g2 + sum_a * g3;
      denom = torch::where(denom != 0, denom, torch::ones_like(denom));
      const auto alpha = torch::where(grads != 0, g2 / denom, torch::zeros_like(g2));
      weights = (alpha * torch::relu(grads)).sum({2, 3}, /*keepdim=*/true);
    }
    auto cam = torch::relu((weights * maps.detach()).sum(1, /*keepdim=*/true));  // [n, 1, h, w]
    cam = torch::nn::functional::interpolate(
        cam, torch::nn::functional::InterpolateFuncOptions()
                 .size(std::vector<int64_t>{x.size(2), x.size(3)})
                 .mode(torch::kBilinear)
                 .align_corners(false));
    cam = cam.squeeze(1);
    const auto peak = cam.flatten(1).amax(1).view({-1, 1, 1});
    out.push_back(torch::where(peak > 0, cam / peak.clamp_min(1e-12), torch::zeros_like(cam)).cpu());
  }
  model->train(was_training);
  return torch::cat(out);
}

torch::Tensor explain(Predictor& predictor, const std::vector<cv::Mat>& rgb, const ExplainOptions& options) {
  HISTOCNN_CHECK(!rgb.empty(), "explain needs at least one patch");
  return class_activation_maps(predictor.model(), predictor.prepare(rgb), options);
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

void write_npy(const std::filesystem::path& path, const torch::Tensor& tensor) {
  const auto t = tensor.to(torch::kCPU, torch::kFloat32).contiguous();
  std::string shape;
  for (int64_t i = 0; i < t.dim(); ++i) shape += std::to_string(t.size(i)) + (t.dim() == 1 || i + 1 < t.dim() ? "," : "");
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  // Magic, version 1.0, header length; the header is padded with spaces to a multiple of 64 bytes.
  const size_t preamble = 10;
  header.append(64 - (preamble + header.size() + 1) % 64, ' ');
  header += '\n';
  std::string bytes = "\x93NUMPY";
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>((header.size() >> 8) & 0xff);
  bytes += header;
  bytes.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()) * sizeof(float));
  io::write_file_atomic(path, bytes);
}

}  // namespace histocnn::inference
