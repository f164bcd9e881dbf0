#include "histocnn/models/densenet.h"
#include "histocnn/models/weights.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

TEST_CASE("DenseNets have torchvision's names and torchvision's / Keras' parameter counts", "[models]") {
  // torchvision 0.14 densenet121().features: 6,953,856 parameters + 83,648 BN statistics.
  models::DenseNet d121(121);
  CHECK(models::count_parameters(*d121) == 6953856);
  CHECK(models::count_parameters(*d121, true) == 7037504);
  CHECK(d121->feature_channels() == 1024);
  // DenseNet201: Keras' include_top=False count, 18,321,984 (torchvision: 18,092,928 parameters).
  models::DenseNet d201(201);
  CHECK(models::count_parameters(*d201) == 18092928);
  CHECK(models::count_parameters(*d201, true) == 18321984);
  CHECK(d201->feature_channels() == 1920);
  auto sd = models::state_dict(*d121);
  CHECK(sd.at("features.conv0.weight").sizes() == torch::IntArrayRef({64, 3, 7, 7}));
  CHECK(sd.at("features.denseblock1.denselayer1.conv1.weight").sizes() == torch::IntArrayRef({128, 64, 1, 1}));
  CHECK(sd.at("features.denseblock4.denselayer16.conv2.weight").sizes() == torch::IntArrayRef({32, 128, 3, 3}));
  CHECK(sd.at("features.transition3.conv.weight").sizes() == torch::IntArrayRef({512, 1024, 1, 1}));
  CHECK(sd.count("features.norm5.running_mean"));
}

TEST_CASE("DenseNet features are non-negative maps of the expected size", "[models]") {
  models::DenseNet d121(121);
  d121->eval();
  torch::NoGradGuard no_grad;
  auto maps = d121->forward_features(torch::randn({2, 3, 50, 50}));
  CHECK(maps.sizes() == torch::IntArrayRef({2, 1024, 1, 1}));
  CHECK(maps.min().item<float>() >= 0.0f);  // the ReLU torchvision applies after norm5
  CHECK(d121->forward_features(torch::randn({1, 3, 32, 32})).size(2) == 1);
}
