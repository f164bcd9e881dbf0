#include "histocnn/models/classifier.h"
#include "histocnn/inference/saved_model.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/bundle.h"
#include "histocnn/io/safetensors.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <fstream>
#include <set>

using namespace histocnn;

TEST_CASE("The dense head has the study's layers and parameter count", "[models]") {
  models::DenseHead head(models::DenseHeadOptions(1280));
  // Keras: Dense(512) on 1280 features, Dense(128), Dense(2): (1280*512+512) + (512*128+128) + (128*2+2)
  CHECK(models::count_parameters(*head) == 1280 * 512 + 512 + 512 * 128 + 128 + 128 * 2 + 2);
  models::DenseHead with_bn(models::DenseHeadOptions(1280).batch_norm(true));
  CHECK(models::count_parameters(*with_bn) == models::count_parameters(*head) + 2 * 128);
  CHECK(head->forward(torch::randn({4, 1280})).sizes() == torch::IntArrayRef({4, 2}));
  CHECK_THROWS_AS(models::DenseHead(models::DenseHeadOptions(1280).dropout(1.0)), std::invalid_argument);
}

TEST_CASE("A frozen backbone gets no gradient and keeps its BatchNorm in inference mode", "[models]") {
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").freeze_backbone(true));
  model->train();
  for (const auto& p : model->backbone()->parameters()) CHECK_FALSE(p.requires_grad());
  for (const auto& p : model->head()->parameters()) CHECK(p.requires_grad());
  for (const auto& m : model->backbone()->modules(false)) CHECK_FALSE(m->is_training());

  auto before = models::state_dict(*model->backbone());
  std::map<std::string, torch::Tensor> copy;
  for (auto& kv : before) copy[kv.first] = kv.second.clone();
  auto loss = model->forward(torch::randn({4, 3, 50, 50})).sum();
  loss.backward();
  for (auto& kv : models::state_dict(*model->backbone())) CHECK(torch::equal(kv.second, copy[kv.first]));

  model->set_backbone_frozen(false);
  model->train();
  for (const auto& p : model->backbone()->parameters()) CHECK(p.requires_grad());
  // train_bn = false: convolutions train, BatchNorm layers stay in inference mode.
  for (const auto& m : model->backbone()->modules(false)) {
    if (m->as<torch::nn::BatchNorm2d>()) CHECK_FALSE(m->is_training());
    if (m->as<torch::nn::Conv2d>()) CHECK(m->is_training());
  }
}

TEST_CASE("A saved classifier loads back with identical outputs and self-describing model.json", "[models][io]") {
  test::TempDir dir;
  torch::manual_seed(3);
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").batch_norm(true).dropout(0.5));
  model->eval();
  auto x = torch::randn({3, 3, 50, 50});
  auto expected = model->forward(x);
  inference::ModelCard card;
  card.preprocessing.image_size = 50;
  inference::save_model(model, card, dir / "model" / "1");
  inference::save_model(model, {}, dir / "model" / "2");
  CHECK(io::list_versions(dir / "model") == std::vector<int64_t>{1, 2});

  auto loaded = inference::load_model(dir / "model");
  CHECK(loaded.directory.filename() == "2");
  CHECK(torch::allclose(loaded.model->forward(x), expected));
  auto j = nlohmann::json::parse(io::read_file(loaded.directory / "model.json"));
  CHECK(j["format"] == "histocnn.model");
  CHECK(j["format_version"] == 1);
  CHECK(j["backbone"] == "simple_cnn");
  CHECK(j["classifier"]["dropout"] == 0.5);
  CHECK(j["class_names"][1] == "IDC-positive");

  // A version folder without model.json (a crash mid-write) is not taken as the newest.
  std::filesystem::create_directories(dir / "model" / "3");
  io::save_safetensors(dir / "model" / "3" / "model.safetensors", {});
  CHECK(inference::load_model(dir / "model").directory.filename() == "2");
}

TEST_CASE("Loading weights reports missing, unexpected and mismatched keys", "[models]") {
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn"));
  auto sd = models::state_dict(*model);
  io::TensorMap tensors;
  for (auto& kv : sd) tensors[kv.first] = kv.second.clone();
  tensors.erase("head.fc1.bias");
  tensors["head.extra"] = torch::zeros({2});
  tensors["head.logits.weight"] = torch::zeros({3, 128});

  models::LoadOptions strict;
  strict.source = "broken.safetensors";
  REQUIRE_THROWS_WITH(models::load_state_dict(*model, tensors, strict),
                      Catch::Contains("broken.safetensors") && Catch::Contains("missing 1: head.fc1.bias") &&
                          Catch::Contains("unexpected 1: head.extra") && Catch::Contains("head.logits.weight"));
  models::LoadOptions lenient;
  lenient.strict = false;
  auto report = models::load_state_dict(*model, tensors, lenient);
  CHECK(report.missing == std::vector<std::string>{"head.fc1.bias"});
  CHECK(report.unexpected == std::vector<std::string>{"head.extra"});
  CHECK(report.mismatched.size() == 1);
  CHECK(report.loaded.size() == sd.size() - 2);
}

