#pragma once
// SqueezeNet 1.1 (Iandola et al., 2016) without its top, with torchvision's parameter names
// (features.0, features.3.squeeze, features.3.expand1x1, ...): 722,496 parameters.
//
//   auto net = histocnn::models::make_backbone("squeezenet1_1");
//   histocnn::models::load_weights(*net, "squeezenet1_1_features.torchvision.safetensors");
//   torch::Tensor maps = net->forward_features(x);   // [N, 512, 13, 13] at 224x224
#include "histocnn/models/backbone.h"

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/pimpl.h>

namespace histocnn::models {

class SqueezeNetImpl : public BackboneImpl {
 public:
  SqueezeNetImpl();
  torch::Tensor compute_features(torch::Tensor x) override;
  int64_t feature_channels() const override { return 512; }
  std::string name() const override { return "squeezenet1_1"; }
  std::vector<std::string> top_prefixes() const override { return {"classifier."}; }

  torch::nn::Sequential features{nullptr};
};
TORCH_MODULE(SqueezeNet);

}  // namespace histocnn::models
