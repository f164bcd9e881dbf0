#include "histocnn/models/vgg.h"

#include "histocnn/core/error.h"

#include <torch/torch.h>

namespace histocnn::models {

VGGImpl::VGGImpl(int64_t depth) : depth_(depth) {
  HISTOCNN_CHECK(depth == 16, "vgg depth must be 16, got {}", depth);
  // Configuration "D": channels of the 3x3 convolutions, 0 for a 2x2 max pool.
  const int64_t cfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0};
  features = torch::nn::Sequential();
  int64_t in = 3;
  for (int64_t c : cfg) {
    if (c == 0) {
      features->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)));
    } else {
      features->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, c, 3).padding(1)));
      features->push_back(torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true)));
      in = c;
    }
  }
  register_module("features", features);
  for (auto& m : modules(false)) {
    if (auto* conv = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut);
      torch::nn::init::zeros_(conv->bias);
    }
  }
}

torch::Tensor VGGImpl::compute_features(torch::Tensor x) { return forward_tapped(*features, "features", x); }

}  // namespace histocnn::models
