#include "histocnn/models/nasnet.h"

#include "histocnn/core/error.h"

#include <torch/torch.h>

namespace histocnn::models {

namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;

// Keras NASNet: BatchNormalization(momentum=0.9997, epsilon=1e-3); 0.9997 is 0.0003 in PyTorch's convention.
BatchNorm2d nas_bn(int64_t c) { return BatchNorm2d(torch::nn::BatchNorm2dOptions(c).eps(1e-3).momentum(3e-4)); }
Conv2d conv1x1(int64_t in, int64_t out) { return Conv2d(Conv2dOptions(in, out, 1).bias(false)); }

// Keras' imagenet_utils.correct_pad: for a stride-2 "valid" window after zero padding, pad
// kernel/2 after and kernel/2 - 1 before on even sizes (kernel/2 on both sides on odd sizes).
torch::Tensor correct_pad(const torch::Tensor& x, int64_t kernel) {
  const int64_t half = kernel / 2;
  const int64_t top = half - (x.size(2) % 2 == 0 ? 1 : 0), left = half - (x.size(3) % 2 == 0 ? 1 : 0);
  return torch::constant_pad_nd(x, {left, half, top, half}, 0.0);
}

// Keras' SeparableConv2D (depth multiplier 1, no bias): depthwise then pointwise.
class SepConvImpl : public torch::nn::Module {
 public:
  SepConvImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride) {
    // stride 1: "same" padding (odd kernels: symmetric); stride 2: padded by correct_pad outside.
    depthwise = register_module("depthwise", Conv2d(Conv2dOptions(in, in, kernel)
                                                        .stride(stride)
                                                        .padding(stride == 1 ? kernel / 2 : 0)
                                                        .groups(in)
                                                        .bias(false)));
    pointwise = register_module("pointwise", conv1x1(in, out));
  }
  torch::Tensor forward(const torch::Tensor& x) { return pointwise->forward(depthwise->forward(x)); }
  Conv2d depthwise{nullptr}, pointwise{nullptr};
};
TORCH_MODULE(SepConv);

// Keras' _separable_conv_block: ReLU, separable conv (maybe strided), BN, ReLU, separable conv, BN.
class SepBlockImpl : public torch::nn::Module {
 public:
  SepBlockImpl(int64_t in, int64_t filters, int64_t kernel, int64_t stride) : kernel_(kernel), stride_(stride) {
    separable_conv_1 = register_module("separable_conv_1", SepConv(in, filters, kernel, stride));
    separable_conv_1_bn = register_module("separable_conv_1_bn", nas_bn(filters));
    separable_conv_2 = register_module("separable_conv_2", SepConv(filters, filters, kernel, 1));
    separable_conv_2_bn = register_module("separable_conv_2_bn", nas_bn(filters));
  }
  torch::Tensor forward(const torch::Tensor& input) {
    auto x = torch::relu(input);
    if (stride_ == 2) x = correct_pad(x, kernel_);
    x = torch::relu(separable_conv_1_bn->forward(separable_conv_1->forward(x)));
    return separable_conv_2_bn->forward(separable_conv_2->forward(x));
  }
  SepConv separable_conv_1{nullptr}, separable_conv_2{nullptr};
  BatchNorm2d separable_conv_1_bn{nullptr}, separable_conv_2_bn{nullptr};

 private:
  int64_t kernel_, stride_;
};
TORCH_MODULE(SepBlock);

// TF "same" 3x3 average pooling, stride 1: the padding is not counted in the average.
torch::Tensor avg_same(const torch::Tensor& x) {
  return torch::avg_pool2d(x, {3, 3}, {1, 1}, {1, 1}, /*ceil_mode=*/false, /*count_include_pad=*/false);
}

// Cells: Keras' _normal_a_cell / _reduction_a_cell, with _adjust_block bringing the previous
// path `p` to the shape of the input `ip`. Which adjustment applies depends on the shapes, which
// are known when the network is built (the spatial ratio between p and ip is fixed by the graph).
enum class Adjust { None, Reduction, Projection };

