#include "histocnn/data/synthetic.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/train/compare.h"
#include "histocnn/train/options.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <map>

using namespace histocnn;

TEST_CASE("Options are set by their flat names, with clear errors", "[train]") {
  train::RunOptions o;
  train::set_run_option(o, "backbone", "\"simple_cnn\"");
  train::set_run_option(o, "learning_rate", "0.0005");
  train::set_run_option(o, "augment", "\"study\"");
  train::set_run_option(o, "seed", "9");
  train::set_run_option(o, "unfreeze_last", "4");
  CHECK(o.model.backbone() == "simple_cnn");
  CHECK(o.trainer.learning_rate == 0.0005);
  CHECK(o.trainer.augment.rotation_degrees == 20);
  CHECK(o.trainer.seed == 9);
  CHECK(o.split.seed == 9);
  CHECK(o.model.unfreeze_last() == 4);
  CHECK_THROWS_WITH(train::set_run_option(o, "learning_rat", "1"), Catch::Contains("learning_rat") &&
                                                                       Catch::Contains("learning_rate"));
  CHECK_THROWS_WITH(train::set_run_option(o, "epochs", "\"ten\""), Catch::Contains("epochs"));
  CHECK(train::run_option_names().size() > 40);
}

TEST_CASE("Every option reads back what was set, and the defaults are the struct's", "[train]") {
  const train::RunOptions defaults;
  // A few defaults against the struct fields themselves.
  CHECK(train::get_run_option(defaults, "epochs") == std::to_string(defaults.trainer.epochs));
  CHECK(train::get_run_option(defaults, "backbone") == "\"" + defaults.model.backbone() + "\"");
  CHECK(train::get_run_option(defaults, "augment") == "\"none\"");
  CHECK(train::get_run_option(defaults, "output_dir") == "\"runs\"");
  // Round trip: for every option, a value other than the default is set and read back.
  const std::map<std::string, std::string> strings = {
      {"augment", "\"histology\""}, {"optimizer", "\"adam\""}, {"schedule", "\"cosine\""},
      {"head", "\"lstm\""}, {"backbone", "\"simple_cnn\""}, {"threshold_method", "\"sensitivity\""}, {"dist_backend", "\"gloo\""},
      {"class_weight", "\"balanced\""}, {"sampler", "\"balanced\""}, {"mixed_precision", "\"bf16\""},
      {"normalisation", "\"caffe\""}, {"stain_normalise", "\"macenko\""}, {"stain_fit", "\"slide\""},
      {"colour", "\"grey\""}};
  for (const auto& name : train::run_option_names()) {
    INFO(name);
    const auto before = nlohmann::json::parse(train::get_run_option(defaults, name));
    std::string other;
    if (strings.count(name)) other = strings.at(name);
    else if (before.is_boolean()) other = before.get<bool>() ? "false" : "true";
    else if (before.is_number_integer() || before.is_number_unsigned()) other = std::to_string(before.get<int64_t>() + 3);
    else if (before.is_number()) other = fmt::format("{}", before.get<double>() / 2 + 0.125);
    else other = "\"some/value\"";
    train::RunOptions o;
    train::set_run_option(o, name, other);
    CHECK(nlohmann::json::parse(train::get_run_option(o, name)) == nlohmann::json::parse(other));
    CHECK(nlohmann::json::parse(train::run_option_values(o))[name] == nlohmann::json::parse(other));
  }
  CHECK_THROWS_WITH(train::get_run_option(defaults, "epoch"), Catch::Contains("epochs"));
  // A choice is checked where it is set, with the allowed values in the message.
  train::RunOptions o;
  CHECK_THROWS_WITH(train::set_run_option(o, "optimizer", "\"adamax\""),
                    Catch::Contains("choose one of: rmsprop, adam, adamw, sgd"));
}

TEST_CASE("Run options are checked before any data is read, and contradictions are refused", "[train]") {
  train::RunOptions o;
  o.data_dirs = {"/nonexistent/folder/never/scanned"};
  o.image_size = 0;
  CHECK_THROWS_WITH(train::run_training(o), Catch::Contains("image_size"));
  o.image_size = 50;
  o.trainer.schedule = train::Schedule::cosine;
  o.trainer.reduce_lr_patience = 2;
  CHECK_THROWS_WITH(train::run_training(o), Catch::Contains("choose one"));
  o.trainer.schedule = train::Schedule::constant;
  o.trainer.reduce_lr_patience = 0;
  o.trainer.warmup_epochs = 1;
  CHECK_THROWS_WITH(train::run_training(o), Catch::Contains("warmup_epochs"));
  o.trainer.warmup_epochs = 0;
  o.model.num_classes(3);
  CHECK_THROWS_WITH(train::run_training(o), Catch::Contains("num_classes must be 2"));
}

