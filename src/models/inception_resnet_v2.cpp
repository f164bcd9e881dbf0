#include "histocnn/models/inception_resnet_v2.h"

#include "layers.h"

#include <torch/torch.h>

namespace histocnn::models {

namespace {

using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;
using torch::nn::Sequential;

// Keras' BatchNormalization(scale=False): no gamma, so no `weight` parameter (batch_norm() takes
// an undefined weight as gamma = 1). A BatchNorm2d subclass, so that freezing code still
// recognises it as BatchNorm and keeps it in inference mode.
class ScalelessBatchNormImpl : public torch::nn::BatchNorm2dImpl {
 public:
  explicit ScalelessBatchNormImpl(int64_t c)
      : torch::nn::BatchNorm2dImpl(torch::nn::BatchNorm2dOptions(c).eps(1e-3).momentum(0.01).affine(false)) {
    // Without affine parameters BatchNorm registers an undefined "bias"; define it.
    bias = torch::zeros({c}).requires_grad_(true);
    parameters_["bias"] = bias;
  }
  void pretty_print(std::ostream& stream) const override {
    stream << "ScalelessBatchNorm(" << options.num_features() << ", eps=" << options.eps() << ")";
  }
};

// conv (no bias) + scale-free BatchNorm + ReLU: Keras' conv2d_bn, timm's BasicConv2d.
class BasicConvImpl : public torch::nn::Module {
 public:
  BasicConvImpl(int64_t in, int64_t out, std::vector<int64_t> kernel, int64_t stride = 1, bool same = true) {
    const std::vector<int64_t> padding = same ? std::vector<int64_t>{(kernel[0] - 1) / 2, (kernel[1] - 1) / 2}
                                              : std::vector<int64_t>{0, 0};
    conv = register_module("conv", Conv2d(Conv2dOptions(in, out, torch::ExpandingArray<2>(kernel))
                                              .stride(stride)
                                              .padding(torch::ExpandingArray<2>(padding))
                                              .bias(false)));
    bn = register_module("bn", std::make_shared<ScalelessBatchNormImpl>(out));
  }
  torch::Tensor forward(torch::Tensor x) { return torch::relu(bn->forward(conv->forward(x))); }
  Conv2d conv{nullptr};
  std::shared_ptr<ScalelessBatchNormImpl> bn;
};
TORCH_MODULE(BasicConv);

BasicConv bc(int64_t in, int64_t out, int64_t k) { return BasicConv(in, out, std::vector<int64_t>{k, k}); }
BasicConv bc_valid_s2(int64_t in, int64_t out) { return BasicConv(in, out, std::vector<int64_t>{3, 3}, 2, false); }

class MaxPoolValidImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(torch::Tensor x) { return torch::max_pool2d(x, {3, 3}, {2, 2}); }
};
TORCH_MODULE(MaxPoolValid);

// TF "same" average pooling excludes the padding from the average.
class AvgPoolSameImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(torch::Tensor x) {
    return torch::avg_pool2d(x, {3, 3}, {1, 1}, {1, 1}, /*ceil_mode=*/false, /*count_include_pad=*/false);
  }
};
TORCH_MODULE(AvgPoolSame);

class Mixed5bImpl : public torch::nn::Module {
 public:
  Mixed5bImpl() {
    branch0 = register_module("branch0", bc(192, 96, 1));
    branch1 = register_module("branch1", Sequential(bc(192, 48, 1), bc(48, 64, 5)));
    branch2 = register_module("branch2", Sequential(bc(192, 64, 1), bc(64, 96, 3), bc(96, 96, 3)));
    branch3 = register_module("branch3", Sequential(AvgPoolSame(), bc(192, 64, 1)));
  }
  torch::Tensor forward(torch::Tensor x) {
    return torch::cat({branch0->forward(x), branch1->forward(x), branch2->forward(x), branch3->forward(x)}, 1);
  }
  BasicConv branch0{nullptr};
  Sequential branch1{nullptr}, branch2{nullptr}, branch3{nullptr};
};
TORCH_MODULE(Mixed5b);

// The residual Inception blocks: x + scale * conv2d(concat(branches)), then ReLU (unless last).
class Block35Impl : public torch::nn::Module {
 public:
  explicit Block35Impl(double scale) : scale_(scale) {
    branch0 = register_module("branch0", bc(320, 32, 1));
    branch1 = register_module("branch1", Sequential(bc(320, 32, 1), bc(32, 32, 3)));
    branch2 = register_module("branch2", Sequential(bc(320, 32, 1), bc(32, 48, 3), bc(48, 64, 3)));
    conv2d = register_module("conv2d", Conv2d(Conv2dOptions(128, 320, 1)));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto mixed = torch::cat({branch0->forward(x), branch1->forward(x), branch2->forward(x)}, 1);
    return torch::relu(x + scale_ * conv2d->forward(mixed));
  }
  BasicConv branch0{nullptr};
  Sequential branch1{nullptr}, branch2{nullptr};
  Conv2d conv2d{nullptr};

 private:
  double scale_;
};
TORCH_MODULE(Block35);

class Mixed6aImpl : public torch::nn::Module {
 public:
  Mixed6aImpl() {
    branch0 = register_module("branch0", bc_valid_s2(320, 384));
    branch1 = register_module("branch1", Sequential(bc(320, 256, 1), bc(256, 256, 3), bc_valid_s2(256, 384)));
  }
  torch::Tensor forward(torch::Tensor x) {
    return torch::cat({branch0->forward(x), branch1->forward(x), torch::max_pool2d(x, {3, 3}, {2, 2})}, 1);
  }
  BasicConv branch0{nullptr};
  Sequential branch1{nullptr};
};
TORCH_MODULE(Mixed6a);

