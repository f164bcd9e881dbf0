#include "histocnn/models/resnet.h"

#include "histocnn/core/error.h"
#include "layers.h"

#include <torch/torch.h>

namespace histocnn::models {

namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0, bool bias = false) {
  return Conv2d(Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(bias));
}

// torchvision's BasicBlock (ResNet-18/34).
class BasicBlockImpl : public torch::nn::Module {
 public:
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride) {
    conv1 = register_module("conv1", conv(in, planes, 3, stride, 1));
    bn1 = register_module("bn1", BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1));
    bn2 = register_module("bn2", BatchNorm2d(planes));
    if (stride != 1 || in != planes) {
      downsample = register_module("downsample", torch::nn::Sequential(conv(in, planes, 1, stride), BatchNorm2d(planes)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    // In place on fresh BatchNorm outputs, as torchvision's inplace ReLUs (autograd-safe: neither
    // BatchNorm's nor ReLU's backward needs the overwritten values).
    auto y = bn1->forward(conv1->forward(x)).relu_();
    y = bn2->forward(conv2->forward(y));
    return y.add_(downsample ? downsample->forward(x) : x).relu_();
  }
  Conv2d conv1{nullptr}, conv2{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

// torchvision's Bottleneck (v1.5: the stride sits in the 3x3 convolution).
class BottleneckImpl : public torch::nn::Module {
 public:
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride) {
    const int64_t out = planes * 4;
    conv1 = register_module("conv1", conv(in, planes, 1));
    bn1 = register_module("bn1", BatchNorm2d(planes));
    conv2 = register_module("conv2", conv(planes, planes, 3, stride, 1));
    bn2 = register_module("bn2", BatchNorm2d(planes));
    conv3 = register_module("conv3", conv(planes, out, 1));
    bn3 = register_module("bn3", BatchNorm2d(out));
    if (stride != 1 || in != out) {
      downsample = register_module("downsample", torch::nn::Sequential(conv(in, out, 1, stride), BatchNorm2d(out)));
    }
  }
  torch::Tensor forward(torch::Tensor x) {
    auto y = bn1->forward(conv1->forward(x)).relu_();
    y = bn2->forward(conv2->forward(y)).relu_();
    y = bn3->forward(conv3->forward(y));
    return y.add_(downsample ? downsample->forward(x) : x).relu_();
  }
  Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

// Keras' block2 (pre-activation bottleneck). Keras uses epsilon 1.001e-5 and gives the shortcut
// and the last 1x1 convolution a bias.
BatchNorm2d keras_bn(int64_t c) { return BatchNorm2d(torch::nn::BatchNorm2dOptions(c).eps(1.001e-5)); }

class PreActBottleneckImpl : public torch::nn::Module {
 public:
  PreActBottleneckImpl(int64_t in, int64_t filters, int64_t stride, bool conv_shortcut) : stride_(stride) {
    preact = register_module("preact", keras_bn(in));
    if (conv_shortcut) downsample = register_module("downsample", conv(in, 4 * filters, 1, stride, 0, true));
    conv1 = register_module("conv1", conv(in, filters, 1));
    bn1 = register_module("bn1", keras_bn(filters));
    conv2 = register_module("conv2", conv(filters, filters, 3, stride, 1));
    bn2 = register_module("bn2", keras_bn(filters));
    conv3 = register_module("conv3", conv(filters, 4 * filters, 1, 1, 0, true));
  }
  torch::Tensor forward(torch::Tensor x) {
    auto pre = preact->forward(x).relu_();
    torch::Tensor shortcut;
    if (downsample) {
      shortcut = downsample->forward(pre);
    } else if (stride_ > 1) {
      shortcut = torch::max_pool2d(x, {1, 1}, {stride_, stride_});  // Keras' MaxPooling2D(1, strides)
    } else {
      shortcut = x;
    }
    auto y = bn1->forward(conv1->forward(pre)).relu_();
    y = bn2->forward(conv2->forward(y)).relu_();
    return conv3->forward(y).add_(shortcut);
  }
  BatchNorm2d preact{nullptr}, bn1{nullptr}, bn2{nullptr};
  Conv2d downsample{nullptr}, conv1{nullptr}, conv2{nullptr}, conv3{nullptr};

 private:
  int64_t stride_;
};
TORCH_MODULE(PreActBottleneck);

}  // namespace

ResNetImpl::ResNetImpl(ResNetOptions options) : options_(options) {
  const int64_t depth = options.depth();
  HISTOCNN_CHECK(depth == 18 || depth == 50, "resnet depth must be 18 or 50, got {}", depth);
  HISTOCNN_CHECK(options.num_classes() >= 0, "resnet num_classes must be >= 0, got {}", options.num_classes());
  const bool bottleneck = depth == 50;
  const int64_t blocks[4] = {bottleneck ? 3 : 2, bottleneck ? 4 : 2, bottleneck ? 6 : 2, bottleneck ? 3 : 2};
  conv1 = register_module("conv1", conv(3, 64, 7, 2, 3));
  bn1 = register_module("bn1", BatchNorm2d(64));
  int64_t in = 64;
  torch::nn::Sequential* layers[4] = {&layer1, &layer2, &layer3, &layer4};
  for (int s = 0; s < 4; ++s) {
    const int64_t planes = 64 << s;
    auto layer = torch::nn::Sequential();
    for (int64_t b = 0; b < blocks[s]; ++b) {
      const int64_t stride = (b == 0 && s > 0) ? 2 : 1;
      if (bottleneck) {
        layer->push_back(Bottleneck(in, planes, stride));
        in = planes * 4;
      } else {
        layer->push_back(BasicBlock(in, planes, stride));
        in = planes;
      }
    }
    *layers[s] = register_module("layer" + std::to_string(s + 1), layer);
  }
  channels_ = in;
  if (options.num_classes() > 0) fc = register_module("fc", torch::nn::Linear(in, options.num_classes()));
  detail::init_torchvision(*this);
  if (fc) {
    // torchvision leaves nn.Linear at PyTorch's default (uniform +-1/sqrt(fan_in)).
    fc->reset_parameters();
  }
}

torch::Tensor ResNetImpl::compute_features(torch::Tensor x) {
  x = tap("bn1", bn1->forward(tap("conv1", conv1->forward(x)))).relu_();
  x = torch::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
  x = forward_tapped(*layer1, "layer1", x);
  x = forward_tapped(*layer2, "layer2", x);
  x = forward_tapped(*layer3, "layer3", x);
  return forward_tapped(*layer4, "layer4", x);
}

torch::Tensor ResNetImpl::logits(torch::Tensor x) {
  HISTOCNN_CHECK(fc, "this {} was built without a top (num_classes = 0)", name());
  return fc->forward(BackboneImpl::forward(x));
}

ResNetV2Impl::ResNetV2Impl(ResNetV2Options options) : options_(options) {
  const int64_t depth = options.depth();
  HISTOCNN_CHECK(depth == 50 || depth == 152, "resnet v2 depth must be 50 or 152, got {}", depth);
  const int64_t blocks[4] = {3, depth == 50 ? 4 : 8, depth == 50 ? 6 : 36, 3};
  conv1 = register_module("conv1", conv(3, 64, 7, 2, 3, /*bias=*/true));
  int64_t in = 64;
  torch::nn::Sequential* layers[4] = {&layer1, &layer2, &layer3, &layer4};
  for (int s = 0; s < 4; ++s) {
    const int64_t filters = 64 << s;
    auto layer = torch::nn::Sequential();
    for (int64_t b = 0; b < blocks[s]; ++b) {
      // Keras' stack2 downsamples in the last block of each stage but the last stage.
      const int64_t stride = (b == blocks[s] - 1 && s < 3) ? 2 : 1;
      layer->push_back(PreActBottleneck(in, filters, stride, /*conv_shortcut=*/b == 0));
      in = 4 * filters;
    }
    *layers[s] = register_module("layer" + std::to_string(s + 1), layer);
  }
  post_bn = register_module("post_bn", keras_bn(2048));
  detail::init_torchvision(*this);
}

torch::Tensor ResNetV2Impl::compute_features(torch::Tensor x) {
  x = tap("conv1", conv1->forward(x));
  // Keras pads with zeros before this pool, and the stem has no activation, so zeros can win.
  x = torch::max_pool2d(torch::constant_pad_nd(x, {1, 1, 1, 1}, 0.0), {3, 3}, {2, 2});
  x = forward_tapped(*layer1, "layer1", x);
  x = forward_tapped(*layer2, "layer2", x);
  x = forward_tapped(*layer3, "layer3", x);
  x = forward_tapped(*layer4, "layer4", x);
  // Keras' post_relu has no module here: the feature layer "post_bn" includes it.
  return tap("post_bn", post_bn->forward(x).relu_());
}

}  // namespace histocnn::models
