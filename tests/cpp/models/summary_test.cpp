#include "histocnn/models/summary.h"
#include "histocnn/models/classifier.h"
#include "histocnn/models/torchscript.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include <set>

using namespace histocnn;

namespace {

std::vector<std::string> types_of(const std::vector<models::LayerInfo>& layers, size_t last) {
  std::vector<std::string> types;
  for (size_t i = layers.size() - std::min(last, layers.size()); i < layers.size(); ++i) types.push_back(layers[i].type);
  return types;
}

std::set<std::string> trainable_names(const torch::nn::Module& module) {
  std::set<std::string> names;
  for (const auto& p : module.named_parameters()) {
    if (p.value().requires_grad()) names.insert(p.key());
  }
  return names;
}

}  // namespace

TEST_CASE("VGG16's layers are Keras' VGG16 layers: 13 Conv2D with their ReLU, 5 MaxPooling2D", "[models][summary]") {
  auto vgg = models::make_backbone("vgg16");
  const auto layers = models::backbone_layers(*vgg, 224);
  REQUIRE(layers.size() == 18);  // Keras: len(VGG16(include_top=False).layers) == 19 with the input layer
  const char* expected = "CCPCCPCCCPCCCPCCCP";
  const int conv_index[] = {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28};
  int conv = 0, pool = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (expected[i] == 'C') {
      CHECK(layers[i].type == "Conv2D");
      CHECK(layers[i].name == "features." + std::to_string(conv_index[conv++]));
      CHECK(layers[i].weights.size() == 2);
    } else {
      CHECK(layers[i].type == "MaxPooling2D");
      CHECK(layers[i].name == (pool == 0 ? std::string("max_pooling2d") : "max_pooling2d_" + std::to_string(pool)));
      ++pool;
      CHECK(layers[i].params == 0);
    }
  }
  CHECK(layers[0].output_shape == std::vector<int64_t>{224, 224, 64});
  CHECK(layers[0].params == 3 * 3 * 3 * 64 + 64);
  CHECK(layers[16].params == 3 * 3 * 512 * 512 + 512);  // block5_conv3: 2,359,808
  CHECK(layers[17].output_shape == std::vector<int64_t>{7, 7, 512});
}

TEST_CASE("The study's VGG16 + dense head with the last 4 layers unfrozen has Keras' 15,043,778 / 7,408,258 / "
          "7,635,520 parameters",
          "[models][summary]") {
  // The arithmetic: VGG16 without top 14,714,688 (13 convolutions). The head on 512 pooled
  // features: Dense(512) 262,656 + Dense(128) 65,664 + BatchNormalization(128) 512 (gamma, beta,
  // moving mean, moving variance) + Dense(2) 258 = 329,090, so the total is 15,043,778. Trainable:
  // block5_conv1..3 (3 x 2,359,808 = 7,079,424) + the head without the moving statistics (328,834)
  // = 7,408,258; non-trainable: the other ten convolutions (7,635,264) + the moving statistics (256)
  // = 7,635,520. Keras' `base.layers[-4:]` is block5_conv1, block5_conv2, block5_conv3, block5_pool:
  // the pool counts as a layer. Counting only layers with weights would also train block4_conv3
  // (9,768,066 trainable); counting LibTorch modules (ReLU, Conv2d, ReLU, MaxPool2d) trained only
  // block5_conv3 (2,688,642).
  models::Classifier model(models::ClassifierOptions().backbone("vgg16").batch_norm(true).unfreeze_last(4));
  const auto s = models::summarize(*model, 224);
  CHECK(s.total_params == 15043778);
  CHECK(s.trainable_params == 7408258);
  CHECK(s.non_trainable_params == 7635520);
  std::set<std::string> expected;
  for (const char* layer : {"24", "26", "28"}) {
    expected.insert(std::string("backbone.features.") + layer + ".weight");
    expected.insert(std::string("backbone.features.") + layer + ".bias");
  }
  for (const auto& p : model->head()->named_parameters()) expected.insert("head." + p.key());
  CHECK(trainable_names(*model) == expected);

  // Rows: the input, 18 backbone layers, the pooling and six head layers.
  REQUIRE(s.layers.size() == 1 + 18 + 1 + 6);
  CHECK(s.layers[0].type == "InputLayer");
  CHECK(s.layers[19].type == "GlobalAveragePooling2D");
  CHECK(s.layers[19].output_shape == std::vector<int64_t>{512});
  CHECK(s.layers[24].name == "head.bn");
  CHECK(s.layers[24].params == 512);
  CHECK(s.layers[24].trainable_params == 256);
  CHECK(s.layers[25].output_shape == std::vector<int64_t>{2});
  int64_t sum = 0;
  for (const auto& layer : s.layers) sum += layer.params;
  CHECK(sum == s.total_params);

  const auto text = models::format_summary(s);
  CHECK_THAT(text, Catch::Contains("Layer (type)") && Catch::Contains("Output Shape") && Catch::Contains("Param #"));
  CHECK_THAT(text, Catch::Contains("features.28 (Conv2D)") && Catch::Contains("(None, 14, 14, 512)") &&
                       Catch::Contains("2359808"));
  CHECK_THAT(text, Catch::Contains("Total params: 15,043,778\n") && Catch::Contains("Trainable params: 7,408,258\n") &&
                       Catch::Contains("Non-trainable params: 7,635,520\n"));
}

