#include "test_prelude.h"

#include "histocnn/inference/saved_model.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/bundle.h"
#include "histocnn/pipeline/components.h"
#include "histocnn/pipeline/kfp.h"
#include "histocnn/pipeline/metadata.h"
#include "histocnn/pipeline/runner.h"
#include "histocnn/serve/versions.h"

#include "test_support.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <set>

using namespace histocnn;
using namespace histocnn::pipeline;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A pipeline small enough to train in seconds: 8 synthetic patients, 32 px, one epoch.
std::string tiny_pipeline(const fs::path& dir) {
  return fmt::format(R"(
name: tiny
pipeline_root: {0}/root
ExampleGen:
  synthetic: {{patients: 8, patches_per_patient: 20, seed: 5}}
  split: {{train: 0.6, val: 0.2, test: 0.2, seed: 1}}
Trainer:
  backbone: simple_cnn
  freeze_backbone: false
  image_size: 32
  hidden1: 16
  hidden2: 8
  epochs: 1
  batch_size: 16
  workers: 1
  tensorboard: false
Evaluator:
  value_thresholds: {{roc_auc: 0.0}}
  stain_shift: 0.1
Pusher:
  model_base_path: {0}/models
)", dir.string());
}

std::map<std::string, std::string> states(const PipelineRunResult& r) {
  std::map<std::string, std::string> s;
  for (const auto& e : r.components) s[e.component] = e.state;
  return s;
}

std::string artifact(const PipelineRunResult& r, const std::string& name) {
  for (const auto& [k, v] : r.artifacts) {
    if (k == name) return v;
  }
  FAIL("no artifact " << name);
  return "";
}

}  // namespace

TEST_CASE("A pipeline pushes a blessed model, caches, refuses a worse one and runs the same from its Kubeflow file",
          "[pipeline]") {
  test::TempDir dir("histocnn-pipeline-run");
  const fs::path base = dir / "models";
  const auto spec = parse_pipeline_spec(tiny_pipeline(dir.path()), "tiny.yaml");
  std::vector<std::string> seen;
  RunnerOptions o;
  o.on_event = [&](const ComponentEvent& e) { seen.push_back(e.component + " " + e.state); };

  // 1. From nothing to a served version.
  const auto first = run_pipeline(spec, o);
  CHECK(first.state == "COMPLETE");
  for (const auto& [component, state] : states(first)) CHECK(state == "COMPLETE");
  CHECK(seen.size() == 16);  // RUNNING, then the end state, per component
  REQUIRE(first.blessed);
  CHECK(*first.blessed);
  REQUIRE(first.pushed_version);
  CHECK(*first.pushed_version == 1);
  CHECK(io::list_versions(base) == std::vector<int64_t>{1});
  const auto served = inference::load_model(base);  // what histocnn serve loads
  CHECK(served.directory == base / "1");
  const fs::path blessing = artifact(first, "Evaluator.blessing");
  CHECK(fs::exists(fs::path(blessing) / "BLESSED"));
  CHECK_FALSE(fs::exists(fs::path(blessing) / "NOT_BLESSED"));
  // The bundle carries exactly the Transform's preprocessing.
  CHECK(json::parse(served.card.preprocessing.to_json()) ==
        json::parse(io::read_file(fs::path(artifact(first, "Transform.transform_graph")) / "preprocessing.json")));

  // 2. Again: the data and the training are reused; with a served version now, the Evaluator
  // compares against it and the Pusher finds the model already there.
  const auto second = run_pipeline(spec, o);
  auto s = states(second);
  for (const char* c : {"ExampleGen", "StatisticsGen", "SchemaGen", "Transform", "Trainer"}) CHECK(s[c] == "CACHED");
  CHECK(s["Evaluator"] == "COMPLETE");
  CHECK(*second.pushed_version == 1);
  CHECK(io::list_versions(base) == std::vector<int64_t>{1});
  const json eval2 = json::parse(io::read_file(fs::path(artifact(second, "Evaluator.evaluation")) / "evaluation.json"));
  REQUIRE(eval2["baseline"].is_object());
  CHECK(eval2["baseline"]["version"] == 1);
  // The baseline is the same model, evaluated now on the same patients: the same numbers.
  CHECK(eval2["baseline"]["plain"] == eval2["candidate"]["plain"]);
  CHECK(eval2["baseline"]["restained"] == eval2["candidate"]["restained"]);
  // 3. And again: now every key is settled.
  for (const auto& [component, state] : states(run_pipeline(spec, o))) {
    INFO(component);
    CHECK(state == "CACHED");
  }

  // 4. A model that must beat the served one by 0.5 AUC cannot: NOT_BLESSED, nothing pushed.
  const auto strict_spec = parse_pipeline_spec(tiny_pipeline(dir.path()), "tiny.yaml", {"Evaluator.change_thresholds.roc_auc=0.5"});
  const auto strict = run_pipeline(strict_spec, o);
  CHECK(strict.state == "COMPLETE");
  REQUIRE(strict.blessed);
  CHECK_FALSE(*strict.blessed);
  CHECK_FALSE(strict.pushed_version);
  CHECK(fs::exists(fs::path(artifact(strict, "Evaluator.blessing")) / "NOT_BLESSED"));
  CHECK(io::read_file(fs::path(artifact(strict, "Evaluator.blessing")) / "reasons.txt").find("roc_auc") != std::string::npos);
  CHECK(io::list_versions(base) == std::vector<int64_t>{1});
  CHECK(serve::list_served_versions(base).back().live);

  // 5. Lineage from the served version back to the data.
  MetadataStore store(spec.metadata);
  std::set<std::string> components;
  for (const auto& row : store.lineage(base, 1)) components.insert(row.component);
  CHECK(components == std::set<std::string>{"ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
                                            "Trainer", "Evaluator", "Pusher"});
  CHECK(store.runs().size() == 4);
  CHECK(store.health().at("integrity_check") == "ok");

  // 6. The compiled Kubeflow file, run locally into another root: the same artifacts and verdict.
  const auto ir_spec = parse_pipeline_spec(tiny_pipeline(dir.path()), "tiny.yaml",
                                           {"Pusher.model_base_path=" + (dir / "models-ir").string()});
  io::write_file_atomic(dir / "tiny.kfp.yaml", compile_kfp(ir_spec));
  RunnerOptions ir_options;
  ir_options.pipeline_root = dir / "root-ir";
  const auto ir = run_pipeline(load_kfp(dir / "tiny.kfp.yaml"), ir_options);
  CHECK(ir.metadata == dir / "root-ir" / "metadata.sqlite");
  for (const auto& [component, state] : states(ir)) CHECK(state == "COMPLETE");
  CHECK(ir.pipeline_version == ir_spec.version);
  for (const auto& [name, file] : std::vector<std::pair<std::string, std::string>>{
           {"ExampleGen.examples", "manifest.csv"}, {"SchemaGen.schema", "schema.json"},
           {"ExampleValidator.anomalies", "anomalies.json"}, {"Transform.transform_graph", "preprocessing.json"}}) {
    INFO(name);
    CHECK(io::read_file(fs::path(artifact(ir, name)) / file) == io::read_file(fs::path(artifact(first, name)) / file));
  }
  CHECK(*ir.blessed == *first.blessed);
  CHECK(*ir.pushed_version == 1);
  const json eval_ir = json::parse(io::read_file(fs::path(artifact(ir, "Evaluator.evaluation")) / "evaluation.json"));
  const json eval1 = json::parse(io::read_file(fs::path(artifact(first, "Evaluator.evaluation")) / "evaluation.json"));
  CHECK(eval_ir["candidate"]["plain"]["roc_auc"].get<double>() ==
        Approx(eval1["candidate"]["plain"]["roc_auc"].get<double>()).margin(1e-6));
}

