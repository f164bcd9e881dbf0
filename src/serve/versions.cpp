#include "histocnn/serve/versions.h"

#include "histocnn/core/error.h"
#include "histocnn/inference/saved_model.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/bundle.h"
#include "histocnn/serve/server.h"

#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <unistd.h>

namespace histocnn::serve {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path bundle_of(const fs::path& source) {
  if (fs::exists(source / "model.json")) return source;
  if (fs::is_directory(source / "model")) return io::resolve_bundle_dir(source / "model");
  return io::resolve_bundle_dir(source);
}

json read_policy(const fs::path& base_path) {
  const auto file = base_path / kPolicyFileName;
  if (!fs::exists(file)) return json::object();
  try {
    return json::parse(io::read_file(file));
  } catch (const json::exception& e) {
    HISTOCNN_FAIL("'{}' is not valid JSON ({}); fix or delete it", file.string(), e.what());
  }
}

void write_policy(const fs::path& base_path, const json& policy) {
  // Check it the way the server will read it before it replaces the old one.
  json config = policy;
  config["name"] = "check";
  config["base_path"] = base_path.string();
  parse_model_config(json{{"model_config_list", {{"config", {config}}}}}.dump(), (base_path / kPolicyFileName).string());
  io::write_file_atomic(base_path / kPolicyFileName, policy.dump(2) + "\n");
}

void require_version(const fs::path& base_path, int64_t version) {
  const auto versions = io::list_versions(base_path);
  HISTOCNN_CHECK(std::count(versions.begin(), versions.end(), version) == 1,
                 "'{}' has no complete version {} (it has: {})", base_path.string(), version,
                 fmt::join(versions, ", "));
}

}  // namespace

int64_t push_bundle(const fs::path& source, const fs::path& base_path) {
  const fs::path bundle = bundle_of(source);
  inference::read_model_card(bundle);  // refuse what a server could not load
  fs::create_directories(base_path);
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(bundle)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  // Stage the copy beside the versions (same file system), then rename it into place: the folder
  // appears complete or not at all, and two pushes at once take different numbers.
  const fs::path staging = base_path / fmt::format(".push-{}-{}", ::getpid(), bundle.filename().string());
  fs::remove_all(staging);
  fs::create_directories(staging);
  for (const auto& f : files) {
    if (f.filename() != "model.json") io::write_file_atomic(staging / f.filename(), io::read_file(f));
  }
  io::write_file_atomic(staging / "model.json", io::read_file(bundle / "model.json"));
  for (int attempt = 0; attempt < 100; ++attempt) {
    const auto versions = io::list_versions(base_path);
    int64_t next = versions.empty() ? 1 : versions.back() + 1;
    while (fs::exists(base_path / std::to_string(next))) ++next;  // an incomplete folder keeps its number
    std::error_code ec;
    fs::rename(staging, base_path / std::to_string(next), ec);
    if (!ec) return next;
  }
  fs::remove_all(staging);
  HISTOCNN_FAIL_IO("could not find a free version number in '{}'", base_path.string());
}

void pin_version(const fs::path& base_path, int64_t version) {
  require_version(base_path, version);
  json p = read_policy(base_path);
  p["model_version_policy"] = {{"specific", {{"versions", {version}}}}};
  // Labels must point at served versions: keep those that still do.
  if (p.contains("version_labels")) {
    json kept = json::object();
    for (const auto& [label, v] : p["version_labels"].items()) {
      if (v.get<int64_t>() == version) kept[label] = v;
    }
    p["version_labels"] = kept;
  }
  write_policy(base_path, p);
}

void unpin(const fs::path& base_path) {
  json p = read_policy(base_path);
  p["model_version_policy"] = {{"latest", {{"num_versions", 1}}}};
  if (p.contains("version_labels") && !p["version_labels"].empty()) {
    // Labelled versions stay served beside the newest.
    std::vector<int64_t> versions;
    for (const auto& [label, v] : p["version_labels"].items()) versions.push_back(v.get<int64_t>());
    const auto on_disk = io::list_versions(base_path);
    if (!on_disk.empty()) versions.push_back(on_disk.back());
    std::sort(versions.begin(), versions.end());
    versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
    p["model_version_policy"] = {{"specific", {{"versions", versions}}}};
  }
  write_policy(base_path, p);
}

