#include "layers.h"

#include <limits>

namespace histocnn::models::detail {

torch::Tensor activate(const torch::Tensor& x, Act act) {
  switch (act) {
    case Act::None: return x;
    case Act::ReLU: return torch::relu(x);
    case Act::ReLU6: return torch::hardtanh(x, 0.0, 6.0);
    case Act::Hardswish: return torch::hardswish(x);
    case Act::Hardsigmoid: return torch::hardsigmoid(x);
    case Act::SiLU: return torch::silu(x);
    case Act::Sigmoid: return torch::sigmoid(x);
  }
  return x;
}

torch::Tensor activate_(torch::Tensor x, Act act) {
  if (act == Act::ReLU) return x.relu_();
  if (torch::GradMode::is_enabled()) return activate(x, act);
  switch (act) {
    case Act::ReLU6: return torch::hardtanh_(x, 0.0, 6.0);
    case Act::Hardswish: return torch::hardswish_(x);
    case Act::Hardsigmoid: return torch::hardsigmoid_(x);
    case Act::SiLU: return torch::silu_(x);
    case Act::Sigmoid: return torch::sigmoid_(x);
    default: return activate(x, act);
  }
}

torch::Tensor tf_same_pad(const torch::Tensor& x, int64_t kh, int64_t kw, int64_t stride, double value) {
  auto pad_for = [&](int64_t in, int64_t k) {
    const int64_t out = (in + stride - 1) / stride;
    return std::max<int64_t>((out - 1) * stride + k - in, 0);
  };
  const int64_t ph = pad_for(x.size(2), kh), pw = pad_for(x.size(3), kw);
  if (ph == 0 && pw == 0) return x;
  return torch::constant_pad_nd(x, {pw / 2, pw - pw / 2, ph / 2, ph - ph / 2}, value);
}

torch::Tensor tf_same_max_pool(const torch::Tensor& x, int64_t kernel, int64_t stride) {
  auto padded = tf_same_pad(x, kernel, kernel, stride, -std::numeric_limits<double>::infinity());
  return torch::max_pool2d(padded, {kernel, kernel}, {stride, stride});
}

ConvNormActImpl::ConvNormActImpl(const ConvNormActOptions& o) : options_(o) {
  const int64_t padding = o.tf_padding() ? 0 : (o.kernel() - 1) / 2;
  conv = register_module("0", torch::nn::Conv2d(torch::nn::Conv2dOptions(o.in(), o.out(), o.kernel())
                                                    .stride(o.stride())
                                                    .padding(padding)
                                                    .groups(o.groups())
                                                    .bias(false)));
  bn = register_module("1", torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(o.out()).eps(o.eps()).momentum(o.momentum())));
}

torch::Tensor ConvNormActImpl::forward(torch::Tensor x) {
  if (options_.tf_padding()) x = tf_same_pad(x, options_.kernel(), options_.kernel(), options_.stride());
  return activate_(bn->forward(conv->forward(x)), options_.act());
}

SqueezeExcitationImpl::SqueezeExcitationImpl(int64_t channels, int64_t squeeze, Act act, Act scale_act)
    : act_(act), scale_act_(scale_act) {
  fc1 = register_module("fc1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, squeeze, 1)));
  fc2 = register_module("fc2", torch::nn::Conv2d(torch::nn::Conv2dOptions(squeeze, channels, 1)));
}

torch::Tensor SqueezeExcitationImpl::forward(torch::Tensor x) {
  auto s = x.mean({2, 3}, /*keepdim=*/true);
  s = activate_(fc2->forward(activate_(fc1->forward(s), act_)), scale_act_);
  return s * x;
}

int64_t make_divisible(double value, int64_t divisor) {
  int64_t v = std::max<int64_t>(divisor, static_cast<int64_t>(value + divisor / 2.0) / divisor * divisor);
  if (v < 0.9 * value) v += divisor;
  return v;
}

void init_torchvision(torch::nn::Module& module) {
  for (auto& m : module.modules(/*include_self=*/false)) {
    if (auto* c = m->as<torch::nn::Conv2d>()) {
      torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut);
      if (c->bias.defined()) torch::nn::init::zeros_(c->bias);
    } else if (auto* b = m->as<torch::nn::BatchNorm2d>()) {
      torch::nn::init::ones_(b->weight);
      torch::nn::init::zeros_(b->bias);
    } else if (auto* l = m->as<torch::nn::Linear>()) {
      torch::nn::init::normal_(l->weight, 0.0, 0.01);
      torch::nn::init::zeros_(l->bias);
    }
  }
}

}  // namespace histocnn::models::detail
