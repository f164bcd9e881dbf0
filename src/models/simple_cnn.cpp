#include "histocnn/models/simple_cnn.h"

#include <torch/torch.h>

namespace histocnn::models {

SimpleCNNImpl::SimpleCNNImpl() {
  features = torch::nn::Sequential();
  int64_t in = 3;
  const int64_t widths[] = {32, 64, 128, 256};
  for (int i = 0; i < 4; ++i) {
    features->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, widths[i], 3).padding(1).bias(false)));
    features->push_back(torch::nn::BatchNorm2d(widths[i]));
    features->push_back(torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true)));
    if (i < 3) features->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2)));
    in = widths[i];
  }
  register_module("features", features);
  for (auto& m : modules(false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut);
  }
}

torch::Tensor SimpleCNNImpl::compute_features(torch::Tensor x) { return forward_tapped(*features, "features", x); }

}  // namespace histocnn::models
