#include "histocnn/models/complexity.h"
#include "histocnn/models/nasnet.h"
#include "histocnn/models/weights.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

TEST_CASE("NASNetMobile reproduces Keras' parameter count and layer structure", "[models]") {
  models::NASNetMobile net;
  CHECK(models::count_parameters(*net, true) == 4269716);  // Keras NASNetMobile(include_top=False)
  CHECK(net->feature_channels() == 1056);
  auto sd = models::state_dict(*net);
  CHECK(sd.at("stem_conv1.weight").sizes() == torch::IntArrayRef({32, 3, 3, 3}));
  // stem_1 has no previous path; stem_2 adjusts the stem output (2 x 11 channels, shifted paths).
  CHECK(sd.count("cells.reduction_stem_1.adjust_bn.weight") == 0);
  CHECK(sd.at("cells.reduction_stem_2.adjust_conv_2.weight").sizes() == torch::IntArrayRef({11, 32, 1, 1}));
  // normal_0 sees stem_1's larger output (reduction adjustment), normal_1 a projection of stem_2's.
  CHECK(sd.at("cells.normal_0.adjust_conv_1.weight").sizes() == torch::IntArrayRef({22, 44, 1, 1}));
  CHECK(sd.at("cells.normal_1.adjust_conv_projection.weight").sizes() == torch::IntArrayRef({44, 88, 1, 1}));
  CHECK(sd.at("cells.normal_2.adjust_conv_projection.weight").sizes() == torch::IntArrayRef({44, 264, 1, 1}));
  CHECK(sd.at("cells.normal_12.left1.separable_conv_1.depthwise.weight").sizes() ==
        torch::IntArrayRef({176, 1, 5, 5}));
  CHECK(sd.at("cells.reduction_reduce_8.right1.separable_conv_1.depthwise.weight").sizes() ==
        torch::IntArrayRef({176, 1, 7, 7}));
}

TEST_CASE("NASNetMobile gives Keras' map sizes and the paper's 564 M multiply-adds", "[models]") {
  models::NASNetMobile net;
  net->eval();
  torch::NoGradGuard no_grad;
  CHECK(net->forward_features(torch::randn({1, 3, 224, 224})).sizes() == torch::IntArrayRef({1, 1056, 7, 7}));
  CHECK(net->forward_features(torch::randn({2, 3, 50, 50})).sizes() == torch::IntArrayRef({2, 1056, 2, 2}));
  CHECK(net->forward_features(torch::randn({1, 3, 32, 32})).sizes() == torch::IntArrayRef({1, 1056, 1, 1}));
  // Zoph et al. (2018), Table 2: NASNet-A (4 @ 1056) 564 M mult-adds, classifier (1 M) included.
  CHECK(models::count_macs(*net, 224) / 1e6 == Approx(564 - 1.056).epsilon(0.01));
}
