#pragma once
// The pipeline's components, as TFX has them: typed inputs and outputs (artifact folders), a JSON
// configuration, and one function that runs a component. The runner (runner.h), the command
// `histocnn pipeline component NAME ...` that a Kubeflow step runs, and Python all call
// run_component.
//
//   histocnn::pipeline::ComponentCall call;
//   call.component = histocnn::pipeline::Component::statistics_gen;
//   call.inputs["examples"] = "root/ExampleGen/0123abcd/examples";
//   call.outputs["statistics"] = "out/statistics";
//   auto result = histocnn::pipeline::run_component(call);   // writes out/statistics/statistics.json
//
// Signatures (input and output names; artifact types are TFX's):
//   ExampleGen        -> examples (Examples): manifest.csv with the split, examples.json
//   StatisticsGen     examples -> statistics (ExampleStatistics): statistics.json, statistics.png
//   SchemaGen         statistics -> schema (Schema): schema.json
//   ExampleValidator  statistics, schema -> anomalies (ExampleAnomalies): anomalies.json; error-level
//                     anomalies throw AnomaliesFound after writing it
//   Transform         examples, schema, anomalies -> transform_graph (TransformGraph): preprocessing.json
//   Trainer           examples, transform_graph -> model (Model): a run folder (model/1 is the bundle)
//   Evaluator         examples, model -> evaluation (ModelEvaluation), blessing (ModelBlessing):
//                     evaluation.json; BLESSED or NOT_BLESSED (empty files) and reasons.txt
//   Pusher            model, blessing -> pushed_model (PushedModel): pushed.json
#include "histocnn/pipeline/spec.h"

#include <filesystem>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace histocnn::pipeline {

class MetadataStore;

struct ArtifactSlot {
  std::string name;  ///< "examples"
  std::string type;  ///< TFX's type name ("Examples")
  std::string kfp_schema_title;  ///< Kubeflow's artifact type ("system.Dataset")
  /// An input that only orders the task (it must exist: the ExampleValidator's anomalies gate the
  /// Transform) and whose identity is not part of the cache key.
  bool gate = false;
};

struct ComponentSignature {
  Component component;
  std::vector<ArtifactSlot> inputs, outputs;
  std::string description;
};

const ComponentSignature& signature(Component c);

/// The Trainer's options that fix the preprocessing saved with the model: Transform reads them from
/// the Trainer's section of a spec, and a Transform section may not set them itself.
const std::vector<std::string>& preprocessing_option_names();

struct ComponentCall {
  Component component = Component::example_gen;
  std::string config_json = "{}";
  std::map<std::string, std::filesystem::path> inputs;   ///< input name -> artifact folder
  std::map<std::string, std::filesystem::path> outputs;  ///< output name -> folder to write
  bool progress = false;  ///< progress bars of long steps (training, evaluation)
};

struct ComponentResult {
  std::string summary;  ///< one line for people ("1920 patches of 16 patients: 1152/384/384")
  /// Output name -> properties recorded with the artifact in the metadata store (e.g. the pushed
  /// version, the blessing).
  std::map<std::string, std::map<std::string, std::string>> properties;
};

/// ExampleValidator found error-level anomalies: the message lists them; anomalies.json has them all.
struct AnomaliesFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Runs one component. Checks that the call has the signature's inputs (existing folders) and
/// outputs, creates the output folders, and throws what the component throws.
ComponentResult run_component(const ComponentCall& call);

/// The configuration a component runs with, completed from the world at run time, so that the
/// cache key sees it: the Evaluator's baseline (the version `Pusher.model_base_path` serves now,
/// identified by its model.json), the ExampleGen's data fingerprint (names, sizes and times of the
/// files), the ExampleValidator's reference statistics (those of the data the served version was
/// trained on, found through `store` when one is given). A configuration already resolved is
/// returned unchanged.
std::string resolve_runtime_config(Component c, const std::string& config_json, const MetadataStore* store);

/// Parses the arguments of `histocnn pipeline component NAME --config JSON --input NAME=PATH ...
/// --output NAME=PATH` (everything after "component"); std::invalid_argument names what is wrong.
ComponentCall parse_component_args(const std::vector<std::string>& args);

/// Checks a component's configuration (known keys, types, ranges) without running it; throws
/// std::invalid_argument naming the component and key. The spec loader calls it.
void validate_component_config(Component c, const std::string& config_json);

}  // namespace histocnn::pipeline
