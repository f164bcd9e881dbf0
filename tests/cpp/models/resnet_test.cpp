#include "histocnn/models/complexity.h"
#include "histocnn/models/resnet.h"
#include "histocnn/models/weights.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

TEST_CASE("ResNet-18 and ResNet-50 have torchvision's parameter names and counts", "[models]") {
  // torchvision 0.14: resnet18() without fc: 11,176,512 parameters + 9,600 BN statistics; with fc
  // 11,689,512. resnet50(): 23,508,032 + 53,120; with fc 25,557,032.
  models::ResNet r18(models::ResNetOptions().depth(18));
  CHECK(models::count_parameters(*r18) == 11176512);
  CHECK(models::count_parameters(*r18, true) == 11186112);
  CHECK(r18->feature_channels() == 512);
  models::ResNet r50;
  CHECK(models::count_parameters(*r50) == 23508032);
  CHECK(models::count_parameters(*r50, true) == 23561152);
  CHECK(r50->feature_channels() == 2048);
  CHECK(models::count_parameters(*models::ResNet(models::ResNetOptions().depth(18).num_classes(1000))) == 11689512);
  CHECK(models::count_parameters(*models::ResNet(models::ResNetOptions().depth(50).num_classes(1000))) == 25557032);

  auto sd = models::state_dict(*r50);
  CHECK(sd.at("conv1.weight").sizes() == torch::IntArrayRef({64, 3, 7, 7}));
  CHECK(sd.at("layer1.0.downsample.0.weight").sizes() == torch::IntArrayRef({256, 64, 1, 1}));
  CHECK(sd.at("layer2.0.conv2.weight").sizes() == torch::IntArrayRef({128, 128, 3, 3}));
  CHECK(sd.at("layer4.2.bn3.running_var").sizes() == torch::IntArrayRef({2048}));
  CHECK(sd.count("layer1.1.downsample.0.weight") == 0);
  CHECK(models::state_dict(*r18).count("layer2.0.downsample.1.num_batches_tracked"));
}

TEST_CASE("ResNet50V2 and ResNet152V2 reproduce Keras' parameter counts", "[models]") {
  // Keras Applications, include_top=False, trainable + non-trainable (BN moving statistics).
  models::ResNetV2 r50v2;
  CHECK(models::count_parameters(*r50v2, true) == 23564800);
  models::ResNetV2 r152v2(models::ResNetV2Options().depth(152));
  CHECK(models::count_parameters(*r152v2, true) == 58331648);
  CHECK(r50v2->normalisation() == "inception");
  auto sd = models::state_dict(*r50v2);
  CHECK(sd.count("conv1.bias"));                      // Keras' conv1_conv has a bias
  CHECK(sd.count("layer1.0.downsample.bias"));        // conv2_block1_0_conv
  CHECK(sd.count("layer1.0.conv2.bias") == 0);        // conv2_block1_2_conv has none
  CHECK(sd.at("layer3.5.conv3.weight").sizes() == torch::IntArrayRef({1024, 256, 1, 1}));
  CHECK(sd.at("post_bn.weight").sizes() == torch::IntArrayRef({2048}));
  CHECK_THROWS_AS(models::ResNetV2(models::ResNetV2Options().depth(101)), std::invalid_argument);
}

TEST_CASE("ResNets give Keras' and torchvision's feature-map sizes", "[models]") {
  torch::NoGradGuard no_grad;
  models::ResNet r18(models::ResNetOptions().depth(18));
  models::ResNetV2 r50v2;
  r18->eval();
  r50v2->eval();
  // ResNetV2 downsamples in the last block of stages 1-3 with 1x1 max pools: at 224 it ends at 7x7
  // like Keras; at 50: 25 -> 13 (pool) -> 7 -> 4 -> 2.
  CHECK(r50v2->forward_features(torch::randn({1, 3, 224, 224})).sizes() == torch::IntArrayRef({1, 2048, 7, 7}));
  CHECK(r50v2->forward_features(torch::randn({2, 3, 50, 50})).sizes() == torch::IntArrayRef({2, 2048, 2, 2}));
  CHECK(r18->forward_features(torch::randn({2, 3, 50, 50})).sizes() == torch::IntArrayRef({2, 512, 2, 2}));
  CHECK(r18->forward(torch::randn({2, 3, 32, 32})).sizes() == torch::IntArrayRef({2, 512}));
}

TEST_CASE("count_macs matches torchvision's published complexity", "[models]") {
  // torchvision's model tables: resnet18 1.81 and resnet50 4.09 "GFLOPS" (multiply-accumulates,
  // fc layer included: 0.5 M and 2.0 M MACs).
  models::ResNet r18(models::ResNetOptions().depth(18).num_classes(1000));
  models::ResNet r50(models::ResNetOptions().depth(50).num_classes(1000));
  CHECK(models::count_macs(*r18, 224) / 1e9 == Approx(1.81 - 0.000512).epsilon(0.005));
  CHECK(models::count_macs(*r50, 224) / 1e9 == Approx(4.09 - 0.002048).epsilon(0.005));
  CHECK(r50->is_training());  // restored
}
