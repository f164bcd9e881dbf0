#pragma once
// MobileNetV3 Small and Large (Howard et al., 2019) without their top, with torchvision's
// parameter names (features.0.0.weight, features.1.block.0.0.weight, ..., block.N.fc1.weight).
//
//   auto net = histocnn::models::make_backbone("mobilenet_v3_large");
//   torch::Tensor maps = net->forward_features(x);   // [N, 960, h/32, w/32]
#include "histocnn/models/backbone.h"

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

namespace histocnn::models {

class MobileNetV3Impl : public BackboneImpl {
 public:
  /// large = false: mobilenet_v3_small (576 feature channels); true: mobilenet_v3_large (960).
  explicit MobileNetV3Impl(bool large, bool tf_padding = false);
  torch::Tensor compute_features(torch::Tensor x) override;
  int64_t feature_channels() const override { return channels_; }
  std::string name() const override { return large_ ? "mobilenet_v3_large" : "mobilenet_v3_small"; }
  std::vector<std::string> top_prefixes() const override { return {"classifier."}; }

  torch::nn::Sequential features{nullptr};

 private:
  bool large_;
  int64_t channels_ = 0;
};
TORCH_MODULE(MobileNetV3);

}  // namespace histocnn::models
