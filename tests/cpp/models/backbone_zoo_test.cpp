#include "histocnn/models/backbone.h"
#include "histocnn/models/complexity.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

TEST_CASE("Every backbone of the study and the small modern ones is registered", "[models]") {
  const auto names = models::backbone_names();
  for (const char* expected : {"vgg16", "resnet50v2", "resnet152v2", "densenet201", "inception_resnet_v2", "xception",
                               "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
                               "resnet18", "resnet50", "densenet121", "squeezenet1_1"}) {
    CHECK(std::find(names.begin(), names.end(), expected) != names.end());
  }
  CHECK_THROWS_AS(models::make_backbone("resnet50", models::BackboneOptions{true}), std::invalid_argument);
  CHECK(models::make_backbone("mobilenet_v3_small", models::BackboneOptions{true})->name() == "mobilenet_v3_small");
}

TEST_CASE("Every registered backbone runs at 32 and 50 px, trains, and reports its feature channels",
          "[models][slow]") {
  for (const auto& name : models::backbone_names()) {
    INFO(name);
    auto b = models::make_backbone(name);
    CHECK(b->name() == name);
    {
      // Training mode with autograd: in-place activations must not break the backward pass, and
      // the gradient must reach the first layer.
      b->train();
      b->forward(torch::randn({2, 3, 50, 50})).pow(2).sum().backward();
      auto first = b->parameters().front();
      REQUIRE(first.grad().defined());
      CHECK(first.grad().abs().sum().item<double>() > 0);
    }
    torch::NoGradGuard no_grad;
    b->eval();
    for (int64_t size : {32, 50}) {
      auto maps = b->forward_features(torch::randn({2, 3, size, size}));
      CHECK(maps.dim() == 4);
      CHECK(maps.size(0) == 2);
      CHECK(maps.size(1) == b->feature_channels());
      CHECK(torch::isfinite(maps).all().item<bool>());
    }
    // Cost grows with the pixel count.
    const auto macs50 = models::count_macs(*b, 50), macs224 = models::count_macs(*b, 224);
    CHECK(macs50 > 0);
    CHECK(macs224 > 2 * macs50);
  }
}
