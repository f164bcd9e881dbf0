#include "histocnn/models/mobilenet_v2.h"

#include "histocnn/core/error.h"
#include "layers.h"

#include <torch/torch.h>

#include <cmath>

namespace histocnn::models {

using detail::make_divisible;
using detail::tf_same_pad;

ConvBNActImpl::ConvBNActImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, bool relu6,
                             bool tf_padding)
    : kernel_(kernel), stride_(stride), relu6_(relu6), tf_padding_(tf_padding) {
  const int64_t padding = tf_padding ? 0 : (kernel - 1) / 2;
  conv = register_module("0", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                    .stride(stride)
                                                    .padding(padding)
                                                    .groups(groups)
                                                    .bias(false)));
  bn = register_module("1", torch::nn::BatchNorm2d(out));
}

torch::Tensor ConvBNActImpl::forward(torch::Tensor x) {
  if (tf_padding_) x = tf_same_pad(x, kernel_, kernel_, stride_);
  x = bn->forward(conv->forward(x));
  return relu6_ ? torch::hardtanh(x, 0.0, 6.0) : x;
}

InvertedResidualImpl::InvertedResidualImpl(int64_t in, int64_t out, int64_t stride, int64_t expand_ratio,
                                           bool tf_padding)
    : use_residual_(stride == 1 && in == out) {
  const int64_t hidden = static_cast<int64_t>(std::llround(in * static_cast<double>(expand_ratio)));
  conv = torch::nn::Sequential();
  if (expand_ratio != 1) conv->push_back(ConvBNAct(in, hidden, 1, 1, 1, true, tf_padding));
  conv->push_back(ConvBNAct(hidden, hidden, 3, stride, hidden, true, tf_padding));
  conv->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(hidden, out, 1).bias(false)));
  conv->push_back(torch::nn::BatchNorm2d(out));
  register_module("conv", conv);
}

torch::Tensor InvertedResidualImpl::forward(torch::Tensor x) {
  auto y = conv->forward(x);
  return use_residual_ ? x + y : y;
}

MobileNetV2Impl::MobileNetV2Impl(MobileNetV2Options options) : options_(options) {
  HISTOCNN_CHECK(options.width_mult() > 0, "mobilenet_v2 width_mult must be positive, got {}", options.width_mult());
  HISTOCNN_CHECK(options.num_classes() >= 0, "mobilenet_v2 num_classes must be >= 0, got {}", options.num_classes());
  const bool tf = options.tf_padding();
  const double w = options.width_mult();
  // t (expansion), c (channels), n (repeats), s (first stride): the paper's Table 2.
  const int64_t settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  int64_t in = make_divisible(32 * w, 8);
  last_channels_ = make_divisible(1280 * std::max(1.0, w), 8);
  features = torch::nn::Sequential();
  features->push_back(ConvBNAct(3, in, 3, 2, 1, true, tf));
  for (const auto& s : settings) {
    const int64_t out = make_divisible(s[1] * w, 8);
    for (int64_t i = 0; i < s[2]; ++i) {
      features->push_back(InvertedResidual(in, out, i == 0 ? s[3] : 1, s[0], tf));
      in = out;
    }
  }
  features->push_back(ConvBNAct(in, last_channels_, 1, 1, 1, true, tf));
  register_module("features", features);
  if (options.num_classes() > 0) {
    classifier = torch::nn::Sequential(torch::nn::Dropout(options.dropout()),
                                       torch::nn::Linear(last_channels_, options.num_classes()));
    register_module("classifier", classifier);
  }

  detail::init_torchvision(*this);
}

torch::Tensor MobileNetV2Impl::compute_features(torch::Tensor x) { return forward_tapped(*features, "features", x); }

torch::Tensor MobileNetV2Impl::logits(torch::Tensor x) {
  HISTOCNN_CHECK(classifier, "this mobilenet_v2 was built without a top (num_classes = 0)");
  return classifier->forward(BackboneImpl::forward(x));
}

}  // namespace histocnn::models
