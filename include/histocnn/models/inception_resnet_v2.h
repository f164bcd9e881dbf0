#pragma once
// Inception-ResNet-v2 (Szegedy et al., 2016) without its top, exactly Keras Applications' graph
// (54,336,736 parameters with BatchNorm statistics: its BatchNorm layers have no scale, gamma = 1),
// under the parameter names of timm's `inception_resnet_v2` port: conv2d_1a ... conv2d_4a,
// mixed_5b, repeat.N (Block35), mixed_6a, repeat_1.N (Block17), mixed_7a, repeat_2.N (Block8),
// block8, conv2d_7b; each BasicConv2d is `conv` + `bn` (bn.bias, bn.running_mean, bn.running_var).
//
//   auto net = histocnn::models::make_backbone("inception_resnet_v2");
//   torch::Tensor maps = net->forward_features(x);   // [N, 1536, 8, 8] at 299x299
//
// Its stem and reduction blocks use unpadded convolutions, so the graph needs at least 75x75
// (Keras' minimum). Smaller inputs are resized (bilinear) up to 75 on each short side first.
#include "histocnn/models/backbone.h"

#include <torch/nn/modules/container/any.h>
#include <torch/nn/pimpl.h>

#include <vector>

namespace histocnn::models {

class InceptionResNetV2Impl : public BackboneImpl {
 public:
  InceptionResNetV2Impl();
  torch::Tensor compute_features(torch::Tensor x) override;
  int64_t feature_channels() const override { return 1536; }
  std::string name() const override { return "inception_resnet_v2"; }
  std::string feature_layer() const override { return "conv2d_7b"; }
  /// Keras' weights expect x / 127.5 - 1.
  std::string normalisation() const override { return "inception"; }
  std::vector<std::string> top_prefixes() const override { return {"classif.", "fc.", "head."}; }
  /// The smallest input side the graph accepts without resizing.
  static constexpr int64_t kMinInputSize = 75;

 private:
  std::vector<torch::nn::AnyModule> order_;  // the submodules in forward order
};
TORCH_MODULE(InceptionResNetV2);

}  // namespace histocnn::models