class Block17Impl : public torch::nn::Module {
 public:
  explicit Block17Impl(double scale) : scale_(scale) {
    branch0 = register_module("branch0", bc(1088, 192, 1));
    branch1 = register_module("branch1", Sequential(bc(1088, 128, 1), BasicConv(128, 160, std::vector<int64_t>{1, 7}),
                                                    BasicConv(160, 192, std::vector<int64_t>{7, 1})));
    conv2d = register_module("conv2d", Conv2d(Conv2dOptions(384, 1088, 1)));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto mixed = torch::cat({branch0->forward(x), branch1->forward(x)}, 1);
    return torch::relu(x + scale_ * conv2d->forward(mixed));
  }
  BasicConv branch0{nullptr};
  Sequential branch1{nullptr};
  Conv2d conv2d{nullptr};

 private:
  double scale_;
};
TORCH_MODULE(Block17);

class Mixed7aImpl : public torch::nn::Module {
 public:
  Mixed7aImpl() {
    branch0 = register_module("branch0", Sequential(bc(1088, 256, 1), bc_valid_s2(256, 384)));
    branch1 = register_module("branch1", Sequential(bc(1088, 256, 1), bc_valid_s2(256, 288)));
    branch2 = register_module("branch2", Sequential(bc(1088, 256, 1), bc(256, 288, 3), bc_valid_s2(288, 320)));
  }
  torch::Tensor forward(torch::Tensor x) {
    return torch::cat({branch0->forward(x), branch1->forward(x), branch2->forward(x), torch::max_pool2d(x, {3, 3}, {2, 2})},
                      1);
  }
  Sequential branch0{nullptr}, branch1{nullptr}, branch2{nullptr};
};
TORCH_MODULE(Mixed7a);

class Block8Impl : public torch::nn::Module {
 public:
  Block8Impl(double scale, bool relu) : scale_(scale), relu_(relu) {
    branch0 = register_module("branch0", bc(2080, 192, 1));
    branch1 = register_module("branch1", Sequential(bc(2080, 192, 1), BasicConv(192, 224, std::vector<int64_t>{1, 3}),
                                                    BasicConv(224, 256, std::vector<int64_t>{3, 1})));
    conv2d = register_module("conv2d", Conv2d(Conv2dOptions(448, 2080, 1)));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto mixed = torch::cat({branch0->forward(x), branch1->forward(x)}, 1);
    auto y = x + scale_ * conv2d->forward(mixed);
    return relu_ ? torch::relu(y) : y;
  }
  BasicConv branch0{nullptr};
  Sequential branch1{nullptr};
  Conv2d conv2d{nullptr};

 private:
  double scale_;
  bool relu_;
};
TORCH_MODULE(Block8);

}  // namespace

InceptionResNetV2Impl::InceptionResNetV2Impl() {
  auto add = [&](const std::string& name, torch::nn::AnyModule m) {
    register_module(name, m.ptr());
    order_.push_back(std::move(m));
  };
  add("conv2d_1a", torch::nn::AnyModule(bc_valid_s2(3, 32)));
  add("conv2d_2a", torch::nn::AnyModule(BasicConv(32, 32, std::vector<int64_t>{3, 3}, 1, false)));
  add("conv2d_2b", torch::nn::AnyModule(bc(32, 64, 3)));
  add("maxpool_3a", torch::nn::AnyModule(MaxPoolValid()));
  add("conv2d_3b", torch::nn::AnyModule(bc(64, 80, 1)));
  add("conv2d_4a", torch::nn::AnyModule(BasicConv(80, 192, std::vector<int64_t>{3, 3}, 1, false)));
  add("maxpool_5a", torch::nn::AnyModule(MaxPoolValid()));
  add("mixed_5b", torch::nn::AnyModule(Mixed5b()));
  auto repeat = detail::Seq(), repeat_1 = detail::Seq(), repeat_2 = detail::Seq();
  for (int i = 0; i < 10; ++i) repeat->push_back(Block35(0.17));
  add("repeat", torch::nn::AnyModule(repeat));
  add("mixed_6a", torch::nn::AnyModule(Mixed6a()));
  for (int i = 0; i < 20; ++i) repeat_1->push_back(Block17(0.10));
  add("repeat_1", torch::nn::AnyModule(repeat_1));
  add("mixed_7a", torch::nn::AnyModule(Mixed7a()));
  for (int i = 0; i < 9; ++i) repeat_2->push_back(Block8(0.20, true));
  add("repeat_2", torch::nn::AnyModule(repeat_2));
  add("block8", torch::nn::AnyModule(Block8(1.0, false)));
  add("conv2d_7b", torch::nn::AnyModule(bc(2080, 1536, 1)));
  for (auto& m : modules(false)) {
    if (auto* c = m->as<Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut);
      if (c->bias.defined()) torch::nn::init::zeros_(c->bias);
    }
  }
}

torch::Tensor InceptionResNetV2Impl::compute_features(torch::Tensor x) {
  if (x.size(2) < kMinInputSize || x.size(3) < kMinInputSize) {
    x = torch::upsample_bilinear2d(x, {std::max(x.size(2), kMinInputSize), std::max(x.size(3), kMinInputSize)},
                                   /*align_corners=*/false);
  }
  if (!tapping()) {
    for (auto& m : order_) x = m.forward(x);
    return x;
  }
  const auto names = named_children().keys();  // registered in the order of order_
  for (size_t i = 0; i < order_.size(); ++i) {
    if (auto* seq = order_[i].ptr()->as<torch::nn::SequentialImpl>()) {
      x = forward_tapped(*seq, names.at(i), x);
    } else {
      x = tap(names.at(i), order_[i].forward(x));
    }
  }
  return x;
}

}  // namespace histocnn::models
