#pragma once
// The components' implementations and the helpers they share (not installed).
#include "histocnn/pipeline/components.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace histocnn::pipeline::detail {

using json = nlohmann::json;
namespace fs = std::filesystem;

ComponentResult run_example_gen(const ComponentCall& call, const json& config);
ComponentResult run_statistics_gen(const ComponentCall& call, const json& config);
ComponentResult run_schema_gen(const ComponentCall& call, const json& config);
ComponentResult run_example_validator(const ComponentCall& call, const json& config);
ComponentResult run_transform(const ComponentCall& call, const json& config);
ComponentResult run_trainer(const ComponentCall& call, const json& config);
ComponentResult run_evaluator(const ComponentCall& call, const json& config);
ComponentResult run_pusher(const ComponentCall& call, const json& config);

/// The folder of a named input or output of a call.
fs::path input_dir(const ComponentCall& call, const std::string& name);
fs::path output_dir(const ComponentCall& call, const std::string& name);

json read_json_file(const fs::path& file);
void write_json_file(const fs::path& file, const json& value);
std::string hex16(uint64_t value);

/// The examples artifact's manifest (manifest.csv, paths relative to it), with splits.
fs::path manifest_of_examples(const fs::path& examples);

/// The version a serving base path answers with now (its live version) and its folder, when any.
struct LiveVersion {
  int64_t version = 0;
  fs::path dir;
  std::string model_json_hash;  ///< 16 hex digits of model.json's bytes
};
std::optional<LiveVersion> live_version(const fs::path& base_path);

/// A serving base path as recorded and looked up in the metadata store.
std::string canonical_base_path(const fs::path& base_path);

/// The bundle (version folder) inside a Trainer's model artifact.
fs::path bundle_of_model(const fs::path& model_artifact);

}  // namespace histocnn::pipeline::detail