TEST_CASE("Error-level anomalies stop a pipeline before training, recorded as FAILED", "[pipeline]") {
  test::TempDir dir("histocnn-pipeline-anomalies");
  json curated = {{"image", {{"width", {{"min", 60}, {"max", 60}}}, {"height", {{"min", 60}, {"max", 60}}}}},
                  {"labels", {0, 1}},
                  {"patient_id_pattern", "^[0-9]+$"},
                  {"splits", {"train", "val", "test"}}};
  io::write_file_atomic(dir / "schema.json", curated.dump());
  const auto spec = parse_pipeline_spec(tiny_pipeline(dir.path()), "tiny.yaml",
                                        {"SchemaGen.schema_file=" + (dir / "schema.json").string()});
  CHECK_THROWS_AS(run_pipeline(spec), AnomaliesFound);
  MetadataStore store(spec.metadata);
  const auto runs = store.runs();
  REQUIRE(runs.size() == 1);
  CHECK(runs[0].state == "FAILED");
  REQUIRE(runs[0].executions.size() == 4);
  CHECK(runs[0].executions.back().component == "ExampleValidator");
  CHECK(runs[0].executions.back().state == "FAILED");
  CHECK(runs[0].executions.back().error.find("wrong_size") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "models"));
  CHECK_FALSE(fs::exists(dir / "root" / "Trainer"));

  // The same again: what finished is reused; with --no-cache it runs again into fresh folders.
  CHECK_THROWS_AS(run_pipeline(spec), AnomaliesFound);
  RunnerOptions no_cache;
  no_cache.use_cache = false;
  CHECK_THROWS_AS(run_pipeline(spec, no_cache), AnomaliesFound);
  const auto all = store.runs();
  REQUIRE(all.size() == 3);
  for (int i = 0; i < 3; ++i) {
    INFO(all[1].executions[i].component);
    CHECK(all[1].executions[i].state == "CACHED");
    CHECK(all[0].executions[i].state == "COMPLETE");
  }
  size_t folders = 0;
  for (const auto& entry : fs::directory_iterator(dir / "root" / "ExampleGen")) folders += entry.is_directory();
  CHECK(folders == 2);
}
