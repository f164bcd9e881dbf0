#pragma once
// Building blocks shared by the backbone families (private to src/models). Module names follow
// torchvision's (Conv2dNormActivation registers "0" conv and "1" norm), so weights load by name.
#include <torch/torch.h>

#include <string>

namespace histocnn::models::detail {

enum class Act { None, ReLU, ReLU6, Hardswish, Hardsigmoid, SiLU, Sigmoid };

torch::Tensor activate(const torch::Tensor& x, Act act);
/// The same, overwriting `x` where that is safe: always for ReLU (its backward needs only the
/// result), for the others only without gradient tracking. `x` must be a fresh temporary.
torch::Tensor activate_(torch::Tensor x, Act act);

/// TensorFlow "SAME" padding for a (kh, kw) window with the given stride: output = ceil(in /
/// stride), the odd pixel goes after. `value` is 0 for convolutions, -inf for max pooling.
torch::Tensor tf_same_pad(const torch::Tensor& x, int64_t kh, int64_t kw, int64_t stride, double value = 0.0);

/// Keras/TF max pooling with padding="same" (padded cells never win).
torch::Tensor tf_same_max_pool(const torch::Tensor& x, int64_t kernel, int64_t stride);

struct ConvNormActOptions {
  ConvNormActOptions(int64_t in, int64_t out, int64_t kernel) : in_(in), out_(out), kernel_(kernel) {}
  TORCH_ARG(int64_t, in);
  TORCH_ARG(int64_t, out);
  TORCH_ARG(int64_t, kernel) = 3;
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, groups) = 1;
  TORCH_ARG(Act, act) = Act::ReLU;
  TORCH_ARG(double, eps) = 1e-5;
  TORCH_ARG(double, momentum) = 0.1;
  /// TensorFlow "SAME" padding instead of PyTorch's symmetric (kernel - 1) / 2.
  TORCH_ARG(bool, tf_padding) = false;
};

/// torchvision's Conv2dNormActivation: Conv2d ("0", no bias) + BatchNorm2d ("1") + activation.
class ConvNormActImpl : public torch::nn::Module {
 public:
  explicit ConvNormActImpl(const ConvNormActOptions& options);
  torch::Tensor forward(torch::Tensor x);

  torch::nn::Conv2d conv{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};

 private:
  ConvNormActOptions options_;
};
TORCH_MODULE(ConvNormAct);

/// torchvision.ops.SqueezeExcitation: avgpool -> fc1 (1x1 conv) -> act -> fc2 -> scale_act, times x.
class SqueezeExcitationImpl : public torch::nn::Module {
 public:
  SqueezeExcitationImpl(int64_t channels, int64_t squeeze, Act act, Act scale_act);
  torch::Tensor forward(torch::Tensor x);

  torch::nn::Conv2d fc1{nullptr}, fc2{nullptr};

 private:
  Act act_, scale_act_;
};
TORCH_MODULE(SqueezeExcitation);

/// A parameter-free module wrapping an activation, so Sequential indices match torchvision's.
class ActivationImpl : public torch::nn::Module {
 public:
  explicit ActivationImpl(Act act) : act_(act) {}
  torch::Tensor forward(torch::Tensor x) { return activate(x, act_); }

 private:
  Act act_;
};
TORCH_MODULE(Activation);

/// A Sequential that can itself sit inside a Sequential (torchvision nests them: features.1.0...);
/// LibTorch's Sequential::forward is a template, which AnyModule cannot hold.
class SeqImpl : public torch::nn::SequentialImpl {
 public:
  using torch::nn::SequentialImpl::SequentialImpl;
  torch::Tensor forward(torch::Tensor x) { return torch::nn::SequentialImpl::forward(std::move(x)); }
};
TORCH_MODULE(Seq);

/// torchvision's _make_divisible: round to a multiple of `divisor`, never down by more than 10 %.
int64_t make_divisible(double value, int64_t divisor = 8);

/// torchvision's usual initialisation: Kaiming-normal (fan_out) convolutions with zero bias,
/// BatchNorm weight 1 and bias 0, Linear N(0, 0.01) with zero bias.
void init_torchvision(torch::nn::Module& module);

}  // namespace histocnn::models::detail