class CellBase : public torch::nn::Module {
 protected:
  void build_adjust(Adjust kind, int64_t p_channels, int64_t filters) {
    adjust_ = kind;
    if (kind == Adjust::Reduction) {
      adjust_conv_1 = register_module("adjust_conv_1", conv1x1(p_channels, filters / 2));
      adjust_conv_2 = register_module("adjust_conv_2", conv1x1(p_channels, filters / 2));
      adjust_bn = register_module("adjust_bn", nas_bn(filters / 2 * 2));
    } else if (kind == Adjust::Projection) {
      adjust_conv_projection = register_module("adjust_conv_projection", conv1x1(p_channels, filters));
      adjust_bn = register_module("adjust_bn", nas_bn(filters));
    }
  }
  torch::Tensor adjust(torch::Tensor p, const torch::Tensor& ip) {
    if (!p.defined()) return ip;
    if (adjust_ == Adjust::Reduction) {
      HISTOCNN_CHECK(p.size(3) != ip.size(3), "nasnet_mobile: the input is too small (a reduction cell saw a 1x1 map); "
                     "use at least 32x32");
      p = torch::relu(p);
      using torch::indexing::None;
      using torch::indexing::Slice;
      // Path 1: 1x1 average pool with stride 2 = every other pixel. Path 2: the same, shifted by
      // one pixel (Keras pads bottom/right with zeros and crops top/left).
      auto p1 = adjust_conv_1->forward(p.index({Slice(), Slice(), Slice(None, None, 2), Slice(None, None, 2)}));
      auto shifted = torch::constant_pad_nd(p, {0, 1, 0, 1}, 0.0).index({Slice(), Slice(), Slice(1, None), Slice(1, None)});
      auto p2 = adjust_conv_2->forward(shifted.index({Slice(), Slice(), Slice(None, None, 2), Slice(None, None, 2)}));
      return adjust_bn->forward(torch::cat({p1, p2}, 1));
    }
    if (adjust_ == Adjust::Projection) return adjust_bn->forward(adjust_conv_projection->forward(torch::relu(p)));
    return p;
  }
  Adjust adjust_ = Adjust::None;
  Conv2d adjust_conv_1{nullptr}, adjust_conv_2{nullptr}, adjust_conv_projection{nullptr};
  BatchNorm2d adjust_bn{nullptr};
  Conv2d conv_1{nullptr};
  BatchNorm2d bn_1{nullptr};

 public:
  virtual torch::Tensor forward(const torch::Tensor& ip, const torch::Tensor& p) = 0;
};

class NormalCell : public CellBase {
 public:
  NormalCell(int64_t ip_channels, int64_t p_channels, Adjust adjust_kind, int64_t filters) {
    build_adjust(adjust_kind, p_channels, filters);
    conv_1 = register_module("conv_1", conv1x1(ip_channels, filters));
    bn_1 = register_module("bn_1", nas_bn(filters));
    left1 = register_module("left1", SepBlock(filters, filters, 5, 1));
    right1 = register_module("right1", SepBlock(filters, filters, 3, 1));
    left2 = register_module("left2", SepBlock(filters, filters, 5, 1));
    right2 = register_module("right2", SepBlock(filters, filters, 3, 1));
    left5 = register_module("left5", SepBlock(filters, filters, 3, 1));
  }
  torch::Tensor forward(const torch::Tensor& ip, const torch::Tensor& p_in) override {
    auto p = adjust(p_in, ip);
    auto h = bn_1->forward(conv_1->forward(torch::relu(ip)));
    auto x1 = left1->forward(h) + right1->forward(p);
    auto x2 = left2->forward(p) + right2->forward(p);
    auto x3 = avg_same(h) + p;
    auto x4 = avg_same(p) + avg_same(p);
    auto x5 = left5->forward(h) + h;
    return torch::cat({p, x1, x2, x3, x4, x5}, 1);
  }
  SepBlock left1{nullptr}, right1{nullptr}, left2{nullptr}, right2{nullptr}, left5{nullptr};
};

