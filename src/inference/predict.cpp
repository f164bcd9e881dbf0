#include "histocnn/inference/predict.h"

#include "histocnn/core/error.h"
#include "histocnn/core/progress.h"
#include "histocnn/data/loader.h"
#include "histocnn/models/eval_mode.h"

#include <torch/torch.h>

namespace histocnn::inference {

namespace {

// Eval mode and no gradient for the scope; the previous training mode comes back on exit.
struct InferenceScope {
  explicit InferenceScope(models::Classifier& model) : eval(*model) {}
  models::EvalModeScope eval;
  torch::NoGradGuard no_grad;
};

torch::Device device_of(models::Classifier& model) {
  auto params = model->parameters();
  return params.empty() ? torch::Device(torch::kCPU) : params.front().device();
}

std::vector<double> to_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace

torch::Tensor class_probabilities(models::Classifier model, const torch::Tensor& batch, bool tta) {
  HISTOCNN_CHECK(batch.dim() == 4 && batch.size(1) == 3, "a batch must be [N, 3, H, W], got {}",
                 c10::str(batch.sizes()));
  InferenceScope scope(model);
  auto x = batch.to(device_of(model));
  if (!tta) return torch::softmax(model->forward(x), 1).to(torch::kCPU, torch::kFloat32);
  std::vector<torch::Tensor> views;
  for (int64_t k = 0; k < 4; ++k) {
    const auto turned = torch::rot90(x, k, {2, 3});
    views.push_back(turned);
    views.push_back(torch::flip(turned, {3}));
  }
  const int64_t n = x.size(0);
  const auto p = torch::softmax(model->forward(torch::cat(views)), 1);
  return p.view({8, n, p.size(1)}).mean(0).to(torch::kCPU, torch::kFloat32);
}

std::vector<double> predict_from_features(models::Classifier& model, const torch::Tensor& features) {
  InferenceScope scope(model);
  return to_vector(torch::softmax(model->head_forward(features.to(device_of(model))), 1).select(1, 1));
}

Predictions predict_dataset(models::Classifier& model, const data::PatchDataset& dataset,
                            const PredictOptions& options) {
  HISTOCNN_CHECK(dataset.size() > 0, "cannot predict on an empty dataset");
  HISTOCNN_CHECK(options.batch_size > 0, "batch_size must be positive, got {}", options.batch_size);
  data::LoaderOptions lo;
  lo.batch_size = options.batch_size;
  lo.workers = options.workers;
  data::BatchLoader loader(dataset, lo);
  Predictions out;
  out.p_positive.reserve(dataset.size());
  ProgressBar bar(loader.num_batches(), "predict", options.progress, "img");
  loader.run_epoch(0, [&](data::Batch& b) {
    auto v = to_vector(class_probabilities(model, b.images, options.tta).select(1, 1));
    out.p_positive.insert(out.p_positive.end(), v.begin(), v.end());
    bar.add_items(b.images.size(0));
    bar.update(1);
  });
  bar.finish();
  out.labels = dataset.labels();
  return out;
}

}  // namespace histocnn::inference
