#include "test_prelude.h"

#include "histocnn/core/choice.h"
#include "histocnn/inference/explain.h"
#include "histocnn/models/classifier.h"
#include "histocnn/models/feature_layers.h"
#include "histocnn/models/resnet.h"
#include "histocnn/models/simple_cnn.h"

#include <torch/torch.h>

#include <map>
#include <set>

using namespace histocnn;

namespace {

// Random weights, with each BatchNorm's statistics taken from a batch of random images (momentum
// 1, one pass in training mode), as a trained model has them. With the initial ones (mean 0,
// variance 1) activations grow block after block until ReLU6 saturates, every patch gets the same
// score and the gradients are rounding noise (about 1e-10).
models::Classifier random_classifier(const std::string& backbone, uint64_t seed) {
  torch::manual_seed(seed);
  models::Classifier model(models::ClassifierOptions().backbone(backbone).hidden1(32).hidden2(16).dropout(0));
  torch::NoGradGuard no_grad;
  model->eval();
  for (auto& m : model->modules(false)) {
    if (auto* bn = m->as<torch::nn::BatchNorm2d>()) {
      bn->options.momentum(1.0);
      bn->weight.copy_(0.5 + torch::rand_like(bn->weight));
      bn->bias.copy_(0.1 * torch::randn_like(bn->bias));
      bn->train();
    }
  }
  model->backbone()->forward_features(torch::randn({16, 3, 64, 64}));
  model->eval();
  return model;
}

torch::Tensor random_batch(int64_t n, int64_t size, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({n, 3, size, size});
}

std::map<std::string, models::FeatureLayer> by_name(const std::vector<models::FeatureLayer>& layers) {
  std::map<std::string, models::FeatureLayer> out;
  for (const auto& l : layers) out[l.name] = l;
  return out;
}

// Grad-CAM by hand from a layer's output A and the class scores computed from it: the weights are
// the spatial means of d score / d A, the map is ReLU of the weighted sum of A's channels, scaled
// to a peak of 1.
torch::Tensor gradcam_by_hand(const torch::Tensor& a, const torch::Tensor& scores) {
  const auto grads = torch::autograd::grad({scores.sum()}, {a})[0];
  auto cam = torch::relu((grads.mean({2, 3}, true) * a.detach()).sum(1));
  const auto peak = cam.flatten(1).amax(1).view({-1, 1, 1});
  return torch::where(peak > 0, cam / peak.clamp_min(1e-12), torch::zeros_like(cam));
}

}  // namespace

TEST_CASE("Feature-map layers are listed by module path with the resolution their strides give",
          "[explain-layers]") {
  SECTION("resnet18 at 64 px: the stem at stride 2, each stage halving from stride 4") {
    auto backbone = models::make_backbone("resnet18");
    const auto layers = models::feature_layers(*backbone, 64);
    const auto named = by_name(layers);
    const std::map<std::string, int64_t> expected = {{"conv1", 32},   {"bn1", 32},      {"layer1.0", 16},
                                                     {"layer1", 16},  {"layer2.0", 8},  {"layer2.1", 8},
                                                     {"layer2", 8},   {"layer3", 4},    {"layer4.1", 2},
                                                     {"layer4", 2}};
    for (const auto& [name, size] : expected) {
      INFO(name);
      REQUIRE(named.count(name));
      CHECK(named.at(name).height == size);
      CHECK(named.at(name).width == size);
    }
    CHECK(named.at("layer2").channels == 128);
    CHECK(layers.back().name == "layer4");
    CHECK(backbone->feature_layer() == "layer4");
    CHECK(layers.size() == 2 + 4 * 3);  // conv1, bn1, and per stage two blocks and the stage
  }
  SECTION("mobilenet_v2 at 64 px: torchvision's features.N, the last one the default") {
    auto backbone = models::make_backbone("mobilenet_v2");
    const auto named = by_name(models::feature_layers(*backbone, 64));
    // The strides of torchvision's MobileNetV2: features.0 and the first block of each stage
    // with stride 2 (features.2, .4, .7, .14) halve the map.
    const std::map<std::string, int64_t> expected = {{"features.0", 32}, {"features.1", 32}, {"features.2", 16},
                                                     {"features.3", 16}, {"features.4", 8},  {"features.7", 4},
                                                     {"features.13", 4}, {"features.14", 2}, {"features.18", 2},
                                                     {"features", 2}};
    for (const auto& [name, size] : expected) {
      INFO(name);
      REQUIRE(named.count(name));
      CHECK(named.at(name).height == size);
    }
    CHECK(named.size() == 20);
    CHECK(named.at("features").channels == 1280);
  }
  CHECK_THROWS_WITH(models::feature_layers(*models::make_backbone("simple_cnn"), 0), Catch::Contains("positive"));
}