TEST_CASE("A compare config expands its grid and the study's ablation", "[train]") {
  test::TempDir dir;
  io::write_file_atomic(dir / "grid.json", R"({"data_dir": "d", "output_dir": "out",
      "base": {"epochs": 3, "image_size": 50},
      "grid": {"backbone": ["simple_cnn", "mobilenet_v2"], "freeze_backbone": [true, false]}})");
  auto grid = train::load_compare_config(dir / "grid.json");
  REQUIRE(grid.steps.size() == 4);
  CHECK(grid.steps[0].label == "backbone=simple_cnn freeze_backbone=true");
  CHECK(grid.steps[3].options.model.backbone() == "mobilenet_v2");
  CHECK_FALSE(grid.steps[3].options.model.freeze_backbone());
  CHECK(grid.steps[3].options.trainer.epochs == 3);
  // Distinct runs get distinct folders.
  std::set<std::string> names;
  for (const auto& s : grid.steps) names.insert(train::default_run_name(s.options));
  CHECK(names.size() == 4);

  io::write_file_atomic(dir / "ablation.json", R"({"data_dir": "d", "base": {"epochs": 10}, "ablation": true})");
  auto ablation = train::load_compare_config(dir / "ablation.json");
  REQUIRE(ablation.steps.size() == 7);
  const auto& last = ablation.steps.back().options;
  CHECK(last.trainer.epochs == 20);
  CHECK(last.model.batch_norm());
  CHECK(last.trainer.augment.enabled);
  CHECK(last.model.dropout() == 0.5);
  CHECK(last.trainer.optimizer == train::OptimizerKind::adam);
  CHECK(last.model.unfreeze_last() == 4);
  CHECK(ablation.steps[1].options.trainer.optimizer == train::OptimizerKind::rmsprop);

  io::write_file_atomic(dir / "bad.json", R"({"data_dir": "d", "grid": {"dropouts": [0.1]}})");
  CHECK_THROWS_WITH(train::load_compare_config(dir / "bad.json"),
                    Catch::Contains("bad.json") && Catch::Contains("dropouts"));
  io::write_file_atomic(dir / "bad2.json", R"({"data": "d"})");
  CHECK_THROWS_WITH(train::load_compare_config(dir / "bad2.json"), Catch::Contains("unknown key 'data'"));
}

TEST_CASE("The comparison runs each grid point once and tabulates them", "[train][slow]") {
  test::TempDir dir;
  const auto synth = test::synthetic_options(6, 20);
  test::synthetic_folder(dir, synth);
  io::write_file_atomic(dir / "c.json", fmt::format(R"({{"data_dir": "{}", "output_dir": "{}",
      "base": {{"backbone": "simple_cnn", "epochs": 1, "image_size": 32, "hidden1": 16, "hidden2": 8}},
      "grid": {{"freeze_backbone": [true, false]}}}})",
                                                      (dir / "data").string(), (dir / "out").string()));
  auto config = train::load_compare_config(dir / "c.json");
  auto rows = train::run_compare(config);
  REQUIRE(rows.size() == 2);
  for (const auto& r : rows) {
    CHECK_FALSE(r.reused);
    CHECK(r.parameters > 0);
    CHECK(r.auc >= 0);
    CHECK(r.auc <= 1);
  }
  auto md = io::read_file(dir / "out" / "results.md");
  CHECK(md.find("freeze_backbone=false") != std::string::npos);
  auto again = train::run_compare(config);
  CHECK(again[0].reused);
  CHECK(again[1].auc == rows[1].auc);
}

TEST_CASE("The study preset is the recipe as written, and options given after it override it", "[train]") {
  train::RunOptions o;
  train::apply_run_preset(o, "study");
  CHECK(o.model.backbone() == "vgg16");
  CHECK(o.weights == "imagenet");
  CHECK(o.model.freeze_backbone());
  CHECK(o.image_size == 50);
  CHECK(o.trainer.optimizer == train::OptimizerKind::rmsprop);
  CHECK(o.trainer.learning_rate == Approx(1e-3));
  CHECK(o.trainer.batch_size == 32);
  CHECK(o.trainer.epochs == 10);
  CHECK(o.trainer.reduce_lr_patience == 20);
  CHECK(o.trainer.reduce_lr_factor == Approx(0.2));
  CHECK(o.trainer.min_lr == Approx(1e-4));
  CHECK(o.balance_per_class == 2500);
  CHECK_FALSE(o.trainer.augment.enabled);
  CHECK_FALSE(o.split.by_patch);  // the honest split stays
  o.data_dirs = {"patches"};
  o.validate();
  CHECK_THROWS_WITH(train::apply_run_preset(o, "keras"), Catch::Contains("unknown recipe 'keras'") &&
                                                             Catch::Contains("study"));

  test::TempDir dir;
  const auto config = dir / "c.json";
  io::write_file_atomic(config, R"({"data_dir": "d", "base": {"epochs": 3, "preset": "study"}})");
  const auto c = train::load_compare_config(config);
  CHECK(c.steps.front().options.trainer.epochs == 3);  // the key overrides the preset wherever it stands
  CHECK(c.steps.front().options.model.backbone() == "vgg16");
}

TEST_CASE("The robust-cnn recipe trains the small CNN from scratch with stain jitter, and validates", "[train]") {
  train::RunOptions o;
  train::set_run_option(o, "backbone", "\"vgg16\"");  // a recipe replaces what was set before it
  train::apply_run_preset(o, "robust-cnn");
  CHECK(o.model.backbone() == "simple_cnn");
  CHECK(o.weights.empty());
  CHECK_FALSE(o.model.freeze_backbone());
  CHECK(o.image_size == 50);
  CHECK(o.trainer.optimizer == train::OptimizerKind::adam);
  CHECK(o.trainer.epochs == 8);
  CHECK(o.trainer.per_patient == 250);
  CHECK(o.split.train == Approx(0.72));
  CHECK(o.split.val == Approx(0.08));
  CHECK(o.split.test == Approx(0.2));
  CHECK(o.trainer.augment.enabled);
  CHECK(o.trainer.augment.stain_jitter == Approx(0.1));
  CHECK(o.trainer.augment.rotate90);
  CHECK(o.threshold_method == "youden");
  o.data_dirs = {"patches"};
  o.validate();
  auto names = train::run_preset_names();
  CHECK(std::find(names.begin(), names.end(), "robust-cnn") != names.end());
}
