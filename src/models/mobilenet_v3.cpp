#include "histocnn/models/mobilenet_v3.h"

#include "layers.h"

#include <torch/torch.h>

namespace histocnn::models {

namespace {

using detail::Act;
using detail::ConvNormAct;
using detail::ConvNormActOptions;

// torchvision: BatchNorm2d(eps=0.001, momentum=0.01) throughout MobileNetV3.
ConvNormActOptions cna(int64_t in, int64_t out, int64_t kernel, Act act, bool tf) {
  return ConvNormActOptions(in, out, kernel).act(act).eps(1e-3).momentum(0.01).tf_padding(tf);
}

struct BlockConfig {
  int64_t in, kernel, expanded, out;
  bool se;
  bool hardswish;
  int64_t stride;
};

class InvertedResidualV3Impl : public torch::nn::Module {
 public:
  InvertedResidualV3Impl(const BlockConfig& c, bool tf) : use_residual_(c.stride == 1 && c.in == c.out) {
    const Act act = c.hardswish ? Act::Hardswish : Act::ReLU;
    block = torch::nn::Sequential();
    if (c.expanded != c.in) block->push_back(ConvNormAct(cna(c.in, c.expanded, 1, act, tf)));
    block->push_back(ConvNormAct(cna(c.expanded, c.expanded, c.kernel, act, tf).stride(c.stride).groups(c.expanded)));
    if (c.se) {
      block->push_back(detail::SqueezeExcitation(c.expanded, detail::make_divisible(c.expanded / 4, 8), Act::ReLU,
                                                 Act::Hardsigmoid));
    }
    block->push_back(ConvNormAct(cna(c.expanded, c.out, 1, Act::None, tf)));
    register_module("block", block);
  }
  torch::Tensor forward(torch::Tensor x) {
    auto y = block->forward(x);
    return use_residual_ ? y.add_(x) : y;  // y is a fresh BatchNorm output
  }
  torch::nn::Sequential block{nullptr};

 private:
  bool use_residual_;
};
TORCH_MODULE(InvertedResidualV3);

// torchvision's _mobilenet_v3_conf (width 1.0, no dilation): in, kernel, expanded, out, SE, HS, stride.
const std::vector<BlockConfig> kLarge = {
    {16, 3, 16, 16, false, false, 1},   {16, 3, 64, 24, false, false, 2},   {24, 3, 72, 24, false, false, 1},
    {24, 5, 72, 40, true, false, 2},    {40, 5, 120, 40, true, false, 1},   {40, 5, 120, 40, true, false, 1},
    {40, 3, 240, 80, false, true, 2},   {80, 3, 200, 80, false, true, 1},   {80, 3, 184, 80, false, true, 1},
    {80, 3, 184, 80, false, true, 1},   {80, 3, 480, 112, true, true, 1},   {112, 3, 672, 112, true, true, 1},
    {112, 5, 672, 160, true, true, 2},  {160, 5, 960, 160, true, true, 1},  {160, 5, 960, 160, true, true, 1},
};
const std::vector<BlockConfig> kSmall = {
    {16, 3, 16, 16, true, false, 2},  {16, 3, 72, 24, false, false, 2}, {24, 3, 88, 24, false, false, 1},
    {24, 5, 96, 40, true, true, 2},   {40, 5, 240, 40, true, true, 1},  {40, 5, 240, 40, true, true, 1},
    {40, 5, 120, 48, true, true, 1},  {48, 5, 144, 48, true, true, 1},  {48, 5, 288, 96, true, true, 2},
    {96, 5, 576, 96, true, true, 1},  {96, 5, 576, 96, true, true, 1},
};

}  // namespace

MobileNetV3Impl::MobileNetV3Impl(bool large, bool tf_padding) : large_(large) {
  const auto& blocks = large ? kLarge : kSmall;
  features = torch::nn::Sequential();
  features->push_back(ConvNormAct(cna(3, 16, 3, Act::Hardswish, tf_padding).stride(2)));
  for (const auto& c : blocks) features->push_back(InvertedResidualV3(c, tf_padding));
  const int64_t last_in = blocks.back().out;
  channels_ = 6 * last_in;
  features->push_back(ConvNormAct(cna(last_in, channels_, 1, Act::Hardswish, tf_padding)));
  register_module("features", features);
  detail::init_torchvision(*this);
}

torch::Tensor MobileNetV3Impl::compute_features(torch::Tensor x) { return forward_tapped(*features, "features", x); }

}  // namespace histocnn::models
