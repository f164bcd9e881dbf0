#pragma once
// Runs a pipeline locally: each task in order, its configuration resolved at run time, cached by
// its inputs and configuration, recorded in the metadata store.
//
//   auto spec = histocnn::pipeline::load_pipeline_spec("pipeline.yaml");
//   histocnn::pipeline::RunnerOptions o;
//   o.on_event = [](const histocnn::pipeline::ComponentEvent& e) { fmt::print("{} {}\n", e.component, e.state); };
//   auto result = histocnn::pipeline::run_pipeline(spec, o);
//   if (result.pushed_version) fmt::print("serving version {}\n", *result.pushed_version);
//
// A task's outputs live in <pipeline_root>/<Component>/<cache key>/<output>/, the cache key being
// a hash of the component, the library version, the resolved configuration and the identities of
// its input artifacts. A task whose key has a COMPLETE execution with its folders present is not
// rerun (CACHED) unless use_cache is false, which writes a fresh folder. One process at a time works
// on a key (a lock in <pipeline_root>/.locks), so two pipelines sharing tasks wait for each other
// and the second reuses the first's result. After a kill -9 the same command reuses what finished,
// and the Trainer resumes from its checkpoint in the same folder.
#include "histocnn/pipeline/spec.h"

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::pipeline {

struct ComponentEvent {
  int index = 0, total = 0;  ///< 1-based position in the pipeline
  std::string task, component;
  std::string state;         ///< RUNNING, then COMPLETE, CACHED or FAILED
  double seconds = 0;
  std::string summary;       ///< the component's one line (or the error)
  int64_t execution_id = 0;
  std::vector<std::string> outputs;  ///< output folders, "name=path"
};

/// The progress line of an event, as `histocnn pipeline run` prints it: "[6/8] Trainer ..." when a
/// component starts, "[6/8] Trainer           COMPLETE     12.3s  <summary>" when it ends (a
/// failure's summary up to its first line break).
std::string format_event(const ComponentEvent& e);

struct RunnerOptions {
  bool use_cache = true;
  bool progress = false;  ///< the components' own progress bars (training, evaluation)
  std::function<void(const ComponentEvent&)> on_event;
  std::filesystem::path pipeline_root;  ///< override the spec's ("" = keep)
  std::filesystem::path metadata;       ///< override the spec's store ("" = keep)
};

struct PipelineRunResult {
  std::string run_name, pipeline_version;
  int64_t run_id = 0;
  std::string state;  ///< COMPLETE or FAILED (a failure is also thrown)
  std::vector<ComponentEvent> components;
  std::optional<bool> blessed;          ///< the Evaluator's verdict
  std::optional<int64_t> pushed_version;
  std::filesystem::path model_base_path;
  std::filesystem::path metadata;
  /// Output folders by "Component.output" ("Evaluator.blessing").
  std::vector<std::pair<std::string, std::string>> artifacts;
};

/// Runs every task. A failing task stops the run: its execution and the run are recorded FAILED
/// and its exception is rethrown (ExampleValidator's AnomaliesFound lists the anomalies).
PipelineRunResult run_pipeline(const PipelineSpec& spec, const RunnerOptions& options = {});

}  // namespace histocnn::pipeline
