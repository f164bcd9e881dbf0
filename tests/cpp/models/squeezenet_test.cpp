#include "histocnn/data/preprocessing.h"
#include "histocnn/models/pretrained.h"
#include "histocnn/models/squeezenet.h"
#include "histocnn/models/weights.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <torch/torch.h>

using namespace histocnn;

TEST_CASE("SqueezeNet 1.1 has torchvision's names and count", "[models]") {
  models::SqueezeNet net;
  CHECK(models::count_parameters(*net) == 722496);  // torchvision squeezenet1_1().features
  auto sd = models::state_dict(*net);
  CHECK(sd.size() == 50);
  CHECK(sd.at("features.0.weight").sizes() == torch::IntArrayRef({64, 3, 3, 3}));
  CHECK(sd.at("features.3.squeeze.weight").sizes() == torch::IntArrayRef({16, 64, 1, 1}));
  CHECK(sd.at("features.12.expand3x3.weight").sizes() == torch::IntArrayRef({256, 64, 3, 3}));
  torch::NoGradGuard no_grad;
  // ceil-mode pools: 224 -> 111 -> 55 -> 27 -> 13; 50 -> 24 -> 12 -> 6 -> 3.
  CHECK(net->forward_features(torch::randn({1, 3, 224, 224})).sizes() == torch::IntArrayRef({1, 512, 13, 13}));
  CHECK(net->forward_features(torch::randn({1, 3, 50, 50})).sizes() == torch::IntArrayRef({1, 512, 3, 3}));
  CHECK(net->forward_features(torch::randn({1, 3, 32, 32})).sizes() == torch::IntArrayRef({1, 512, 1, 1}));
}

TEST_CASE("SqueezeNet 1.1 with the shared ImageNet weights reproduces the reference features", "[models][.weights]") {
  const std::string relative = "squeezenet1_1_notop/squeezenet1_1_features.torchvision.safetensors";
  auto file = test::shared_weight(relative);
  models::SqueezeNet net;
  auto report = models::load_weights(*net, file);
  REQUIRE(report.complete());
  REQUIRE(report.loaded.size() == 50);
  net->eval();
  torch::NoGradGuard no_grad;
  // SOURCES.md: x[0,c,h,w] = ((7c + 3h + 5w) mod 17) * 15 - 120 (already mean-subtracted RGB).
  auto c = torch::arange(3).view({3, 1, 1});
  auto h = torch::arange(224).view({1, 224, 1});
  auto w = torch::arange(224).view({1, 1, 224});
  auto x = ((7 * c + 3 * h + 5 * w) % 17).to(torch::kFloat32).mul(15.0).sub(120.0).unsqueeze(0);
  auto maps = net->forward_features(x);
  REQUIRE(maps.sizes() == torch::IntArrayRef({1, 512, 13, 13}));
  CHECK(maps.sum().item<double>() == Approx(48969.41).margin(0.05));
  CHECK(maps.gt(0).to(torch::kFloat64).mean().item<double>() == Approx(0.0482).margin(5e-5));
  auto top = net->forward(x)[0].topk(5);
  const int64_t idx[] = {340, 10, 134, 231, 60};
  const double val[] = {29.1987, 23.1002, 19.6321, 14.9041, 14.8663};
  for (int i = 0; i < 5; ++i) {
    CHECK(std::get<1>(top)[i].item<int64_t>() == idx[i]);
    CHECK(std::get<0>(top)[i].item<double>() == Approx(val[i]).margin(1e-3));
  }

  // --weights imagenet finds the same file and says how to preprocess for it.
  auto resolved = models::resolve_weights("imagenet", "squeezenet1_1");
  CHECK(resolved.path.filename() == file.filename());
  CHECK(resolved.normalisation == "caffe");
  auto pre = data::preprocessing_for(resolved.normalisation, 224);
  CHECK(pre.mean[0] * 255.0 == Approx(123.68));
  CHECK(pre.std[2] * 255.0 == Approx(1.0));
}