class ReductionCell : public CellBase {
 public:
  ReductionCell(int64_t ip_channels, int64_t p_channels, Adjust adjust_kind, int64_t filters) {
    build_adjust(adjust_kind, p_channels, filters);
    // Without a previous path, Keras uses ip itself as p.
    const int64_t pc = adjust_kind == Adjust::None ? p_channels : filters;
    conv_1 = register_module("conv_1", conv1x1(ip_channels, filters));
    bn_1 = register_module("bn_1", nas_bn(filters));
    left1 = register_module("left1", SepBlock(filters, filters, 5, 2));
    right1 = register_module("right1", SepBlock(pc, filters, 7, 2));
    right2 = register_module("right2", SepBlock(pc, filters, 7, 2));
    right3 = register_module("right3", SepBlock(pc, filters, 5, 2));
    left4 = register_module("left4", SepBlock(filters, filters, 3, 1));
  }
  torch::Tensor forward(const torch::Tensor& ip, const torch::Tensor& p_in) override {
    auto p = adjust(p_in, ip);
    auto h = bn_1->forward(conv_1->forward(torch::relu(ip)));
    auto h3 = correct_pad(h, 3);  // zero padding: h can be negative, so the zeros take part
    auto x1 = left1->forward(h) + right1->forward(p);
    auto x2 = torch::max_pool2d(h3, {3, 3}, {2, 2}) + right2->forward(p);
    auto x3 = torch::avg_pool2d(h3, {3, 3}, {2, 2}) + right3->forward(p);
    auto x4 = avg_same(x1) + x2;
    auto x5 = left4->forward(x1) + torch::max_pool2d(h3, {3, 3}, {2, 2});
    return torch::cat({x2, x3, x4, x5}, 1);
  }
  SepBlock left1{nullptr}, right1{nullptr}, right2{nullptr}, right3{nullptr}, left4{nullptr};
};

}  // namespace

NASNetMobileImpl::NASNetMobileImpl() {
  // Keras NASNetMobile: penultimate_filters 1056 -> filters 44, 4 normal cells per stage,
  // stem 32 filters, filter multiplier 2, skip_reduction False.
  const int64_t filters = 44, blocks = 4;
  register_module("stem_conv1", Conv2d(Conv2dOptions(3, 32, 3).stride(2).bias(false)));
  register_module("stem_bn1", nas_bn(32));
  auto cells = register_module("cells", std::make_shared<torch::nn::Module>("cells"));
  // Channels of x (the cell input) and p (the previous input), and whether p is spatially larger.
  int64_t x_ch = 32, p_ch = 32;
  bool have_p = false, p_larger = false;
  auto add = [&](const std::string& name, bool reduction, int64_t f) {
    Adjust kind = Adjust::None;
    if (have_p) kind = p_larger ? Adjust::Reduction : (p_ch != f ? Adjust::Projection : Adjust::None);
    std::shared_ptr<CellBase> cell;
    if (reduction) {
      cell = std::make_shared<ReductionCell>(x_ch, have_p ? p_ch : x_ch, kind, f);
    } else {
      cell = std::make_shared<NormalCell>(x_ch, p_ch, kind, f);
    }
    cells->register_module(name, cell);
    cells_.push_back(cell);
    // The next cell's p is this cell's input; a reduction cell halves the size of x.
    p_ch = x_ch;
    p_larger = reduction;
    have_p = true;
    x_ch = (reduction ? 4 : 6) * f;
  };
  add("reduction_stem_1", true, filters / 4);
  add("reduction_stem_2", true, filters / 2);
  for (int64_t i = 0; i < blocks; ++i) add("normal_" + std::to_string(i), false, filters);
  add("reduction_reduce_" + std::to_string(blocks), true, filters * 2);
  for (int64_t i = 0; i < blocks; ++i) add("normal_" + std::to_string(blocks + i + 1), false, filters * 2);
  add("reduction_reduce_" + std::to_string(2 * blocks), true, filters * 4);
  for (int64_t i = 0; i < blocks; ++i) add("normal_" + std::to_string(2 * blocks + i + 1), false, filters * 4);
  HISTOCNN_CHECK(x_ch == 1056, "nasnet_mobile: internal channel bookkeeping gave {}", x_ch);
  for (auto& m : modules(false)) {
    if (auto* c = m->as<Conv2d>()) torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanIn);  // he_normal
  }
}

torch::Tensor NASNetMobileImpl::compute_features(torch::Tensor x) {
  auto children = named_children();
  x = tap("stem_conv1", children["stem_conv1"]->as<Conv2d>()->forward(x));
  x = tap("stem_bn1", children["stem_bn1"]->as<torch::nn::BatchNorm2d>()->forward(x));
  const auto cell_names = tapping() ? children["cells"]->named_children().keys() : std::vector<std::string>{};
  torch::Tensor p;
  for (size_t i = 0; i < cells_.size(); ++i) {
    auto out = std::static_pointer_cast<CellBase>(cells_[i])->forward(x, p);
    if (tapping()) out = tap("cells." + cell_names.at(i), out);
    p = x;
    x = out;
  }
  // Keras' final Activation has no module here: the feature layer "cells" includes it.
  return tap("cells", torch::relu(x));
}

}  // namespace histocnn::models
