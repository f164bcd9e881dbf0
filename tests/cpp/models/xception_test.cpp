#include "histocnn/models/inception_resnet_v2.h"
#include "histocnn/models/weights.h"
#include "histocnn/models/xception.h"
// White-box: the private layer helpers of src/models (exported from the library).
#include "../../../src/models/layers.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

TEST_CASE("Xception reproduces Keras' parameter count under timm's names", "[models]") {
  models::Xception net;
  CHECK(models::count_parameters(*net, true) == 20861480);  // Keras Xception(include_top=False)
  CHECK(net->normalisation() == "inception");
  auto sd = models::state_dict(*net);
  CHECK(sd.at("conv1.weight").sizes() == torch::IntArrayRef({32, 3, 3, 3}));
  CHECK(sd.at("block1.skip.weight").sizes() == torch::IntArrayRef({128, 64, 1, 1}));
  CHECK(sd.at("block1.rep.0.conv1.weight").sizes() == torch::IntArrayRef({64, 1, 3, 3}));  // no leading ReLU
  CHECK(sd.at("block1.rep.0.pointwise.weight").sizes() == torch::IntArrayRef({128, 64, 1, 1}));
  CHECK(sd.at("block2.rep.1.pointwise.weight").sizes() == torch::IntArrayRef({256, 128, 1, 1}));
  CHECK(sd.at("block4.rep.8.running_mean").sizes() == torch::IntArrayRef({728}));
  CHECK(sd.count("block4.skip.weight") == 0);
  CHECK(sd.at("block12.rep.4.pointwise.weight").sizes() == torch::IntArrayRef({1024, 728, 1, 1}));
  CHECK(sd.at("conv4.pointwise.weight").sizes() == torch::IntArrayRef({2048, 1536, 1, 1}));
}

TEST_CASE("Xception gives Keras' feature-map sizes", "[models]") {
  models::Xception net;
  net->eval();
  torch::NoGradGuard no_grad;
  // 71 (Keras' minimum) -> 35 -> 33 -> 17 -> 9 -> 5 -> 3 with TF "same" pools; 50 -> 24 -> 22 -> 11 -> 6 -> 3 -> 2.
  CHECK(net->forward_features(torch::randn({1, 3, 71, 71})).sizes() == torch::IntArrayRef({1, 2048, 3, 3}));
  CHECK(net->forward_features(torch::randn({2, 3, 50, 50})).sizes() == torch::IntArrayRef({2, 2048, 2, 2}));
  CHECK(net->forward_features(torch::randn({1, 3, 32, 32})).size(1) == 2048);
}

TEST_CASE("TF 'same' max pooling pads after, with cells that never win", "[models]") {
  // 4x4 input x[i][j] = -(4i + j + 1), 3x3 window, stride 2: TF pads one row/column after only.
  // A zero pad would turn the right and bottom maxima into 0; PyTorch's symmetric padding=1 would
  // shift the windows to start at -1.
  auto x = -torch::arange(1, 17, torch::kFloat32).view({1, 1, 4, 4});
  auto y = models::detail::tf_same_max_pool(x, 3, 2);
  REQUIRE(y.sizes() == torch::IntArrayRef({1, 1, 2, 2}));
  CHECK(y[0][0][0][0].item<float>() == -1.0f);
  CHECK(y[0][0][0][1].item<float>() == -3.0f);
  CHECK(y[0][0][1][0].item<float>() == -9.0f);
  CHECK(y[0][0][1][1].item<float>() == -11.0f);
  // Odd size: 5 -> 3 with one pixel of padding on each side.
  CHECK(models::detail::tf_same_max_pool(torch::zeros({1, 1, 5, 5}), 3, 2).sizes() == torch::IntArrayRef({1, 1, 3, 3}));
}

TEST_CASE("Inception-ResNet-v2 reproduces Keras' parameter count under timm's names", "[models]") {
  models::InceptionResNetV2 net;
  CHECK(models::count_parameters(*net, true) == 54336736);  // Keras InceptionResNetV2(include_top=False)
  auto sd = models::state_dict(*net);
  CHECK(sd.count("conv2d_1a.bn.weight") == 0);  // Keras' BatchNormalization(scale=False)
  CHECK(sd.at("conv2d_1a.bn.bias").sizes() == torch::IntArrayRef({32}));
  CHECK(sd.at("mixed_5b.branch3.1.conv.weight").sizes() == torch::IntArrayRef({64, 192, 1, 1}));
  CHECK(sd.at("repeat.9.conv2d.weight").sizes() == torch::IntArrayRef({320, 128, 1, 1}));
  CHECK(sd.at("repeat_1.19.branch1.1.conv.weight").sizes() == torch::IntArrayRef({160, 128, 1, 7}));
  CHECK(sd.at("repeat_2.8.branch1.2.conv.weight").sizes() == torch::IntArrayRef({256, 224, 3, 1}));
  CHECK(sd.at("block8.conv2d.bias").sizes() == torch::IntArrayRef({2080}));
  CHECK(sd.at("conv2d_7b.conv.weight").sizes() == torch::IntArrayRef({1536, 2080, 1, 1}));
}

TEST_CASE("Inception-ResNet-v2 runs from 75x75 and resizes smaller patches up", "[models]") {
  models::InceptionResNetV2 net;
  net->eval();
  torch::NoGradGuard no_grad;
  CHECK(net->forward_features(torch::randn({1, 3, 75, 75})).sizes() == torch::IntArrayRef({1, 1536, 1, 1}));
  CHECK(net->forward_features(torch::randn({2, 3, 50, 50})).sizes() == torch::IntArrayRef({2, 1536, 1, 1}));
}

TEST_CASE("Inception-ResNet-v2 and Xception give Keras' 8x8 and 10x10 maps at 299", "[models][slow]") {
  torch::NoGradGuard no_grad;
  models::InceptionResNetV2 irv2;
  irv2->eval();
  CHECK(irv2->forward_features(torch::randn({1, 3, 299, 299})).sizes() == torch::IntArrayRef({1, 1536, 8, 8}));
  models::Xception xception;
  xception->eval();
  CHECK(xception->forward_features(torch::randn({1, 3, 299, 299})).sizes() == torch::IntArrayRef({1, 2048, 10, 10}));
}
