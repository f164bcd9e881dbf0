#pragma once
// A small CNN trained from scratch: four Conv-BN-ReLU blocks (32, 64, 128, 256 channels) with
// max pooling between them. The baseline for "does ImageNet pre-training help?", and the default
// backbone where no pretrained weights are available, since it trains in minutes on a CPU.
//
//   auto backbone = histocnn::models::make_backbone("simple_cnn");
#include "histocnn/models/backbone.h"

#include <torch/nn/modules/container/sequential.h>

namespace histocnn::models {

class SimpleCNNImpl : public BackboneImpl {
 public:
  SimpleCNNImpl();
  torch::Tensor compute_features(torch::Tensor x) override;
  int64_t feature_channels() const override { return 256; }
  std::string name() const override { return "simple_cnn"; }

  torch::nn::Sequential features{nullptr};
};

}  // namespace histocnn::models
