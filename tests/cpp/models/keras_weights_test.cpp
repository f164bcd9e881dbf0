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

  CHECK_THROWS_WITH(models::keras_to_state_dict("xception", weights),
                    Catch::Contains("xception") && Catch::Contains("vgg16") && Catch::Contains("safetensors"));
}

TEST_CASE("A missing or non-HDF5 Keras file is refused by name", "[models]") {
  test::TempDir dir;
  CHECK_THROWS_WITH(io::read_keras_h5(dir / "none.h5"), Catch::Contains("none.h5") && Catch::Contains("does not exist"));
  std::ofstream(dir / "text.h5") << "hello";
  CHECK_THROWS_WITH(io::read_keras_h5(dir / "text.h5"), Catch::Contains("text.h5") && Catch::Contains("not an HDF5"));
  auto backbone = models::make_backbone("simple_cnn");
  CHECK_THROWS_WITH(models::load_weights(*backbone, dir / "text.h5"), Catch::Contains("text.h5"));
}
