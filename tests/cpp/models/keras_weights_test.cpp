#include "histocnn/io/keras_h5.h"
#include "histocnn/models/backbone.h"
#include "histocnn/models/keras_weights.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <fstream>

using namespace histocnn;

TEST_CASE("Keras layer names and layouts become histocnn's", "[models]") {
  auto kernel = torch::arange(3 * 3 * 128 * 256, torch::kFloat32).reshape({3, 3, 128, 256});
  std::vector<io::KerasWeight> weights = {
      {"block3_conv2", "kernel", kernel},
      {"block3_conv2", "bias", torch::zeros({256})},
      {"fc1", "kernel", torch::zeros({10, 4})},
      {"mystery", "kernel", torch::zeros({1})},
  };
  auto vgg = models::keras_to_state_dict("vgg16", weights);
  REQUIRE(vgg.count("features.12.weight"));  // the 6th convolution of torchvision's VGG16
  const auto& w = vgg.at("features.12.weight");
  CHECK(w.sizes() == torch::IntArrayRef({256, 128, 3, 3}));
  // [kh, kw, in, out] -> [out, in, kh, kw]: element (o, i, y, x) is Keras' (y, x, i, o).
  CHECK(w[7][5][2][1].item<float>() == kernel[2][1][5][7].item<float>());
  CHECK(vgg.count("features.12.bias"));
  CHECK(vgg.count("keras-top:fc1/kernel"));
  CHECK(vgg.count("keras:mystery/kernel"));

  std::vector<io::KerasWeight> dense = {{"conv3_block12_1_conv", "kernel", torch::zeros({1, 1, 8, 4})},
                                        {"conv3_block12_0_bn", "moving_variance", torch::ones({8})},
                                        {"pool4_conv", "kernel", torch::zeros({1, 1, 8, 4})},
                                        {"conv1/bn", "gamma", torch::ones({8})},
                                        {"bn", "beta", torch::ones({8})}};
  auto dn = models::keras_to_state_dict("densenet201", dense);
  CHECK(dn.count("features.denseblock2.denselayer12.conv1.weight"));
  CHECK(dn.count("features.denseblock2.denselayer12.norm1.running_var"));
  CHECK(dn.count("features.transition3.conv.weight"));
  CHECK(dn.count("features.norm0.weight"));
  CHECK(dn.count("features.norm5.bias"));

  std::vector<io::KerasWeight> v2 = {{"conv4_block6_2_bn", "moving_mean", torch::zeros({4})},
                                     {"conv2_block1_0_conv", "bias", torch::zeros({4})},
                                     {"post_bn", "gamma", torch::zeros({4})}};
  auto r = models::keras_to_state_dict("resnet152v2", v2);
  CHECK(r.count("layer3.5.bn2.running_mean"));
  CHECK(r.count("layer1.0.downsample.bias"));
  CHECK(r.count("post_bn.weight"));

  CHECK_THROWS_WITH(models::keras_to_state_dict("mobilenet_v2", weights),
                    Catch::Contains("mobilenet_v2") && Catch::Contains("xception") && Catch::Contains("safetensors"));
}

