#pragma once
// ResNets without their top: torchvision's ResNet-18/50 (He et al., 2015, v1.5: stride in the 3x3
// convolution) with torchvision's parameter names, and Keras Applications' pre-activation
// ResNet50V2/152V2 (He et al., 2016), whose parameter counts equal Keras' (23,564,800 and
// 58,331,648 with BatchNorm statistics).
//
//   auto r50 = histocnn::models::make_backbone("resnet50");          // [N, 2048, h/32, w/32]
//   histocnn::models::ResNet r18(histocnn::models::ResNetOptions().depth(18).num_classes(1000));
//   torch::Tensor logits = r18->logits(x);
//
// ResNetV2 follows the Keras graph exactly (downsampling in the last block of a stage, zero padding
// before the stem's max pool, biases where Keras has them); its names mirror Keras' layers:
// conv{S}_block{B}_{preact_bn,1_conv,1_bn,2_conv,2_bn,3_conv,0_conv} are
// layer{S-1}.{B-1}.{preact,conv1,bn1,conv2,bn2,conv3,downsample}, post_bn is post_bn.
#include "histocnn/models/backbone.h"

#include <algorithm>

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace histocnn::models {

struct ResNetOptions {
  /// 18 or 50 (torchvision's resnet18 / resnet50).
  TORCH_ARG(int64_t, depth) = 50;
  /// 0: no top (a backbone); otherwise torchvision's fc layer.
  TORCH_ARG(int64_t, num_classes) = 0;
};

class ResNetImpl : public BackboneImpl {
 public:
  explicit ResNetImpl(ResNetOptions options = {});
  torch::Tensor compute_features(torch::Tensor x) override;
  /// Channels-last pays for ResNets only from 80 px up (docs/benchmarks.md, "Channels-last on the
  /// CPU", has the measurements and the command).
  bool prefers_channels_last(int64_t height, int64_t width) const override { return std::min(height, width) >= 80; }
  /// The ImageNet logits; requires num_classes > 0.
  torch::Tensor logits(torch::Tensor x);
  int64_t feature_channels() const override { return channels_; }
  std::string name() const override { return "resnet" + std::to_string(options_.depth()); }
  std::string feature_layer() const override { return "layer4"; }
  std::vector<std::string> top_prefixes() const override { return {"fc."}; }

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::Linear fc{nullptr};

 private:
  ResNetOptions options_;
  int64_t channels_ = 0;
};
TORCH_MODULE(ResNet);

struct ResNetV2Options {
  /// 50 or 152 (Keras' ResNet50V2 / ResNet152V2).
  TORCH_ARG(int64_t, depth) = 50;
};

class ResNetV2Impl : public BackboneImpl {
 public:
  explicit ResNetV2Impl(ResNetV2Options options = {});
  torch::Tensor compute_features(torch::Tensor x) override;
  /// Channels-last pays for ResNets only from 80 px up (docs/benchmarks.md, "Channels-last on the
  /// CPU", has the measurements and the command).
  bool prefers_channels_last(int64_t height, int64_t width) const override { return std::min(height, width) >= 80; }
  int64_t feature_channels() const override { return 2048; }
  std::string name() const override { return "resnet" + std::to_string(options_.depth()) + "v2"; }
  std::string feature_layer() const override { return "post_bn"; }
  /// Keras' ResNetV2 weights expect x / 127.5 - 1.
  std::string normalisation() const override { return "inception"; }

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::BatchNorm2d post_bn{nullptr};

 private:
  ResNetV2Options options_;
};
TORCH_MODULE(ResNetV2);

}  // namespace histocnn::models