void set_label(const fs::path& base_path, const std::string& label, int64_t version) {
  HISTOCNN_CHECK(!label.empty() && label.find_first_of("/: ") == std::string::npos,
                 "label '{}' must be a non-empty word without '/', ':' or spaces", label);
  require_version(base_path, version);
  json p = read_policy(base_path);
  p["version_labels"][label] = version;
  // The labelled version must be served: a `specific` policy gains it; `latest` becomes specific
  // with the newest version plus the labelled ones.
  std::vector<int64_t> versions;
  const auto& policy = p.value("model_version_policy", json::object());
  if (policy.contains("specific")) {
    versions = policy["specific"]["versions"].get<std::vector<int64_t>>();
  } else {
    const auto on_disk = io::list_versions(base_path);
    if (!on_disk.empty()) versions.push_back(on_disk.back());
  }
  for (const auto& [l, v] : p["version_labels"].items()) versions.push_back(v.get<int64_t>());
  std::sort(versions.begin(), versions.end());
  versions.erase(std::unique(versions.begin(), versions.end()), versions.end());
  p["model_version_policy"] = {{"specific", {{"versions", versions}}}};
  write_policy(base_path, p);
}

std::vector<VersionInfo> list_served_versions(const fs::path& base_path) {
  ServerOptions so;
  so.model_base_path = base_path;
  so.model_name = "listing";
  const auto config = serving_config(so).models.front();
  const auto on_disk = io::list_versions(base_path);
  // Offline, every complete version is taken to load.
  const auto candidates = policy_candidates(config.policy, on_disk);
  std::vector<int64_t> served;
  for (int64_t v : candidates.versions) {
    if (served.size() < candidates.wanted && std::count(on_disk.begin(), on_disk.end(), v)) served.push_back(v);
  }
  int64_t live = -1;
  for (int64_t v : served) live = std::max(live, v);
  std::vector<VersionInfo> out;
  for (int64_t v : on_disk) {
    VersionInfo info;
    info.version = v;
    info.live = v == live;
    info.served = std::count(served.begin(), served.end(), v) > 0;
    for (const auto& [label, lv] : config.labels) {
      if (lv == v) info.labels.push_back(label);
    }
    try {
      const auto card = inference::read_model_card(base_path / std::to_string(v));
      info.backbone = card.classifier.backbone();
      info.created = card.provenance.created;
      info.threshold = card.threshold;
      info.test_auc = card.test_roc_auc();
    } catch (const std::exception& e) {
      info.error = e.what();
    }
    out.push_back(std::move(info));
  }
  return out;
}

int64_t version_before_live(const fs::path& base_path) {
  const auto listing = list_served_versions(base_path);
  for (size_t i = 1; i < listing.size(); ++i) {
    if (listing[i].live) return listing[i - 1].version;
  }
  HISTOCNN_FAIL("'{}' has no version older than the live one; name one with --version", base_path.string());
}

std::string format_versions(const std::vector<VersionInfo>& versions) {
  std::string s = fmt::format("{:>7}  {:<5} {:<7} {:<14} {:<20} {:>9} {:>8}  {}\n", "version", "live", "served",
                              "labels", "backbone", "threshold", "test AUC", "created");
  for (const auto& v : versions) {
    if (!v.error.empty()) {
      s += fmt::format("{:>7}  unreadable: {}\n", v.version, v.error);
      continue;
    }
    s += fmt::format("{:>7}  {:<5} {:<7} {:<14} {:<20} {:>9.3f} {:>8}  {}\n", v.version, v.live ? "*" : "",
                     v.served ? "yes" : "no", fmt::format("{}", fmt::join(v.labels, ",")), v.backbone, v.threshold,
                     v.test_auc ? fmt::format("{:.4f}", *v.test_auc) : "-", v.created);
  }
  return s;
}

}  // namespace histocnn::serve
