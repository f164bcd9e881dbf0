#pragma once
// A pipeline as a list of tasks: the components ExampleGen -> StatisticsGen -> SchemaGen ->
// ExampleValidator -> Transform -> Trainer -> Evaluator -> Pusher, each with its configuration,
// read from a pipeline.yaml (or from a compiled Kubeflow Pipelines file, see kfp.h).
//
//   auto spec = histocnn::pipeline::load_pipeline_spec("pipeline.yaml", {"Trainer.epochs=1"});
//   fmt::print("{} ({} tasks), artifacts under {}\n", spec.version, spec.tasks.size(),
//              spec.pipeline_root.string());
//
// pipeline.yaml (docs/pipeline.md has every key):
//
//   name: idc-synthetic
//   pipeline_root: pipeline-root          # artifacts; the metadata store defaults to <root>/metadata.sqlite
//   ExampleGen: {data_dirs: [data/idc], split: {train: 0.6, val: 0.2, test: 0.2, seed: 42}}
//   Trainer: {backbone: simple_cnn, image_size: 50, epochs: 8}   # run options by name (histocnn train)
//   Evaluator: {value_thresholds: {roc_auc: 0.85}, change_thresholds: {roc_auc: -0.01}}
//   Pusher: {model_base_path: models/idc}
//
// Relative paths are taken from the current folder (as on the command line) and stored absolute,
// so the configuration, its hash and a compiled file do not depend on where they are read later.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::pipeline {

/// The components, in the order a pipeline runs them.
enum class Component { example_gen, statistics_gen, schema_gen, example_validator, transform, trainer, evaluator, pusher };

/// Every component, in pipeline order.
const std::vector<Component>& all_components();
/// TFX's name: "ExampleGen", "StatisticsGen", ...
std::string component_name(Component c);
/// The component of a TFX name (case-insensitive); std::invalid_argument lists the names.
Component parse_component(const std::string& name);

/// An input artifact of a task: the output `output` of the task `producer`.
struct TaskInput {
  std::string name;      ///< the input's name in the component's signature ("examples")
  std::string producer;  ///< the producing task's name
  std::string output;    ///< the producer's output name
};

struct Task {
  std::string name;                 ///< unique in the pipeline ("examplegen")
  Component component = Component::example_gen;
  std::string config_json = "{}";   ///< the component's configuration, a JSON object
  std::vector<TaskInput> inputs;
  /// The container command and arguments with Kubeflow placeholders, when the task comes from a
  /// compiled file (empty: the runner calls the component directly).
  std::vector<std::string> command;
};

struct PipelineSpec {
  std::string name;
  /// `<name>_<12 hex digits>`: a hash of the tasks and their configuration, so an edited pipeline
  /// is a new version and runs record which one they ran.
  std::string version;
  std::filesystem::path pipeline_root;
  std::filesystem::path metadata;   ///< the SQLite metadata store
  std::string image;                ///< the container image of a compiled pipeline
  std::string source;               ///< the file it was read from
  std::vector<Task> tasks;          ///< producers before consumers

  /// The task of a component; std::invalid_argument when the pipeline has none.
  const Task& task(Component c) const;
  /// The whole spec as JSON (name, version, root, metadata, image, tasks with config and inputs).
  std::string to_json() const;
};

/// Reads pipeline.yaml. `overrides` are `Section.key=value` (or `Section.a.b=value`, or `name=value`
/// for a top-level key), the value in YAML syntax, applied before anything is checked. Throws
/// std::invalid_argument naming the file and key for unknown sections, unknown or misplaced
/// options and bad values; NotFoundError when the file is missing.
PipelineSpec load_pipeline_spec(const std::filesystem::path& yaml, const std::vector<std::string>& overrides = {});
/// The same from text; `source` names it in messages.
PipelineSpec parse_pipeline_spec(const std::string& yaml_text, const std::string& source,
                                 const std::vector<std::string>& overrides = {});

/// The version name of a pipeline's tasks (see PipelineSpec::version).
std::string pipeline_version(const std::string& name, const std::vector<Task>& tasks);

}  // namespace histocnn::pipeline
