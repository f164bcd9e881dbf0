#include "histocnn/models/complexity.h"
#include "histocnn/models/vgg.h"
#include "histocnn/models/weights.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

TEST_CASE("VGG16 has torchvision's names and Keras' parameter count", "[models]") {
  models::VGG vgg;
  CHECK(models::count_parameters(*vgg) == 14714688);  // Keras VGG16(include_top=False)
  CHECK(models::count_parameters(*vgg, true) == 14714688);
  auto sd = models::state_dict(*vgg);
  CHECK(sd.size() == 26);
  CHECK(sd.at("features.0.weight").sizes() == torch::IntArrayRef({64, 3, 3, 3}));
  CHECK(sd.at("features.28.weight").sizes() == torch::IntArrayRef({512, 512, 3, 3}));
  CHECK(sd.count("features.28.bias"));
}

TEST_CASE("VGG16 MACs equal the hand count and its maps halve five times", "[models]") {
  // Sum over the 13 convolutions of H * W * Cin * Cout * 9, H halving after each block.
  const int64_t blocks[5][3] = {{64, 64, 0}, {128, 128, 0}, {256, 256, 256}, {512, 512, 512}, {512, 512, 512}};
  int64_t expected = 0, in = 3, side = 224;
  for (const auto& block : blocks) {
    for (int64_t c : block) {
      if (c == 0) continue;
      expected += side * side * in * c * 9;
      in = c;
    }
    side /= 2;
  }
  models::VGG vgg;
  CHECK(models::count_macs(*vgg, 224) == expected);  // 15,346,630,656
  torch::NoGradGuard no_grad;
  CHECK(vgg->forward_features(torch::randn({1, 3, 50, 50})).sizes() == torch::IntArrayRef({1, 512, 1, 1}));
  CHECK(vgg->forward_features(torch::randn({1, 3, 32, 32})).sizes() == torch::IntArrayRef({1, 512, 1, 1}));
}
