#pragma once
// Kubeflow Pipelines: a pipeline compiled to KFP's v2 intermediate representation (a PipelineSpec
// in YAML, schemaVersion 2.1.0, the format `kfp.compiler` writes), and that file read back so the
// local runner executes exactly what Kubeflow would.
//
//   auto spec = histocnn::pipeline::load_pipeline_spec("pipeline.yaml");
//   histocnn::io::write_file_atomic("pipeline.kfp.yaml", histocnn::pipeline::compile_kfp(spec));
//   auto again = histocnn::pipeline::load_kfp("pipeline.kfp.yaml");   // tasks with their commands
//   histocnn::pipeline::run_pipeline(again);
//
// Each task runs `histocnn pipeline component <Component> --config {{$.inputs.parameters['config']}}
// --input NAME={{$.inputs.artifacts['NAME'].path}} ... --output NAME={{$.outputs.artifacts['NAME'].path}}`
// in the pipeline's image; tasks are linked by taskOutputArtifact and dependentTasks. The version
// name is the root's `pipeline_version` parameter (its default), handed to every task.
#include "histocnn/pipeline/pytorchjob.h"
#include "histocnn/pipeline/spec.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace histocnn::pipeline {

/// The PipelineSpec YAML of `spec`.
std::string compile_kfp(const PipelineSpec& spec);

/// Reads a compiled file: the tasks (in dependency order) with their resolved configuration and
/// their container command (placeholders left in), the version, and the root
/// (defaultPipelineRoot). Throws std::invalid_argument naming the file and field for what this
/// runner cannot execute: a cycle, an unknown component, a non-histocnn command.
PipelineSpec load_kfp(const std::filesystem::path& file);
PipelineSpec parse_kfp(const std::string& yaml_text, const std::string& source);

/// A Kubeflow PyTorchJob for the pipeline's Trainer step: every replica runs the Trainer component
/// (`histocnn pipeline component Trainer --config ...`), which joins the data-parallel job from the
/// operator's environment; rank 0 writes the model. Its artifacts live on the claim `volume_claim`,
/// mounted at /workspace: the step that launches the job copies the examples and transform_graph
/// artifacts to /workspace/<name>/{examples,transform_graph} and, when the job has succeeded,
/// /workspace/<name>/model to its own model output (docs/pipeline.md shows such a step).
PyTorchJobOptions trainer_pytorchjob(const PipelineSpec& spec, int workers = 1,
                                     const std::string& volume_claim = "histocnn-workspace");

/// Replaces the placeholders `{{$.inputs.parameters['x']}}`, `{{$.inputs.artifacts['x'].path}}`
/// (or .uri) and `{{$.outputs.artifacts['y'].path}}` in `text`; an unknown placeholder or name
/// throws std::invalid_argument naming it.
std::string resolve_placeholders(const std::string& text, const std::map<std::string, std::string>& parameters,
                                 const std::map<std::string, std::string>& input_artifacts,
                                 const std::map<std::string, std::string>& output_artifacts);

}  // namespace histocnn::pipeline
