#include "histocnn/models/densenet.h"

#include "histocnn/core/error.h"

#include <torch/torch.h>

namespace histocnn::models {

namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

class DenseLayerImpl : public torch::nn::Module {
 public:
  DenseLayerImpl(int64_t in, int64_t growth, int64_t bn_size) {
    norm1 = register_module("norm1", BatchNorm2d(in));
    conv1 = register_module("conv1", Conv2d(Conv2dOptions(in, bn_size * growth, 1).bias(false)));
    norm2 = register_module("norm2", BatchNorm2d(bn_size * growth));
    conv2 = register_module("conv2", Conv2d(Conv2dOptions(bn_size * growth, growth, 3).padding(1).bias(false)));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    // In place on fresh BatchNorm outputs, as torchvision's inplace ReLUs.
    auto y = conv1->forward(norm1->forward(x).relu_());
    return conv2->forward(norm2->forward(y).relu_());
  }
  BatchNorm2d norm1{nullptr}, norm2{nullptr};
  Conv2d conv1{nullptr}, conv2{nullptr};
};
TORCH_MODULE(DenseLayer);

class DenseBlockImpl : public torch::nn::Module {
 public:
  DenseBlockImpl(int64_t layers, int64_t in, int64_t growth, int64_t bn_size) {
    for (int64_t i = 0; i < layers; ++i) {
      layers_.push_back(register_module("denselayer" + std::to_string(i + 1), DenseLayer(in + i * growth, growth, bn_size)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    // Each layer sees the concatenation of everything before it. Concatenating into a growing
    // tensor once per layer is what torchvision does, and what its numbers depend on.
    std::vector<torch::Tensor> feats{x};
    for (auto& layer : layers_) feats.push_back(layer->forward(torch::cat(feats, 1)));
    return torch::cat(feats, 1);
  }

 private:
  std::vector<DenseLayer> layers_;
};
TORCH_MODULE(DenseBlock);

class TransitionImpl : public torch::nn::Module {
 public:
  TransitionImpl(int64_t in, int64_t out) {
    norm = register_module("norm", BatchNorm2d(in));
    conv = register_module("conv", Conv2d(Conv2dOptions(in, out, 1).bias(false)));
  }
  torch::Tensor forward(torch::Tensor x) {
    return torch::avg_pool2d(conv->forward(norm->forward(x).relu_()), {2, 2}, {2, 2});
  }
  BatchNorm2d norm{nullptr};
  Conv2d conv{nullptr};
};
TORCH_MODULE(Transition);

}  // namespace

DenseNetImpl::DenseNetImpl(int64_t depth) : depth_(depth) {
  HISTOCNN_CHECK(depth == 121 || depth == 201, "densenet depth must be 121 or 201, got {}", depth);
  const std::vector<int64_t> blocks = depth == 121 ? std::vector<int64_t>{6, 12, 24, 16} : std::vector<int64_t>{6, 12, 48, 32};
  const int64_t growth = 32, bn_size = 4;
  torch::OrderedDict<std::string, torch::nn::AnyModule> layers;
  layers.insert("conv0", torch::nn::AnyModule(Conv2d(Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false))));
  layers.insert("norm0", torch::nn::AnyModule(BatchNorm2d(64)));
  layers.insert("relu0", torch::nn::AnyModule(torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true))));
  layers.insert("pool0", torch::nn::AnyModule(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1))));
  int64_t c = 64;
  for (size_t i = 0; i < blocks.size(); ++i) {
    layers.insert("denseblock" + std::to_string(i + 1), torch::nn::AnyModule(DenseBlock(blocks[i], c, growth, bn_size)));
    c += blocks[i] * growth;
    if (i + 1 < blocks.size()) {
      layers.insert("transition" + std::to_string(i + 1), torch::nn::AnyModule(Transition(c, c / 2)));
      c /= 2;
    }
  }
  layers.insert("norm5", torch::nn::AnyModule(BatchNorm2d(c)));
  channels_ = c;
  features = register_module("features", torch::nn::Sequential(std::move(layers)));
  // torchvision: Kaiming-normal with fan_in here (not fan_out as in its other models).
  for (auto& m : modules(false)) {
    if (auto* conv = m->as<Conv2d>()) {
      torch::nn::init::kaiming_normal_(conv->weight);
    } else if (auto* bn = m->as<BatchNorm2d>()) {
      torch::nn::init::ones_(bn->weight);
      torch::nn::init::zeros_(bn->bias);
    }
  }
}

torch::Tensor DenseNetImpl::compute_features(torch::Tensor x) {
  // torchvision's forward applies the final ReLU without a module: "features" includes it.
  return tap("features", forward_tapped(*features, "features", x, /*tap_whole=*/false).relu_());
}

}  // namespace histocnn::models
