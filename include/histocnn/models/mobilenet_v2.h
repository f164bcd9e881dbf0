#pragma once
// MobileNetV2 (Sandler et al., 2018) with torchvision's module and parameter names.
//
//   histocnn::models::MobileNetV2 net(histocnn::models::MobileNetV2Options().num_classes(1000));
//   histocnn::models::load_weights(*net, "mobilenet_v2_1.0_224.torchvision.safetensors");
//   torch::Tensor logits = net->logits(x);    // [N, 1000]
//
// As a backbone (num_classes = 0, the default) forward() gives [N, 1280] pooled features.
#include "histocnn/models/backbone.h"

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace histocnn::models {

/// Conv2d ("0") + BatchNorm2d ("1") + optional ReLU6, torchvision's Conv2dNormActivation.
class ConvBNActImpl : public torch::nn::Module {
 public:
  ConvBNActImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, bool relu6,
                bool tf_padding);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
  int64_t kernel_, stride_;
  bool relu6_, tf_padding_;
};
TORCH_MODULE(ConvBNAct);

class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(int64_t in, int64_t out, int64_t stride, int64_t expand_ratio, bool tf_padding);
  torch::Tensor forward(torch::Tensor x);

 private:
  torch::nn::Sequential conv{nullptr};
  bool use_residual_;
};
TORCH_MODULE(InvertedResidual);

struct MobileNetV2Options {
  /// 0: no top (a backbone); otherwise a Dropout + Linear classifier as in torchvision.
  TORCH_ARG(int64_t, num_classes) = 0;
  TORCH_ARG(double, width_mult) = 1.0;
  TORCH_ARG(double, dropout) = 0.2;
  TORCH_ARG(bool, tf_padding) = false;
};

class MobileNetV2Impl : public BackboneImpl {
 public:
  explicit MobileNetV2Impl(MobileNetV2Options options = {});
  torch::Tensor compute_features(torch::Tensor x) override;
  /// The ImageNet logits; requires num_classes > 0.
  torch::Tensor logits(torch::Tensor x);
  int64_t feature_channels() const override { return last_channels_; }
  std::string name() const override { return "mobilenet_v2"; }
  std::vector<std::string> top_prefixes() const override { return {"classifier."}; }

  torch::nn::Sequential features{nullptr};
  torch::nn::Sequential classifier{nullptr};

 private:
  MobileNetV2Options options_;
  int64_t last_channels_ = 1280;
};
TORCH_MODULE(MobileNetV2);

}  // namespace histocnn::models
