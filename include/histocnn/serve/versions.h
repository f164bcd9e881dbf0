#pragma once
// Model versions in a serving base path, managed from the outside: pushing a bundle as the next
// version, pinning a version (rollback), labels, and a listing with test metrics.
//
//   int64_t v = histocnn::serve::push_bundle("runs/x", "models/idc");   // -> models/idc/<v>/
//   histocnn::serve::pin_version("models/idc", 2);      // serve 2 only (rollback), atomically
//   histocnn::serve::set_label("models/idc", "canary", v);
//   histocnn::serve::unpin("models/idc");               // back to the newest version
//
// These write <base path>/serving_policy.json atomically; a running `histocnn serve
// --model-base-path` reads it at its next poll, without a restart.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::serve {

/// Copies a bundle (a version folder, a model folder, or a run folder with model/) into the next
/// free version number of `base_path`, which appears complete or not at all (a folder renamed into
/// place). Returns the new version number.
int64_t push_bundle(const std::filesystem::path& source, const std::filesystem::path& base_path);

/// Serve exactly `version` (it must be a complete bundle in base_path).
void pin_version(const std::filesystem::path& base_path, int64_t version);
/// Serve the newest loadable version again (and keep the labels).
void unpin(const std::filesystem::path& base_path);
/// Points `label` at `version`, which is then served too.
void set_label(const std::filesystem::path& base_path, const std::string& label, int64_t version);

struct VersionInfo {
  int64_t version = 0;
  bool live = false;                 ///< what a request without a version gets (by the policy)
  bool served = false;               ///< loaded by the policy
  std::vector<std::string> labels;
  std::string backbone, created;
  double threshold = 0.5;
  std::optional<double> test_auc;
  std::string error;                 ///< the model card could not be read
};
/// Every complete version of a base path with its model card's summary, ascending.
std::vector<VersionInfo> list_served_versions(const std::filesystem::path& base_path);
/// The complete version just below the live one: where a rollback goes by default.
int64_t version_before_live(const std::filesystem::path& base_path);
/// The listing as a table.
std::string format_versions(const std::vector<VersionInfo>& versions);

}  // namespace histocnn::serve
