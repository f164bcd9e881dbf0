#include "test_prelude.h"

#include "histocnn/core/error.h"
#include "histocnn/pipeline/components.h"
#include "histocnn/pipeline/kfp.h"
#include "histocnn/pipeline/spec.h"

#include "test_support.h"

#include <nlohmann/json.hpp>

using namespace histocnn;
using namespace histocnn::pipeline;
using json = nlohmann::json;

namespace {

const char* kYaml = R"(
name: demo
pipeline_root: root
ExampleGen:
  data_dir: data/idc
  split: {train: 0.6, val: 0.2, test: 0.2, seed: 3}
Trainer:
  backbone: simple_cnn
  image_size: 40
  epochs: 2
  normalisation: "imagenet"
Evaluator:
  value_thresholds: {roc_auc: 0.9, recall: 0.85}
  change_thresholds: {roc_auc: -0.01}
Pusher:
  model_base_path: models/idc
)";

json config_of(const PipelineSpec& spec, Component c) { return json::parse(spec.task(c).config_json); }

}  // namespace

TEST_CASE("A pipeline.yaml becomes eight tasks linked by their artifacts, with absolute paths", "[pipeline]") {
  const auto spec = parse_pipeline_spec(kYaml, "pipeline.yaml");
  REQUIRE(spec.tasks.size() == 8);
  std::vector<std::string> names;
  for (const auto& t : spec.tasks) names.push_back(component_name(t.component));
  CHECK(names == std::vector<std::string>{"ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Transform",
                                          "Trainer", "Evaluator", "Pusher"});
  CHECK(spec.pipeline_root == std::filesystem::absolute("root").lexically_normal());
  CHECK(spec.metadata == spec.pipeline_root / "metadata.sqlite");
  CHECK(spec.version.rfind("demo_", 0) == 0);
  CHECK(spec.version.size() == std::string("demo_").size() + 12);
  // data_dir became data_dirs, absolute; the Pusher's base path reaches the Evaluator.
  CHECK(config_of(spec, Component::example_gen)["data_dirs"][0] ==
        std::filesystem::absolute("data/idc").lexically_normal().string());
  CHECK(config_of(spec, Component::evaluator)["model_base_path"] ==
        std::filesystem::absolute("models/idc").lexically_normal().string());
  // The Transform reads the Trainer's input options; a quoted YAML scalar stays a string.
  CHECK(config_of(spec, Component::transform)["image_size"] == 40);
  CHECK(config_of(spec, Component::transform)["normalisation"] == "imagenet");
  CHECK(config_of(spec, Component::trainer)["epochs"] == 2);
  // Inputs name their producers.
  const auto& trainer = spec.task(Component::trainer);
  REQUIRE(trainer.inputs.size() == 2);
  CHECK(trainer.inputs[0].producer == "examplegen");
  CHECK(trainer.inputs[1].producer == "transform");
  const auto& pusher = spec.task(Component::pusher);
  CHECK(pusher.inputs[1].name == "blessing");
  CHECK(pusher.inputs[1].producer == "evaluator");
}

TEST_CASE("Overrides change the configuration and the version; the same spec has the same version", "[pipeline]") {
  const auto a = parse_pipeline_spec(kYaml, "pipeline.yaml");
  const auto b = parse_pipeline_spec(kYaml, "pipeline.yaml");
  CHECK(a.version == b.version);
  const auto c = parse_pipeline_spec(kYaml, "pipeline.yaml", {"Trainer.epochs=1", "Evaluator.value_thresholds.roc_auc=0.5"});
  CHECK(c.version != a.version);
  CHECK(config_of(c, Component::trainer)["epochs"] == 1);
  CHECK(config_of(c, Component::evaluator)["value_thresholds"]["roc_auc"] == 0.5);
  CHECK(config_of(c, Component::evaluator)["value_thresholds"]["recall"] == 0.85);
  const auto d = parse_pipeline_spec(kYaml, "pipeline.yaml", {"ExampleGen.data_dirs=[a, b]", "ExampleGen.data_dir=null"});
  CHECK(config_of(d, Component::example_gen)["data_dirs"].size() == 2);
}

TEST_CASE("Mistakes in pipeline.yaml are named with the file and the key", "[pipeline]") {
  auto fails_with = [](const std::string& text, const std::vector<std::string>& overrides, const std::string& words) {
    INFO(text);
    CHECK_THROWS_WITH(parse_pipeline_spec(text, "p.yaml", overrides), Catch::Contains(words));
  };
  fails_with(kYaml, {"Trainr.epochs=1"}, "unknown key 'Trainr'");
  fails_with(kYaml, {"Trainer.data_dir=x"}, "'data_dir' is set by the pipeline");
  fails_with(kYaml, {"Trainer.epochz=3"}, "epochz");
  fails_with(kYaml, {"Trainer.epochs=-1"}, "epochs");
  fails_with(kYaml, {"Pusher.model_base_path=null"}, "Pusher.model_base_path is required");
  fails_with(kYaml, {"ExampleGen.manifest=m.csv"}, "exactly one source of data");
  fails_with(kYaml, {"Evaluator.value_thresholds.auc=0.9"}, "unknown metric 'auc'");
  fails_with(kYaml, {"ExampleValidator.drift_severity=fatal"}, "drift_severity");
  fails_with(kYaml, {"Transform.image_size=3"}, "Trainer's option");
  fails_with("name: x\nPusher: [1, 2]\n", {}, "section 'Pusher' must be a mapping");
  fails_with("name: [unclosed\n", {}, "not valid YAML");
  CHECK_THROWS_AS(load_pipeline_spec("/nonexistent/pipeline.yaml"), NotFoundError);
}

