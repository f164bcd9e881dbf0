#include "histocnn/models/efficientnet.h"

#include "histocnn/core/error.h"
#include "layers.h"

#include <torch/torch.h>

namespace histocnn::models {

namespace {

using detail::Act;
using detail::ConvNormAct;
using detail::ConvNormActOptions;

class MBConvImpl : public torch::nn::Module {
 public:
  MBConvImpl(int64_t expand_ratio, int64_t kernel, int64_t stride, int64_t in, int64_t out, double drop_prob, bool tf)
      : use_residual_(stride == 1 && in == out), drop_prob_(drop_prob) {
    const int64_t expanded = detail::make_divisible(static_cast<double>(in * expand_ratio), 8);
    block = torch::nn::Sequential();
    if (expanded != in) block->push_back(ConvNormAct(ConvNormActOptions(in, expanded, 1).act(Act::SiLU).tf_padding(tf)));
    block->push_back(ConvNormAct(
        ConvNormActOptions(expanded, expanded, kernel).stride(stride).groups(expanded).act(Act::SiLU).tf_padding(tf)));
    block->push_back(detail::SqueezeExcitation(expanded, std::max<int64_t>(1, in / 4), Act::SiLU, Act::Sigmoid));
    block->push_back(ConvNormAct(ConvNormActOptions(expanded, out, 1).act(Act::None).tf_padding(tf)));
    register_module("block", block);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto y = block->forward(x);
    if (!use_residual_) return y;
    if (is_training() && drop_prob_ > 0) {
      // torchvision's StochasticDepth(mode="row"): drop the residual branch per sample.
      const double survival = 1.0 - drop_prob_;
      auto keep = torch::empty({y.size(0), 1, 1, 1}, y.options()).bernoulli_(survival).div_(survival);
      y = y * keep;
    }
    return y.add_(x);  // y is a fresh BatchNorm (or dropped) output
  }
  torch::nn::Sequential block{nullptr};

 private:
  bool use_residual_;
  double drop_prob_;
};
TORCH_MODULE(MBConv);

}  // namespace

EfficientNetImpl::EfficientNetImpl(int variant, bool tf_padding) : variant_(variant) {
  HISTOCNN_CHECK(variant == 0, "only efficientnet_b0 is implemented, got b{}", variant);
  // torchvision's B0 stages: expand ratio, kernel, stride, in, out, layers.
  const int64_t stages[7][6] = {{1, 3, 1, 32, 16, 1},  {6, 3, 2, 16, 24, 2},  {6, 5, 2, 24, 40, 2},
                                {6, 3, 2, 40, 80, 3},  {6, 5, 1, 80, 112, 3}, {6, 5, 2, 112, 192, 4},
                                {6, 3, 1, 192, 320, 1}};
  const double stochastic_depth = 0.2;
  int64_t total = 0;
  for (const auto& s : stages) total += s[5];
  features = torch::nn::Sequential();
  features->push_back(ConvNormAct(ConvNormActOptions(3, 32, 3).stride(2).act(Act::SiLU).tf_padding(tf_padding)));
  int64_t block_id = 0;
  for (const auto& s : stages) {
    auto stage = detail::Seq();
    for (int64_t i = 0; i < s[5]; ++i) {
      const double p = stochastic_depth * static_cast<double>(block_id++) / static_cast<double>(total);
      stage->push_back(MBConv(s[0], s[1], i == 0 ? s[2] : 1, i == 0 ? s[3] : s[4], s[4], p, tf_padding));
    }
    features->push_back(stage);
  }
  features->push_back(ConvNormAct(ConvNormActOptions(320, 1280, 1).act(Act::SiLU).tf_padding(tf_padding)));
  register_module("features", features);
  detail::init_torchvision(*this);
}

torch::Tensor EfficientNetImpl::compute_features(torch::Tensor x) { return forward_tapped(*features, "features", x); }

}  // namespace histocnn::models
