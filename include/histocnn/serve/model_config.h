#pragma once
// What a server serves: models, their base paths, version policies and labels. The file format is
// TensorFlow Serving's ModelServerConfig in its JSON form (proto3 JSON mapping):
//
//   {"model_config_list": {"config": [
//     {"name": "idc", "base_path": "/models/idc",
//      "model_version_policy": {"specific": {"versions": [2, 3]}},     // or {"latest": {"num_versions": 1}}, {"all": {}}
//      "version_labels": {"stable": 2, "canary": 3}}]}}
//
//   auto config = histocnn::serve::load_model_config("models.config.json");
//   histocnn::serve::save_model_config("models.config.json", config);   // atomic
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace histocnn::serve {

struct VersionPolicy {
  enum class Kind { latest, all, specific };
  Kind kind = Kind::latest;
  int64_t num_versions = 1;       ///< latest: serve the newest N loadable versions
  std::vector<int64_t> versions;  ///< specific: exactly these
};

/// The versions a policy asks for, newest first, given the complete versions on disk (ascending),
/// and how many of them to serve: `latest` serves the first num_versions that load, the others all.
struct PolicyCandidates {
  std::vector<int64_t> versions;
  size_t wanted = 0;
};
PolicyCandidates policy_candidates(const VersionPolicy& policy, const std::vector<int64_t>& on_disk);

struct ModelConfig {
  std::string name;
  std::filesystem::path base_path;  ///< holds numeric version folders
  VersionPolicy policy;
  std::map<std::string, int64_t> labels;  ///< e.g. stable -> 2
};

struct ServingConfig {
  std::vector<ModelConfig> models;
  const ModelConfig* find(const std::string& name) const;
};

/// Parses the JSON text; `source` names the file in errors. Throws std::invalid_argument for an
/// unknown field, a duplicate model name, a relative base_path that cannot be resolved, or a label
/// pointing at a version the policy does not serve.
ServingConfig parse_model_config(const std::string& json_text, const std::string& source,
                                 const std::filesystem::path& relative_to = {});
ServingConfig load_model_config(const std::filesystem::path& file);
std::string to_json(const ServingConfig& config);
/// Writes atomically, so a polling server never reads half a file.
void save_model_config(const std::filesystem::path& file, const ServingConfig& config);

}  // namespace histocnn::serve