TEST_CASE("Auto-named Keras layers are matched in the order their numbers give", "[models]") {
  // Keras 2.0 numbered from 1, TensorFlow 2 from none ("conv2d", "conv2d_1", ...); numbers compare
  // as numbers (conv2d_10 comes after conv2d_9) whatever the order of the file.
  // Each file's layers in a shuffled order, tagged with the histocnn block Keras' creation order puts them in.
  const std::vector<std::vector<std::pair<std::string, int>>> files = {
      {{"conv2d_10", 12}, {"conv2d_2", 1}, {"conv2d_9", 3}, {"conv2d_3", 2}},
      {{"conv2d_2", 3}, {"conv2d", 1}, {"conv2d_3", 12}, {"conv2d_1", 2}}};
  for (const auto& file : files) {
    std::vector<io::KerasWeight> weights;
    for (const auto& [name, block] : file) weights.push_back({name, "kernel", torch::full({1, 1, 2, 2}, block)});
    auto x = models::keras_to_state_dict("xception", weights);
    REQUIRE(x.size() == 4);
    for (int block : {1, 2, 3, 12}) {
      const auto key = "block" + std::to_string(block) + ".skip.weight";
      REQUIRE(x.count(key));
      CHECK(x.at(key).max().item<float>() == block);
    }
  }
  std::vector<io::KerasWeight> ir = {{"conv2d_1", "kernel", torch::zeros({3, 3, 3, 32})},
                                     {"batch_normalization_203", "beta", torch::zeros({256})},
                                     {"conv2d_203", "kernel", torch::zeros({3, 1, 224, 256})},
                                     {"block8_10_conv", "bias", torch::zeros({2080})},
                                     {"block17_20_conv", "kernel", torch::zeros({1, 1, 384, 1088})},
                                     {"conv_7b_bn", "moving_mean", torch::zeros({1536})}};
  for (int i = 1; i <= 203; ++i) {
    if (i > 1 && i < 203) ir.push_back({"conv2d_" + std::to_string(i), "kernel", torch::zeros({1, 1, 1, 1})});
    if (i < 203) ir.push_back({"batch_normalization_" + std::to_string(i), "beta", torch::zeros({1})});
  }
  auto r = models::keras_to_state_dict("inception_resnet_v2", ir);
  CHECK(r.count("conv2d_1a.conv.weight"));
  CHECK(r.count("block8.branch1.2.bn.bias"));  // the last auto-named pair: block8_10's [3, 1] convolution
  CHECK(r.count("block8.branch1.2.conv.weight"));
  CHECK(r.count("block8.conv2d.bias"));
  CHECK(r.count("repeat_1.19.conv2d.weight"));
  CHECK(r.count("conv2d_7b.bn.running_mean"));
  CHECK(r.count("mixed_5b.branch3.1.conv.weight"));  // conv2d_12: mixed_5b's pooling branch, created last there

  std::vector<io::KerasWeight> nas = {{"separable_conv_1_normal_left1_0", "depthwise_kernel", torch::zeros({5, 5, 44, 1})},
                                      {"separable_conv_2_bn_reduction_right3_reduce_4", "gamma", torch::zeros({88})},
                                      {"adjust_conv_projection_6", "kernel", torch::zeros({1, 1, 528, 88})},
                                      {"adjust_bn_stem_2", "beta", torch::zeros({22})},
                                      {"reduction_conv_1_stem_1", "kernel", torch::zeros({1, 1, 32, 11})},
                                      {"normal_bn_1_12", "moving_variance", torch::zeros({176})}};
  auto n = models::keras_to_state_dict("nasnet_mobile", nas);
  REQUIRE(n.count("cells.normal_0.left1.separable_conv_1.depthwise.weight"));
  CHECK(n.at("cells.normal_0.left1.separable_conv_1.depthwise.weight").sizes() == torch::IntArrayRef({44, 1, 5, 5}));
  CHECK(n.count("cells.reduction_reduce_4.right3.separable_conv_2_bn.weight"));
  CHECK(n.count("cells.normal_6.adjust_conv_projection.weight"));
  CHECK(n.count("cells.reduction_stem_2.adjust_bn.bias"));
  CHECK(n.count("cells.reduction_stem_1.conv_1.weight"));
  CHECK(n.count("cells.normal_12.bn_1.running_var"));
}

TEST_CASE("A missing or non-HDF5 Keras file is refused by name", "[models]") {
  test::TempDir dir;
  CHECK_THROWS_WITH(io::read_keras_h5(dir / "none.h5"), Catch::Contains("none.h5") && Catch::Contains("does not exist"));
  std::ofstream(dir / "text.h5") << "hello";
  CHECK_THROWS_WITH(io::read_keras_h5(dir / "text.h5"), Catch::Contains("text.h5") && Catch::Contains("not an HDF5"));
  auto backbone = models::make_backbone("simple_cnn");
  CHECK_THROWS_WITH(models::load_weights(*backbone, dir / "text.h5"), Catch::Contains("text.h5"));
}
