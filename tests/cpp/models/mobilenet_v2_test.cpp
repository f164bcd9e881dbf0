#include "histocnn/models/mobilenet_v2.h"
#include "histocnn/models/weights.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

namespace {

// The decoder-free reference input of the weights' SOURCES.md: x[0,c,h,w] = ((7c+3h+5w) mod 17)/8 - 1.
torch::Tensor reference_input() {
  auto c = torch::arange(3).view({3, 1, 1});
  auto h = torch::arange(224).view({1, 224, 1});
  auto w = torch::arange(224).view({1, 1, 224});
  return ((7 * c + 3 * h + 5 * w) % 17).to(torch::kFloat32).div(8.0).sub(1.0).unsqueeze(0);
}

void check_reference(bool tf_padding, double expected_sum, const std::vector<int64_t>& top_idx,
                     const std::vector<double>& top_val) {
  auto file = test::shared_weight("mobilenet_v2_1.0_224_quant/mobilenet_v2_1.0_224.torchvision.safetensors");
  models::MobileNetV2 net(models::MobileNetV2Options().num_classes(1000).tf_padding(tf_padding));
  auto report = models::load_weights(*net, file);
  REQUIRE(report.complete());
  REQUIRE(report.loaded.size() == 314);
  net->eval();
  torch::NoGradGuard no_grad;
  auto logits = net->logits(reference_input())[0];
  CHECK(logits.sum().item<double>() == Approx(expected_sum).margin(2e-2));
  auto top = logits.topk(5);
  auto values = std::get<0>(top), indices = std::get<1>(top);
  for (int i = 0; i < 5; ++i) {
    CHECK(indices[i].item<int64_t>() == top_idx[i]);
    CHECK(values[i].item<double>() == Approx(top_val[i]).margin(1e-3));
  }
}

}  // namespace

TEST_CASE("MobileNetV2 has torchvision's parameter names and counts", "[models]") {
  models::MobileNetV2 backbone;
  // torchvision.models.mobilenet_v2().features: 2,223,872 parameters + 34,112 BN statistics;
  // their sum is Keras' MobileNetV2(include_top=False) count, 2,257,984.
  CHECK(models::count_parameters(*backbone) == 2223872);
  CHECK(models::count_parameters(*backbone, true) == 2257984);
  auto sd = models::state_dict(*backbone);
  CHECK(sd.count("features.0.0.weight"));
  CHECK(sd.at("features.1.conv.0.0.weight").sizes() == torch::IntArrayRef({32, 1, 3, 3}));
  CHECK(sd.at("features.17.conv.2.weight").sizes() == torch::IntArrayRef({320, 960, 1, 1}));
  CHECK(sd.at("features.18.0.weight").sizes() == torch::IntArrayRef({1280, 320, 1, 1}));
  CHECK(sd.count("features.18.1.num_batches_tracked"));
  models::MobileNetV2 full(models::MobileNetV2Options().num_classes(1000));
  CHECK(models::count_parameters(*full) == 3504872);  // torchvision mobilenet_v2(): 3,504,872
}

TEST_CASE("MobileNetV2 works at the patch sizes in use and reports its feature map", "[models]") {
  models::MobileNetV2 net;
  net->eval();
  torch::NoGradGuard no_grad;
  for (int64_t size : {32, 50, 96, 224}) {
    auto maps = net->forward_features(torch::randn({2, 3, size, size}));
    CHECK(maps.size(1) == 1280);
    CHECK(maps.size(2) == (size + 31) / 32);
    CHECK(net->forward(torch::randn({2, 3, size, size})).sizes() == torch::IntArrayRef({2, 1280}));
  }
}

TEST_CASE("MobileNetV2 with the real ImageNet weights reproduces the published reference logits", "[models][.weights]") {
  SECTION("symmetric padding") {
    check_reference(false, 375.9670, {632, 539, 446, 893, 588}, {10.2568, 9.5296, 8.9745, 8.861, 6.2319});
  }
  SECTION("TensorFlow SAME padding") {
    check_reference(true, 270.2075, {556, 904, 632, 828, 858}, {6.8423, 6.7049, 5.1514, 5.0135, 4.7642});
  }
}
