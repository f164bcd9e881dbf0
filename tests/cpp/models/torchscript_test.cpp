#include "histocnn/inference/predict.h"
#include "histocnn/inference/saved_model.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/models/classifier.h"
#include "histocnn/models/torchscript.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <torch/script.h>
#include <torch/torch.h>

#include <fstream>

using namespace histocnn;

namespace {

// A one-convolution trunk written in TorchScript from C++: 8 channels at half resolution.
std::filesystem::path save_trunk(const std::filesystem::path& path, const std::string& body) {
  torch::jit::Module m("Trunk");
  torch::manual_seed(1);
  m.register_parameter("weight", torch::randn({8, 3, 3, 3}) * 0.1, false);
  m.register_parameter("bias", torch::randn({8}) * 0.1, false);
  m.register_buffer("scale", torch::full({1}, 2.0));
  m.define("def forward(self, x):\n    " + body + "\n");
  m.save(path.string());
  return path;
}

const char* kConvBody = "return torch.relu(torch.conv2d(x, self.weight, self.bias, [2, 2], [1, 1])) * self.scale";

}  // namespace

TEST_CASE("A TorchScript module file is a backbone: same outputs, trainable, saved in bundles", "[models]") {
  test::TempDir dir;
  const auto file = save_trunk(dir / "trunk.pt", kConvBody);
  auto backbone = models::make_backbone(std::string(models::kTorchScriptPrefix) + file.string());
  CHECK(backbone->feature_channels() == 8);
  CHECK(models::count_parameters(*backbone) == 8 * 27 + 8);
  CHECK(backbone->buffers().size() == 1);

  // The oracle: the same convolution computed directly from the module's own parameters.
  auto x = torch::randn({2, 3, 40, 40});
  auto params = backbone->named_parameters();
  auto expected = torch::relu(torch::conv2d(x, params["weight"], params["bias"], 2, 1)) * 2.0;
  auto maps = backbone->forward_features(x);
  CHECK(maps.sizes() == torch::IntArrayRef({2, 8, 20, 20}));
  CHECK(torch::allclose(maps, expected, 1e-5, 1e-5));

  // Unfrozen in a classifier it trains: an optimiser step changes the module's own weights.
  models::Classifier model(
      models::ClassifierOptions().backbone(backbone->name()).freeze_backbone(false).hidden1(16).hidden2(8));
  for (const auto& p : model->backbone()->parameters()) CHECK(p.requires_grad());
  auto before = model->backbone()->named_parameters()["weight"].clone();
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1));
  model->train();
  torch::nn::functional::cross_entropy(model->forward(x), torch::tensor({0, 1})).backward();
  sgd.step();
  CHECK_FALSE(torch::equal(before, model->backbone()->named_parameters()["weight"]));
  model->set_backbone_frozen(true);
  for (const auto& p : model->backbone()->parameters()) CHECK_FALSE(p.requires_grad());

  // Saved and reloaded, the classifier gives the same probabilities (weights come from the bundle),
  // also after the bundle has moved and the original module file is gone: the bundle keeps a copy.
  model->eval();
  auto p = inference::class_probabilities(model, x);
  inference::save_model(model, {}, dir / "model");
  auto loaded = inference::load_model(dir / "model", torch::kCPU);
  CHECK(torch::allclose(inference::class_probabilities(loaded.model, x), p, 1e-6, 1e-6));
  std::filesystem::rename(dir / "model", dir / "moved");
  std::filesystem::remove(file);
  auto moved = inference::load_model(dir / "moved", torch::kCPU);
  CHECK(torch::allclose(inference::class_probabilities(moved.model, x), p, 1e-6, 1e-6));
  CHECK(io::read_file(moved.directory / "model.json").find(file.string()) == std::string::npos);
  // Saving a loaded bundle again copies the module along once more.
  inference::save_model(moved.model, {}, dir / "again");
  std::filesystem::remove_all(dir / "moved");
  CHECK(torch::allclose(inference::class_probabilities(inference::load_model(dir / "again", torch::kCPU).model, x), p, 1e-6, 1e-6));
}

TEST_CASE("Backbone labels and whether a backbone brings its own weights", "[models]") {
  CHECK(models::backbone_label("mobilenet_v2") == "mobilenet_v2");
  CHECK(models::backbone_label("torchscript:/models/trunk34.pt") == "torchscript-trunk34");
  CHECK_FALSE(models::backbone_brings_weights("resnet18"));
  CHECK(models::backbone_brings_weights("torchscript:trunk.pt"));
}

TEST_CASE("A bad TorchScript backbone gets an error naming the file", "[models]") {
  test::TempDir dir;
  CHECK_THROWS_WITH(models::make_backbone("torchscript:" + (dir / "missing.pt").string()),
                    Catch::Contains("missing.pt") && Catch::Contains("does not exist"));
  std::ofstream(dir / "junk.pt") << "not a zip archive";
  CHECK_THROWS_WITH(models::make_backbone("torchscript:" + (dir / "junk.pt").string()),
                    Catch::Contains("junk.pt") && Catch::Contains("not a TorchScript module"));
  save_trunk(dir / "flat.pt", "return torch.conv2d(x, self.weight, self.bias).mean([2, 3])");
  CHECK_THROWS_WITH(models::make_backbone("torchscript:" + (dir / "flat.pt").string()),
                    Catch::Contains("flat.pt") && Catch::Contains("[N, C, h, w]") && Catch::Contains("2-D"));
  CHECK_THROWS_WITH(models::make_backbone("no_such_net"), Catch::Contains("torchscript:"));
}
