#include "histocnn/inference/predictor.h"

#include "histocnn/core/device.h"
#include "histocnn/core/error.h"
#include "histocnn/core/progress.h"
#include "histocnn/io/image.h"


#include <algorithm>

#include <torch/torch.h>

namespace histocnn::inference {

Predictor::Predictor(const std::filesystem::path& model_dir, const std::string& device)
    : Predictor(load_model(model_dir), device) {}

Predictor::Predictor(SavedModel saved, const std::string& device)
    : model_(std::move(saved.model)),
      card_(std::move(saved.card)),
      directory_(std::move(saved.directory)),
      device_(parse_device(device)) {
  HISTOCNN_CHECK(!model_.is_empty(), "Predictor needs a model");
  model_->to(device_);
  model_->eval();
}

torch::Tensor Predictor::prepare_range(const std::vector<cv::Mat>& rgb, size_t begin, size_t end,
                                       const data::StainStats* stain_source) const {
  const auto& pre = card_.preprocessing;
  auto batch = torch::empty({static_cast<int64_t>(end - begin), 3, pre.image_size, pre.image_size}, torch::kFloat32);
  for (size_t i = begin; i < end; ++i) {
    const auto& img = rgb[i];
    HISTOCNN_CHECK(!img.empty() && img.type() == CV_8UC3,
                   "patch {} must be an RGB uint8 image (HxWx3); got {} channels of depth {}", i, img.channels(),
                   img.depth());
    pre.normalise_into(pre.prepare(img, stain_source), batch[static_cast<int64_t>(i - begin)]);
  }
  return batch;
}

torch::Tensor Predictor::prepare(const std::vector<cv::Mat>& rgb) const {
  const auto source = card_.preprocessing.stain_source(rgb);
  return prepare_range(rgb, 0, rgb.size(), source ? &*source : nullptr);
}

torch::Tensor Predictor::predict_batch(const torch::Tensor& batch) const {
  return class_probabilities(model_, batch, tta_);
}

torch::Tensor Predictor::predict_proba(const std::vector<cv::Mat>& rgb, int64_t batch_size) const {
  const auto source = card_.preprocessing.stain_source(rgb);
  return predict_proba_with(rgb, batch_size, source ? &*source : nullptr);
}

torch::Tensor Predictor::predict_proba(const std::vector<cv::Mat>& rgb, const data::StainStats& stain_source,
                                       int64_t batch_size) const {
  return predict_proba_with(rgb, batch_size, &stain_source);
}

torch::Tensor Predictor::predict_proba_with(const std::vector<cv::Mat>& rgb, int64_t batch_size,
                                            const data::StainStats* stain_source) const {
  HISTOCNN_CHECK(batch_size > 0, "batch_size must be positive, got {}", batch_size);
  std::vector<torch::Tensor> parts;
  for (size_t begin = 0; begin < rgb.size(); begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(rgb.size(), begin + static_cast<size_t>(batch_size));
    parts.push_back(predict_batch(prepare_range(rgb, begin, end, stain_source)));
  }
  if (parts.empty()) return torch::empty({0, static_cast<int64_t>(card_.class_names.size())});
  return torch::cat(parts);
}

std::vector<double> Predictor::predict(const std::vector<cv::Mat>& rgb, int64_t batch_size) const {
  auto p = predict_proba(rgb, batch_size);
  if (p.size(0) == 0) return {};
  auto col = p.select(1, 1).to(torch::kFloat64).contiguous();
  return std::vector<double>(col.data_ptr<double>(), col.data_ptr<double>() + col.numel());
}

std::vector<double> Predictor::predict_files(const std::vector<std::filesystem::path>& files,
                                             int64_t batch_size) const {
  std::vector<cv::Mat> images;
  images.reserve(files.size());
  for (const auto& f : files) images.push_back(io::read_image_rgb(f));
  return predict(images, batch_size);
}

Predictions Predictor::predict_dataset(const data::PatchDataset& dataset, const PredictOptions& options) const {
  PredictOptions o = options;
  o.tta = o.tta || tta_;
  return inference::predict_dataset(model_, dataset, o);
}

torch::Tensor Predictor::features(const std::vector<cv::Mat>& rgb, int64_t batch_size) const {
  HISTOCNN_CHECK(batch_size > 0, "batch_size must be positive, got {}", batch_size);
  HISTOCNN_CHECK(!rgb.empty(), "features() needs at least one patch");
  torch::NoGradGuard no_grad;
  const auto source = card_.preprocessing.stain_source(rgb);
  std::vector<torch::Tensor> parts;
  for (size_t begin = 0; begin < rgb.size(); begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(rgb.size(), begin + static_cast<size_t>(batch_size));
    parts.push_back(model_->features(prepare_range(rgb, begin, end, source ? &*source : nullptr).to(device_))
                        .to(torch::kCPU));
  }
  return torch::cat(parts);
}

std::vector<FilePrediction> predict_image_files(const Predictor& predictor, const std::vector<std::filesystem::path>& files,
                                                bool skip_unreadable, int64_t batch_size, bool progress) {
  HISTOCNN_CHECK(batch_size > 0, "batch_size must be positive, got {}", batch_size);
  std::vector<FilePrediction> out(files.size());
  ProgressBar bar(static_cast<int64_t>(files.size()), "predict", progress, "img");
  for (size_t begin = 0; begin < files.size(); begin += static_cast<size_t>(batch_size)) {
    const size_t end = std::min(files.size(), begin + static_cast<size_t>(batch_size));
    std::vector<cv::Mat> images;
    std::vector<size_t> index;
    for (size_t i = begin; i < end; ++i) {
      out[i].path = files[i];
      try {
        images.push_back(io::read_image_rgb(files[i]));
        index.push_back(i);
      } catch (const std::exception& e) {
        if (!skip_unreadable) throw;
        out[i].error = e.what();
      }
    }
    if (!images.empty()) {
      const auto p = predictor.predict(images, batch_size);
      for (size_t k = 0; k < index.size(); ++k) out[index[k]].p_positive = p[k];
    }
    bar.update(static_cast<int64_t>(end - begin));
  }
  bar.finish();
  return out;
}

}  // namespace histocnn::inference