namespace {

// For one backbone: every listed layer is a module of it, the last is its feature map, and a pass
// cut at a layer halfway gives the same feature map as the plain pass.
void check_backbone_layers(const std::string& name, int64_t size) {
  INFO(name);
  torch::manual_seed(3);
  auto backbone = models::make_backbone(name);
  backbone->eval();
  std::set<std::string> modules;
  for (const auto& m : backbone->named_modules("", false)) modules.insert(m.key());
  const auto layers = models::feature_layers(*backbone, size);
  REQUIRE(layers.size() >= 4);
  for (const auto& l : layers) {
    INFO(l.name);
    CHECK(modules.count(l.name) == 1);
  }
  CHECK(layers.back().name == backbone->feature_layer());
  const auto x = torch::randn({2, 3, size, size});
  torch::Tensor plain;
  {
    torch::NoGradGuard no_grad;
    plain = backbone->forward_features(x);
  }
  CHECK(layers.back().channels == plain.size(1));
  CHECK(layers.back().height == plain.size(2));
  const auto& middle = layers[layers.size() / 2];
  INFO("cut at " << middle.name);
  const auto cut = models::forward_from_layer(*backbone, x, middle.name);
  CHECK(cut.layer_output.sizes() == torch::IntArrayRef({2, middle.channels, middle.height, middle.width}));
  CHECK(cut.layer_output.requires_grad());
  CHECK(cut.features.requires_grad());
  CHECK(torch::allclose(cut.features, plain, 1e-4, 1e-5));
}

}  // namespace

TEST_CASE("Every backbone's layers are modules of it, and a pass cut at one gives the plain pass's features",
          "[explain-layers]") {
  for (const std::string name : {"simple_cnn", "squeezenet1_1", "mobilenet_v2", "mobilenet_v3_small",
                                 "efficientnet_b0", "resnet18", "resnet50", "densenet121"}) {
    check_backbone_layers(name, 64);
  }
}

TEST_CASE("The study's large backbones list their layers and cut alike", "[explain-layers][slow]") {
  for (const std::string name : {"vgg16", "resnet50v2", "resnet152v2", "densenet201", "xception",
                                 "inception_resnet_v2", "nasnet_mobile", "mobilenet_v3_large"}) {
    check_backbone_layers(name, 64);
  }
  CHECK(models::backbone_names().size() == 16);  // a new backbone belongs in one of these two lists
}

TEST_CASE("Grad-CAM on a named earlier layer has that layer's resolution; the default is the last layer named",
          "[explain-layers]") {
  struct Case {
    std::string backbone, early, last;
    int64_t early_size;
  };
  for (const auto& c : {Case{"resnet18", "layer2", "layer4", 8}, Case{"mobilenet_v2", "features.3", "features", 16}}) {
    INFO(c.backbone);
    auto model = random_classifier(c.backbone, 11);
    const auto batch = random_batch(3, 64, 12);
    for (auto method : {inference::CamMethod::gradcam, inference::CamMethod::gradcam_plus_plus}) {
      INFO(core::choice_name(method));
      inference::ExplainOptions o;
      o.method = method;
      const auto by_default = inference::class_activation_maps(model, batch, o);
      REQUIRE(by_default.sizes() == torch::IntArrayRef({3, 64, 64}));
      REQUIRE(by_default.max().item<double>() > 0.99);  // not an all-zero map that equals anything
      // Scores that depend on the patch: the gradients carry a signal, not rounding noise.
      const auto scores = torch::softmax(model->forward(batch), 1).select(1, 1);
      REQUIRE((scores.max() - scores.min()).item<double>() > 1e-3);
      o.layer = c.last;
      CHECK(torch::allclose(inference::class_activation_maps(model, batch, o), by_default, 1e-5, 1e-6));

      o.layer = c.early;
      o.upsample = false;
      const auto early = inference::class_activation_maps(model, batch, o);
      REQUIRE(early.sizes() == torch::IntArrayRef({3, c.early_size, c.early_size}));
      CHECK(early.max().item<double>() > 0.99);
      CHECK(early.min().item<double>() >= 0);
      o.upsample = true;
      const auto early_full = inference::class_activation_maps(model, batch, o);
      REQUIRE(early_full.sizes() == torch::IntArrayRef({3, 64, 64}));
      INFO("largest difference " << (early_full - inference::upsample_maps(early, 64, 64)).abs().max().item<double>());
      CHECK(torch::allclose(early_full, inference::upsample_maps(early, 64, 64), 1e-5, 1e-5));
      CHECK_FALSE(torch::allclose(early_full, by_default, 1e-2, 1e-2));  // another layer, another map
    }
  }
}