TEST_CASE("A damaged bundle gets an error naming the file", "[models][io]") {
  test::TempDir dir;
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn"));
  inference::save_model(model, {}, dir / "m");
  {
    std::ofstream(dir / "m" / "model.json") << "{not json";
  }
  REQUIRE_THROWS_WITH(inference::load_model(dir / "m"), Catch::Contains("model.json"));
  REQUIRE_THROWS_WITH(inference::load_model(dir / "nothing-here"), Catch::Contains("nothing-here"));
  REQUIRE_THROWS_AS(models::make_backbone("resnet9000"), std::invalid_argument);
}

TEST_CASE("The CNN+LSTM head reads the feature map as a sequence", "[models]") {
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").head("lstm").lstm_units(64));
  model->eval();
  auto x = torch::randn({2, 3, 48, 48});
  auto f = model->features(x);
  // simple_cnn: three 2x poolings, 48 -> 6: a sequence of 36 positions of 256 channels.
  CHECK(f.sizes() == torch::IntArrayRef({2, 36, 256}));
  CHECK(model->forward(x).sizes() == torch::IntArrayRef({2, 2}));
  // torch.nn.LSTM(256, 64): 4 gates x (64 x 256 input + 64 x 64 recurrent + 2 x 64 biases).
  models::LSTMHead head(models::LSTMHeadOptions(256).units(64).dense(models::DenseHeadOptions(64)));
  CHECK(models::count_parameters(*head->lstm) == 4 * 64 * (256 + 64 + 2));
  // Round trip through the bundle keeps the head type.
  test::TempDir dir;
  inference::save_model(model, {}, dir / "m");
  auto back = inference::load_model(dir / "m");
  CHECK(back.model->options().head() == "lstm");
  CHECK(torch::allclose(back.model->forward(x), model->forward(x)));
  CHECK_THROWS_WITH(models::Classifier(models::ClassifierOptions().backbone("simple_cnn").head("gru")),
                    Catch::Contains("gru"));
}

TEST_CASE("The study's drawn LSTM variant: pooled features -> embedding -> LSTM -> dense 512 -> 128 -> 2", "[models]") {
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").head("lstm_pooled").lstm_units(64));
  model->eval();
  auto x = torch::randn({2, 3, 48, 48});
  CHECK(model->features(x).sizes() == torch::IntArrayRef({2, 256}));  // pooled, as the dense head reads
  CHECK(model->forward(x).sizes() == torch::IntArrayRef({2, 2}));
  auto* head = model->head()->as<models::LSTMHeadImpl>();
  REQUIRE(head);
  // Embedding Linear(256, 64); LSTM(64, 64): 4 gates x (64 x 64 input + 64 x 64 recurrent + 2 x 64 biases);
  // the dense head 64 -> 512 -> 128 -> 2.
  CHECK(models::count_parameters(*head->embedding) == 256 * 64 + 64);
  CHECK(models::count_parameters(*head->lstm) == 4 * 64 * (64 + 64 + 2));
  CHECK(models::count_parameters(*head->dense) == (64 * 512 + 512) + (512 * 128 + 128) + (128 * 2 + 2));
  // The variant survives the bundle, and the one-step sequence gives what the modules compute by hand.
  test::TempDir dir;
  inference::save_model(model, {}, dir / "m");
  auto back = inference::load_model(dir / "m");
  CHECK(back.model->options().head() == "lstm_pooled");
  CHECK(torch::allclose(back.model->forward(x), model->forward(x)));
  torch::NoGradGuard no_grad;
  const auto f = model->features(x);
  const auto seq = torch::relu(head->embedding->forward(f)).unsqueeze(1);
  const auto by_hand = head->dense->forward(std::get<0>(head->lstm->forward(seq)).select(1, 0));
  CHECK(torch::allclose(model->head_forward(f), by_hand));
}

TEST_CASE("unfreeze_last trains only the last layers of a frozen backbone, as Keras counts them", "[models]") {
  models::Classifier model(models::ClassifierOptions().backbone("mobilenet_v2").freeze_backbone(true).unfreeze_last(4));
  CHECK_FALSE(model->backbone_frozen());
  // Keras' MobileNetV2 layers[-4:]: block_16_project_BN, Conv_1, Conv_1_bn, out_relu.
  const std::set<std::string> expected = {"features.17.conv.3.weight", "features.17.conv.3.bias",
                                          "features.18.0.weight", "features.18.1.weight", "features.18.1.bias"};
  std::set<std::string> trainable;
  for (const auto& p : model->backbone()->named_parameters()) {
    if (p.value().requires_grad()) trainable.insert(p.key());
  }
  CHECK(trainable == expected);
  model->train();
  for (const auto& m : model->backbone()->named_modules("", /*include_self=*/false)) {
    const bool trains = m.key() == "features.18.0";
    if (m.value()->as<torch::nn::Conv2d>()) CHECK(m.value()->is_training() == trains);
    if (m.value()->as<torch::nn::BatchNorm2d>()) CHECK_FALSE(m.value()->is_training());  // train_bn = false
  }
  CHECK_THROWS_WITH(models::Classifier(models::ClassifierOptions().backbone("simple_cnn").unfreeze_last(99)),
                    Catch::Contains("unfreeze_last"));
}