TEST_CASE("Component arguments parse as a Kubeflow step passes them", "[pipeline]") {
  const auto call = parse_component_args({"trainer", "--config", "{\"epochs\": 1}", "--input", "examples=/a/b",
                                          "--input", "transform_graph=/c", "--output", "model=/d/model"});
  CHECK(call.component == Component::trainer);
  CHECK(call.config_json == "{\"epochs\": 1}");
  CHECK(call.inputs.at("examples") == "/a/b");
  CHECK(call.outputs.at("model") == "/d/model");
  CHECK_THROWS_WITH(parse_component_args({"Trainer", "--input", "nopath"}), Catch::Contains("NAME=PATH"));
  CHECK_THROWS_WITH(parse_component_args({"Painter"}), Catch::Contains("unknown pipeline component 'Painter'"));
  CHECK_THROWS_WITH(parse_component_args({"Trainer", "--frobnicate"}), Catch::Contains("unknown argument"));
  // run_component refuses a missing input folder before doing anything.
  test::TempDir dir("histocnn-pipeline");
  ComponentCall c;
  c.component = Component::statistics_gen;
  c.inputs["examples"] = dir / "missing";
  c.outputs["statistics"] = dir / "out";
  CHECK_THROWS_AS(run_component(c), NotFoundError);
}

TEST_CASE("A compiled Kubeflow file reads back as the same tasks; placeholders resolve or are refused", "[pipeline]") {
  const auto spec = parse_pipeline_spec(kYaml, "pipeline.yaml");
  const std::string ir = compile_kfp(spec);
  CHECK(ir.find("schemaVersion: 2.1.0") != std::string::npos);
  const auto back = parse_kfp(ir, "pipeline.kfp.yaml");
  CHECK(back.name == spec.name);
  CHECK(back.version == spec.version);
  CHECK(back.pipeline_root == spec.pipeline_root);
  CHECK(back.image == spec.image);
  REQUIRE(back.tasks.size() == spec.tasks.size());
  for (size_t i = 0; i < spec.tasks.size(); ++i) {
    INFO(spec.tasks[i].name);
    CHECK(back.tasks[i].name == spec.tasks[i].name);
    CHECK(back.tasks[i].component == spec.tasks[i].component);
    CHECK(json::parse(back.tasks[i].config_json) == json::parse(spec.tasks[i].config_json));
    REQUIRE(back.tasks[i].inputs.size() == spec.tasks[i].inputs.size());
    for (size_t k = 0; k < spec.tasks[i].inputs.size(); ++k) {
      CHECK(back.tasks[i].inputs[k].producer == spec.tasks[i].inputs[k].producer);
      CHECK(back.tasks[i].inputs[k].output == spec.tasks[i].inputs[k].output);
    }
    REQUIRE(back.tasks[i].command.size() > 4);
    CHECK(back.tasks[i].command[0] == "histocnn");
  }
  // The version is the content: recomputed from the tasks read back, it is the same.
  CHECK(pipeline_version(back.name, back.tasks) == spec.version);

  CHECK(resolve_placeholders("m={{$.inputs.artifacts['model'].path}}/x", {}, {{"model", "/a"}}, {}) == "m=/a/x");
  CHECK(resolve_placeholders("{{$.inputs.parameters['config']}}", {{"config", "{\"a\": 1}"}}, {}, {}) == "{\"a\": 1}");
  CHECK(resolve_placeholders("{{$.outputs.artifacts['y'].uri}}", {}, {}, {{"y", "/o"}}) == "/o");
  CHECK_THROWS_WITH(resolve_placeholders("{{$.inputs.artifacts['nope'].path}}", {}, {{"model", "/a"}}, {}),
                    Catch::Contains("'nope'"));
  CHECK_THROWS_WITH(resolve_placeholders("{{$.outputs.parameters['p'].output_file}}", {}, {}, {}),
                    Catch::Contains("not one this runner resolves"));

  // A cycle is refused: make the ExampleGen depend on the Pusher.
  std::string cyclic = ir;
  const std::string anchor = "      examplegen:\n";
  const auto at = cyclic.find(anchor);
  REQUIRE(at != std::string::npos);
  cyclic.insert(at + anchor.size(), "        dependentTasks:\n          - pusher\n");
  CHECK_THROWS_WITH(parse_kfp(cyclic, "cyclic.yaml"), Catch::Contains("cycle"));
}
