#pragma once
// EfficientNet-B0 (Tan and Le, 2019) without its top, with torchvision's parameter names
// (features.0.0.weight, features.1.0.block.0.0.weight, ..., features.8.1.running_var).
// Stochastic depth (probability rising linearly to 0.2 over the blocks) acts in training only.
//
//   auto net = histocnn::models::make_backbone("efficientnet_b0");
//   torch::Tensor maps = net->forward_features(x);   // [N, 1280, h/32, w/32]
#include "histocnn/models/backbone.h"

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

namespace histocnn::models {

class EfficientNetImpl : public BackboneImpl {
 public:
  /// variant 0 (B0) only for now.
  explicit EfficientNetImpl(int variant = 0, bool tf_padding = false);
  torch::Tensor compute_features(torch::Tensor x) override;
  int64_t feature_channels() const override { return 1280; }
  std::string name() const override { return "efficientnet_b" + std::to_string(variant_); }
  std::vector<std::string> top_prefixes() const override { return {"classifier."}; }

  torch::nn::Sequential features{nullptr};

 private:
  int variant_;
};
TORCH_MODULE(EfficientNet);

}  // namespace histocnn::models
