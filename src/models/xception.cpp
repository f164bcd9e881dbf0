#include "histocnn/models/xception.h"

#include "layers.h"

#include <torch/torch.h>

namespace histocnn::models {

namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

// Keras' BatchNormalization defaults: epsilon 1e-3, momentum 0.99 (0.01 in PyTorch's convention).
BatchNorm2d keras_bn(int64_t c) { return BatchNorm2d(torch::nn::BatchNorm2dOptions(c).eps(1e-3).momentum(0.01)); }

class SeparableConvImpl : public torch::nn::Module {
 public:
  SeparableConvImpl(int64_t in, int64_t out) {
    conv1 = register_module("conv1", Conv2d(Conv2dOptions(in, in, 3).padding(1).groups(in).bias(false)));
    pointwise = register_module("pointwise", Conv2d(Conv2dOptions(in, out, 1).bias(false)));
  }
  torch::Tensor forward(torch::Tensor x) { return pointwise->forward(conv1->forward(x)); }
  Conv2d conv1{nullptr}, pointwise{nullptr};
};
TORCH_MODULE(SeparableConv);

class TFMaxPoolImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(torch::Tensor x) { return detail::tf_same_max_pool(x, 3, 2); }
};
TORCH_MODULE(TFMaxPool);

// timm's legacy Xception Block; `grow_first` puts the channel change in the first separable conv.
class XceptionBlockImpl : public torch::nn::Module {
 public:
  XceptionBlockImpl(int64_t in, int64_t out, int64_t reps, int64_t stride, bool start_with_relu, bool grow_first) {
    if (out != in || stride != 1) {
      skip = register_module("skip", Conv2d(Conv2dOptions(in, out, 1).stride(stride).bias(false)));
      skipbn = register_module("skipbn", keras_bn(out));
    }
    rep = torch::nn::Sequential();
    for (int64_t i = 0; i < reps; ++i) {
      const int64_t cin = grow_first ? (i == 0 ? in : out) : in;
      const int64_t cout = grow_first ? out : (i < reps - 1 ? in : out);
      if (start_with_relu || i > 0) rep->push_back(detail::Activation(detail::Act::ReLU));
      rep->push_back(SeparableConv(cin, cout));
      rep->push_back(keras_bn(cout));
    }
    if (stride != 1) rep->push_back(TFMaxPool());
    register_module("rep", rep);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto residual = skip ? skipbn->forward(skip->forward(x)) : x;
    return rep->forward(x) + residual;
  }
  Conv2d skip{nullptr};
  BatchNorm2d skipbn{nullptr};
  torch::nn::Sequential rep{nullptr};
};
TORCH_MODULE(XceptionBlock);

}  // namespace

XceptionImpl::XceptionImpl() {
  auto add = [&](const std::string& name, torch::nn::AnyModule m) {
    register_module(name, m.ptr());
    order_.push_back(std::move(m));
  };
  add("conv1", torch::nn::AnyModule(Conv2d(Conv2dOptions(3, 32, 3).stride(2).bias(false))));
  add("bn1", torch::nn::AnyModule(keras_bn(32)));
  add("act1", torch::nn::AnyModule(detail::Activation(detail::Act::ReLU)));
  add("conv2", torch::nn::AnyModule(Conv2d(Conv2dOptions(32, 64, 3).bias(false))));
  add("bn2", torch::nn::AnyModule(keras_bn(64)));
  add("act2", torch::nn::AnyModule(detail::Activation(detail::Act::ReLU)));
  add("block1", torch::nn::AnyModule(XceptionBlock(64, 128, 2, 2, false, true)));
  add("block2", torch::nn::AnyModule(XceptionBlock(128, 256, 2, 2, true, true)));
  add("block3", torch::nn::AnyModule(XceptionBlock(256, 728, 2, 2, true, true)));
  for (int i = 4; i <= 11; ++i) add("block" + std::to_string(i), torch::nn::AnyModule(XceptionBlock(728, 728, 3, 1, true, true)));
  add("block12", torch::nn::AnyModule(XceptionBlock(728, 1024, 2, 2, true, false)));
  add("conv3", torch::nn::AnyModule(SeparableConv(1024, 1536)));
  add("bn3", torch::nn::AnyModule(keras_bn(1536)));
  add("act3", torch::nn::AnyModule(detail::Activation(detail::Act::ReLU)));
  add("conv4", torch::nn::AnyModule(SeparableConv(1536, 2048)));
  add("bn4", torch::nn::AnyModule(keras_bn(2048)));
  add("act4", torch::nn::AnyModule(detail::Activation(detail::Act::ReLU)));
  detail::init_torchvision(*this);
}

torch::Tensor XceptionImpl::compute_features(torch::Tensor x) {
  if (!tapping()) {
    for (auto& m : order_) x = m.forward(x);
    return x;
  }
  const auto names = named_children().keys();  // registered in the order of order_
  for (size_t i = 0; i < order_.size(); ++i) x = tap(names.at(i), order_[i].forward(x));
  return x;
}

}  // namespace histocnn::models