TEST_CASE("unfreeze_last counts VGG16's pooling layers; 0 and the whole backbone are the frozen and unfrozen ends",
          "[models][summary]") {
  auto trainable = [](int64_t n) {
    models::Classifier model(models::ClassifierOptions().backbone("vgg16").batch_norm(true).unfreeze_last(n));
    int64_t count = 0;
    for (const auto& p : model->backbone()->parameters()) count += p.requires_grad() ? p.numel() : 0;
    return count;
  };
  CHECK(trainable(1) == 0);                // block5_pool only
  CHECK(trainable(2) == 2359808);          // + block5_conv3
  CHECK(trainable(18) == 14714688);        // every layer
  CHECK_THROWS_WITH(models::Classifier(models::ClassifierOptions().backbone("vgg16").unfreeze_last(19)),
                    Catch::Contains("unfreeze_last is 19") && Catch::Contains("18 layers"));
}

TEST_CASE("Every backbone's layers hold each of its weights once", "[models][summary]") {
  for (const auto& name : models::backbone_names()) {
    INFO(name);
    auto backbone = models::make_backbone(name);
    const auto layers = models::backbone_layers(*backbone, 64);
    std::set<std::string> seen;
    int64_t params = 0;
    for (const auto& layer : layers) {
      params += layer.params;
      for (const auto& w : layer.weights) CHECK(seen.insert(w).second);
      if (layer.weights.empty()) CHECK(layer.params == 0);
    }
    CHECK(params == models::count_parameters(*backbone, true));
    CHECK(layers.back().output_shape.back() == backbone->feature_channels());
  }
}

TEST_CASE("The last layers of the study's backbones are Keras' last layers", "[models][summary]") {
  using V = std::vector<std::string>;
  auto tail = [](const std::string& name, size_t n) {
    auto backbone = models::make_backbone(name);
    return types_of(models::backbone_layers(*backbone, 96), n);
  };
  // Keras: conv5_block3_3_conv, conv5_block3_out, post_bn, post_relu.
  CHECK(tail("resnet50v2", 4) == V{"Conv2D", "Add", "BatchNormalization", "Activation"});
  // Keras: conv5_block32_2_conv, conv5_block32_concat, bn, relu.
  CHECK(tail("densenet201", 4) == V{"Conv2D", "Concatenate", "BatchNormalization", "Activation"});
  // Keras: block14_sepconv1, _bn, _act, block14_sepconv2, _bn, _act.
  CHECK(tail("xception", 6) == V{"SeparableConv2D", "BatchNormalization", "Activation", "SeparableConv2D",
                                 "BatchNormalization", "Activation"});
  // Keras: block8_10 (a Lambda adding the scaled branch: Multiply and Add here), conv_7b, conv_7b_bn, conv_7b_ac.
  CHECK(tail("inception_resnet_v2", 4) == V{"Add", "Conv2D", "BatchNormalization", "Activation"});
  // Keras: normal_concat_12, then the final ReLU.
  CHECK(tail("nasnet_mobile", 2) == V{"Concatenate", "Activation"});
  // Keras MobileNetV2: block_16_project_BN, Conv_1, Conv_1_bn, out_relu.
  CHECK(tail("mobilenet_v2", 4) == V{"BatchNormalization", "Conv2D", "BatchNormalization", "Activation"});
}

TEST_CASE("A summary of the LSTM head reads the feature map as a sequence", "[models][summary]") {
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").head("lstm").lstm_units(32));
  const auto s = models::summarize(*model, 48);
  // simple_cnn: three 2x poolings, 48 -> 6: 36 positions of 256 channels.
  auto it = std::find_if(s.layers.begin(), s.layers.end(), [](const auto& l) { return l.type == "LSTM"; });
  REQUIRE(it != s.layers.end());
  CHECK(std::prev(it)->output_shape == std::vector<int64_t>{36, 256});
  CHECK(it->output_shape == std::vector<int64_t>{32});
  CHECK(it->params == models::count_parameters(*model->head()->as<models::LSTMHeadImpl>()->lstm));
  CHECK(s.total_params == models::count_parameters(*model, true));
  CHECK(s.trainable_params == models::count_parameters(*model->head()));  // the backbone is frozen
  CHECK_THROWS_WITH(models::summarize(*model, 0), Catch::Contains("image_size"));
}

TEST_CASE("A TorchScript backbone's layers are the calls its forward makes, and unfreeze_last counts them",
          "[models][summary]") {
  test::TempDir dir;
  torch::jit::Module m("Trunk");
  m.register_parameter("weight", torch::randn({8, 3, 3, 3}), false);
  m.register_parameter("bias", torch::randn({8}), false);
  m.register_buffer("scale", torch::full({1}, 2.0));
  m.define("def forward(self, x):\n    return torch.relu(torch.conv2d(x, self.weight, self.bias, [2, 2], [1, 1])) * self.scale\n");
  m.save((dir / "trunk.pt").string());
  const std::string name = std::string(models::kTorchScriptPrefix) + (dir / "trunk.pt").string();
  const auto layers = models::backbone_layers(*models::make_backbone(name), 40);
  REQUIRE(types_of(layers, 10) == std::vector<std::string>{"Conv2D", "Activation", "Multiply"});
  CHECK(layers[0].output_shape == std::vector<int64_t>{20, 20, 8});
  CHECK(layers[0].params == 8 * 27 + 8);
  CHECK(layers[2].weights == std::vector<std::string>{"scale"});  // a buffer: counted, never trained
  auto trains = [&](int64_t n) {
    models::Classifier model(models::ClassifierOptions().backbone(name).unfreeze_last(n).hidden1(16).hidden2(8));
    return trainable_names(*model->backbone());
  };
  CHECK(trains(2).empty());
  CHECK(trains(3) == std::set<std::string>{"weight", "bias"});
  CHECK_THROWS_WITH(trains(4), Catch::Contains("unfreeze_last is 4") && Catch::Contains("3 layers"));
}
