#include "histocnn/models/squeezenet.h"

#include <torch/torch.h>

namespace histocnn::models {

namespace {

using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

class FireImpl : public torch::nn::Module {
 public:
  FireImpl(int64_t in, int64_t squeeze_planes, int64_t expand1x1_planes, int64_t expand3x3_planes) {
    squeeze = register_module("squeeze", Conv2d(Conv2dOptions(in, squeeze_planes, 1)));
    expand1x1 = register_module("expand1x1", Conv2d(Conv2dOptions(squeeze_planes, expand1x1_planes, 1)));
    expand3x3 = register_module("expand3x3", Conv2d(Conv2dOptions(squeeze_planes, expand3x3_planes, 3).padding(1)));
  }
  torch::Tensor forward(torch::Tensor x) {
    x = squeeze->forward(x).relu_();
    return torch::cat({expand1x1->forward(x).relu_(), expand3x3->forward(x).relu_()}, 1);
  }
  Conv2d squeeze{nullptr}, expand1x1{nullptr}, expand3x3{nullptr};
};
TORCH_MODULE(Fire);

torch::nn::MaxPool2d ceil_pool() {
  return torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).ceil_mode(true));
}

}  // namespace

SqueezeNetImpl::SqueezeNetImpl() {
  features = torch::nn::Sequential(
      Conv2d(Conv2dOptions(3, 64, 3).stride(2)), torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true)), ceil_pool(),
      Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), ceil_pool(), Fire(128, 32, 128, 128), Fire(256, 32, 128, 128),
      ceil_pool(), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256));
  register_module("features", features);
  // torchvision: Kaiming-uniform (fan_in) weights, zero biases.
  for (auto& m : modules(false)) {
    if (auto* conv = m->as<Conv2d>()) {
      torch::nn::init::kaiming_uniform_(conv->weight);
      torch::nn::init::zeros_(conv->bias);
    }
  }
}

torch::Tensor SqueezeNetImpl::compute_features(torch::Tensor x) { return forward_tapped(*features, "features", x); }

}  // namespace histocnn::models
