#include "histocnn/models/efficientnet.h"
#include "histocnn/models/mobilenet_v3.h"
#include "histocnn/models/weights.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

TEST_CASE("MobileNetV3 Small and Large have torchvision's names and counts", "[models]") {
  // torchvision 0.14 features: small 927,008 + 12,112 BN statistics; large 2,971,952 + 24,400.
  models::MobileNetV3 small(false), large(true);
  CHECK(models::count_parameters(*small) == 927008);
  CHECK(models::count_parameters(*small, true) == 939120);
  CHECK(models::count_parameters(*large) == 2971952);
  CHECK(models::count_parameters(*large, true) == 2996352);
  CHECK(small->feature_channels() == 576);
  CHECK(large->feature_channels() == 960);
  auto sd = models::state_dict(*small);
  CHECK(sd.at("features.0.0.weight").sizes() == torch::IntArrayRef({16, 3, 3, 3}));
  CHECK(sd.at("features.1.block.0.0.weight").sizes() == torch::IntArrayRef({16, 1, 3, 3}));  // no expansion
  CHECK(sd.at("features.1.block.1.fc1.weight").sizes() == torch::IntArrayRef({8, 16, 1, 1}));
  CHECK(sd.at("features.12.0.weight").sizes() == torch::IntArrayRef({576, 96, 1, 1}));
  auto sdl = models::state_dict(*large);
  CHECK(sdl.at("features.4.block.2.fc2.bias").sizes() == torch::IntArrayRef({72}));
  CHECK(sdl.at("features.16.1.running_var").sizes() == torch::IntArrayRef({960}));
}

TEST_CASE("EfficientNet-B0 has torchvision's names and count", "[models]") {
  // torchvision 0.14 efficientnet_b0().features: 4,007,548 parameters + 42,016 BN statistics.
  models::EfficientNet net;
  CHECK(models::count_parameters(*net) == 4007548);
  CHECK(models::count_parameters(*net, true) == 4049564);
  auto sd = models::state_dict(*net);
  CHECK(sd.at("features.1.0.block.0.0.weight").sizes() == torch::IntArrayRef({32, 1, 3, 3}));
  CHECK(sd.at("features.1.0.block.1.fc1.weight").sizes() == torch::IntArrayRef({8, 32, 1, 1}));
  CHECK(sd.at("features.6.3.block.3.0.weight").sizes() == torch::IntArrayRef({192, 1152, 1, 1}));
  CHECK(sd.at("features.8.0.weight").sizes() == torch::IntArrayRef({1280, 320, 1, 1}));
}

TEST_CASE("Small modern backbones work at patch sizes", "[models]") {
  torch::NoGradGuard no_grad;
  models::MobileNetV3 small(false);
  models::EfficientNet eff;
  small->eval();
  eff->eval();
  for (int64_t size : {32, 50, 96}) {
    CHECK(small->forward_features(torch::randn({2, 3, size, size})).sizes() ==
          torch::IntArrayRef({2, 576, (size + 31) / 32, (size + 31) / 32}));
    CHECK(eff->forward_features(torch::randn({2, 3, size, size})).sizes() ==
          torch::IntArrayRef({2, 1280, (size + 31) / 32, (size + 31) / 32}));
  }
}

TEST_CASE("EfficientNet's stochastic depth acts in training only", "[models]") {
  models::EfficientNet net;
  auto x = torch::randn({4, 3, 64, 64});
  torch::NoGradGuard no_grad;
  net->eval();
  CHECK(torch::equal(net->forward(x), net->forward(x)));
  net->train();
  // BatchNorm in training mode is deterministic for a fixed batch, so any difference between two
  // passes comes from the randomly dropped residual branches.
  torch::manual_seed(1);
  auto a = net->forward(x);
  torch::manual_seed(2);
  auto b = net->forward(x);
  CHECK_FALSE(torch::allclose(a, b));
}
