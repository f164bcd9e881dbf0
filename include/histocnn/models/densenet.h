#pragma once
// DenseNet-121 and DenseNet-201 (Huang et al., 2017) without their top, with torchvision's
// parameter names (features.conv0, features.denseblock1.denselayer1.norm1, ..., features.norm5).
// DenseNet-201 has 18,321,984 parameters with BatchNorm statistics, Keras' count.
//
//   auto net = histocnn::models::make_backbone("densenet121");
//   torch::Tensor maps = net->forward_features(x);   // [N, 1024, h/32, w/32], after norm5 + ReLU
#include "histocnn/models/backbone.h"

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

namespace histocnn::models {

class DenseNetImpl : public BackboneImpl {
 public:
  /// depth 121 (blocks 6, 12, 24, 16) or 201 (6, 12, 48, 32); growth rate 32, bottleneck 4.
  explicit DenseNetImpl(int64_t depth = 121);
  /// torchvision's features followed by the ReLU its forward() applies before pooling.
  torch::Tensor compute_features(torch::Tensor x) override;
  int64_t feature_channels() const override { return channels_; }
  std::string name() const override { return "densenet" + std::to_string(depth_); }
  std::vector<std::string> top_prefixes() const override { return {"classifier."}; }

  torch::nn::Sequential features{nullptr};

 private:
  int64_t depth_;
  int64_t channels_ = 0;
};
TORCH_MODULE(DenseNet);

}  // namespace histocnn::models