TEST_CASE("Grad-CAM at a named layer equals Grad-CAM computed by hand from that layer's output",
          "[explain-layers]") {
  SECTION("simple_cnn: a Sequential run child by child") {
    auto model = random_classifier("simple_cnn", 21);
    const auto batch = random_batch(2, 32, 22);
    auto* cnn = dynamic_cast<models::SimpleCNNImpl*>(model->backbone().get());
    REQUIRE(cnn != nullptr);
    // features: conv, bn, relu, pool (x3), conv, bn, relu; "features.6" is the second block's ReLU.
    torch::Tensor a;
    {
      torch::NoGradGuard no_grad;
      a = batch;
      int index = 0;
      for (auto& m : *cnn->features) {
        a = m.forward(a);
        if (index++ == 6) break;
      }
    }
    a = a.clone().requires_grad_(true);
    torch::Tensor x = a.clone();
    int index = 0;
    for (auto& m : *cnn->features) {
      if (index++ > 6) x = m.forward(x);
    }
    const auto expected = gradcam_by_hand(a, model->head_forward(model->feature_map_to_head_input(x)).select(1, 1));
    inference::ExplainOptions o;
    o.layer = "features.6";
    o.upsample = false;
    const auto maps = inference::class_activation_maps(model, batch, o);
    REQUIRE(maps.sizes() == expected.sizes());
    CHECK(maps.size(1) == 16);
    CHECK(torch::allclose(maps, expected, 1e-5, 1e-6));
  }
  SECTION("resnet18: stages called one by one") {
    auto model = random_classifier("resnet18", 31);
    const auto batch = random_batch(2, 64, 32);
    auto* resnet = dynamic_cast<models::ResNetImpl*>(model->backbone().get());
    REQUIRE(resnet != nullptr);
    torch::Tensor a;
    {
      torch::NoGradGuard no_grad;
      auto x = resnet->bn1->forward(resnet->conv1->forward(batch)).relu();
      x = torch::max_pool2d(x, {3, 3}, {2, 2}, {1, 1});
      a = resnet->layer2->forward(resnet->layer1->forward(x));
    }
    a = a.clone().requires_grad_(true);
    for (int64_t target : {0, 1}) {
      const auto last = resnet->layer4->forward(resnet->layer3->forward(a.clone()));
      const auto expected =
          gradcam_by_hand(a, model->head_forward(model->feature_map_to_head_input(last)).select(1, target));
      inference::ExplainOptions o;
      o.layer = "layer2";
      o.upsample = false;
      o.target_class = target;
      const auto maps = inference::class_activation_maps(model, batch, o);
      CHECK(torch::allclose(maps, expected, 1e-4, 1e-5));
    }
  }
}

TEST_CASE("A layer name that is not one says which are close; explaining leaves the model as it was",
          "[explain-layers]") {
  auto model = random_classifier("resnet18", 41);
  const auto batch = random_batch(1, 64, 42);
  inference::ExplainOptions o;
  o.layer = "layer5";
  CHECK_THROWS_AS(inference::class_activation_maps(model, batch, o), std::invalid_argument);
  CHECK_THROWS_WITH(inference::class_activation_maps(model, batch, o),
                    Catch::Contains("no layer 'layer5'") && Catch::Contains("close names: layer1, layer2, layer3, "
                                                                            "layer4") &&
                        Catch::Contains("--list-layers"));
  o.layer = "layer3.0.conv1";  // a module, but inside a block
  CHECK_THROWS_WITH(inference::class_activation_maps(model, batch, o),
                    Catch::Contains("inside a block") && Catch::Contains("layer3.0"));
  o.layer = "completely-different-name";
  CHECK_THROWS_WITH(inference::class_activation_maps(model, batch, o), Catch::Contains("no name is close"));
  CHECK_THROWS_WITH(models::forward_from_layer(*model->backbone(), batch, ""), Catch::Contains("layer4"));
  CHECK(models::close_names("features.1", {"features.0", "features.10", "features", "classifier"}) ==
        std::vector<std::string>{"features.0", "features.10", "features"});

  // A model in training mode comes back in training mode, with its weights and gradients untouched.
  model->train();
  const auto before = model->parameters()[0].clone();
  o.layer = "layer1";
  inference::class_activation_maps(model, batch, o);
  CHECK(model->is_training());
  CHECK(torch::equal(model->parameters()[0], before));
  for (const auto& p : model->parameters()) CHECK_FALSE(p.grad().defined());
  CHECK(torch::autograd::GradMode::is_enabled());  // the caller's grad mode is back
}

TEST_CASE("The explanation method is parsed by the generic choice parser", "[explain-layers]") {
  CHECK(inference::parse_cam_method("gradcam++") == inference::CamMethod::gradcam_plus_plus);
  CHECK(core::choice_name(inference::CamMethod::gradcam) == "gradcam");
  CHECK_THROWS_WITH(inference::parse_cam_method("lime"),
                    Catch::Equals("option 'method' got \"lime\"; choose one of: gradcam, gradcam++"));
}
