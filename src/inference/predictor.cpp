#include "histocnn/inference/predictor.h"

#include "histocnn/core/device.h"
#include "histocnn/core/error.h"
#include "histocnn/io/image.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace histocnn::inference {

Predictor::Predictor(const std::filesystem::path& model_dir, const std::string& device)
    : device_(parse_device(device)) {
  auto loaded = models::load_classifier(model_dir, device_);
  model_ = loaded.model;
  model_json_ = loaded.model_json;
  directory_ = loaded.directory;
  const auto json_path = (directory_ / "model.json").string();
  auto j = nlohmann::json::parse(model_json_);
  HISTOCNN_CHECK(j.contains("preprocessing"), "'{}' records no preprocessing; re-export the model with histocnn train",
                 json_path);
  preprocessing_ = data::Preprocessing::from_json(j["preprocessing"].dump());
  class_names_ = j.value("class_names", std::vector<std::string>{"IDC-negative", "IDC-positive"});
  threshold_ = j.value("threshold", 0.5);
  model_->eval();
}

torch::Tensor Predictor::batch_tensor(const std::vector<cv::Mat>& rgb, size_t begin, size_t end) const {
  const int s = preprocessing_.image_size;
  auto batch = torch::empty({static_cast<int64_t>(end - begin), 3, s, s}, torch::kFloat32);
  for (size_t i = begin; i < end; ++i) {
    const auto& img = rgb[i];
    HISTOCNN_CHECK(!img.empty() && img.type() == CV_8UC3,
                   "patch {} must be an RGB uint8 image (HxWx3); got {} channels of depth {}", i, img.channels(),
                   img.depth());
    preprocessing_.normalise_into(preprocessing_.prepare(img), batch[static_cast<int64_t>(i - begin)]);
  }
  return batch.to(device_);
}

torch::Tensor Predictor::predict_proba(const std::vector<cv::Mat>& rgb, int64_t batch_size) {
  HISTOCNN_CHECK(batch_size > 0, "batch_size must be positive, got {}", batch_size);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (size_t begin = 0; begin < rgb.size(); begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(rgb.size(), begin + static_cast<size_t>(batch_size));
    parts.push_back(torch::softmax(model_->forward(batch_tensor(rgb, begin, end)), 1).to(torch::kCPU));
  }
  if (parts.empty()) return torch::empty({0, static_cast<int64_t>(class_names_.size())});
  return torch::cat(parts);
}

std::vector<double> Predictor::predict(const std::vector<cv::Mat>& rgb, int64_t batch_size) {
  auto p = predict_proba(rgb, batch_size);
  if (p.size(0) == 0) return {};
  auto col = p.select(1, 1).to(torch::kFloat64).contiguous();
  return std::vector<double>(col.data_ptr<double>(), col.data_ptr<double>() + col.numel());
}

std::vector<double> Predictor::predict_files(const std::vector<std::filesystem::path>& files, int64_t batch_size) {
  std::vector<cv::Mat> images;
  images.reserve(files.size());
  for (const auto& f : files) images.push_back(io::read_image_rgb(f));
  return predict(images, batch_size);
}

torch::Tensor Predictor::features(const std::vector<cv::Mat>& rgb, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> parts;
  for (size_t begin = 0; begin < rgb.size(); begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(rgb.size(), begin + static_cast<size_t>(batch_size));
    parts.push_back(model_->features(batch_tensor(rgb, begin, end)).to(torch::kCPU));
  }
  HISTOCNN_CHECK(!parts.empty(), "features() needs at least one patch");
  return torch::cat(parts);
}

}  // namespace histocnn::inference
