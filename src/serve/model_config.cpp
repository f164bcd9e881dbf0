#include "histocnn/serve/model_config.h"

#include "histocnn/core/error.h"
#include "histocnn/io/atomic_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <set>

namespace histocnn::serve {

namespace fs = std::filesystem;
using json = nlohmann::json;

const ModelConfig* ServingConfig::find(const std::string& name) const {
  for (const auto& m : models) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

namespace {

void check_keys(const json& j, std::initializer_list<const char*> known, const std::string& where) {
  for (const auto& [key, value] : j.items()) {
    HISTOCNN_CHECK(std::find_if(known.begin(), known.end(), [&](const char* k) { return key == k; }) != known.end(),
                   "{}: unknown field '{}'", where, key);
  }
}

int64_t version_number(const json& v, const std::string& where) {
  // proto3 JSON writes int64 as a string; accept both.
  int64_t n = 0;
  if (v.is_number_integer()) {
    n = v.get<int64_t>();
  } else if (v.is_string()) {
    try {
      size_t used = 0;
      n = std::stoll(v.get<std::string>(), &used);
      HISTOCNN_CHECK(used == v.get<std::string>().size(), "{}: '{}' is not a version number", where, v.dump());
    } catch (const std::logic_error&) {
      HISTOCNN_FAIL("{}: '{}' is not a version number", where, v.dump());
    }
  } else {
    HISTOCNN_FAIL("{}: {} is not a version number", where, v.dump());
  }
  HISTOCNN_CHECK(n >= 0, "{}: version numbers are >= 0, got {}", where, n);
  return n;
}

}  // namespace

PolicyCandidates policy_candidates(const VersionPolicy& policy, const std::vector<int64_t>& on_disk) {
  PolicyCandidates c;
  c.versions = policy.kind == VersionPolicy::Kind::specific ? policy.versions : on_disk;
  std::sort(c.versions.rbegin(), c.versions.rend());
  c.wanted = policy.kind == VersionPolicy::Kind::latest ? static_cast<size_t>(policy.num_versions) : c.versions.size();
  return c;
}

ServingConfig parse_model_config(const std::string& text, const std::string& source, const fs::path& relative_to) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    HISTOCNN_FAIL("'{}' is not valid JSON ({}); see docs/serving.md for the model config format", source, e.what());
  }
  HISTOCNN_CHECK(j.is_object() && j.contains("model_config_list") && j["model_config_list"].is_object(),
                 "'{}' needs {{\"model_config_list\": {{\"config\": [...]}}}}", source);
  check_keys(j, {"model_config_list"}, source);
  const json& list = j["model_config_list"];
  check_keys(list, {"config"}, source + ": model_config_list");
  HISTOCNN_CHECK(list.contains("config") && list["config"].is_array() && !list["config"].empty(),
                 "'{}': model_config_list.config must list at least one model", source);
  ServingConfig out;
  std::set<std::string> names;
  for (size_t i = 0; i < list["config"].size(); ++i) {
    const json& c = list["config"][i];
    const std::string where = fmt::format("{}: config[{}]", source, i);
    HISTOCNN_CHECK(c.is_object(), "{} must be an object", where);
    check_keys(c, {"name", "base_path", "model_platform", "model_version_policy", "version_labels"}, where);
    ModelConfig m;
    HISTOCNN_CHECK(c.contains("name") && c["name"].is_string() && !c["name"].get<std::string>().empty(),
                   "{} needs a \"name\"", where);
    m.name = c["name"].get<std::string>();
    HISTOCNN_CHECK(m.name.find_first_of("/: ") == std::string::npos,
                   "{}: model name '{}' may not contain '/', ':' or spaces", where, m.name);
    HISTOCNN_CHECK(names.insert(m.name).second, "{}: model '{}' is configured twice", where, m.name);
    HISTOCNN_CHECK(c.contains("base_path") && c["base_path"].is_string(), "{} needs a \"base_path\"", where);
    m.base_path = c["base_path"].get<std::string>();
    if (m.base_path.is_relative() && !relative_to.empty()) m.base_path = relative_to / m.base_path;
    if (c.contains("model_version_policy")) {
      const json& p = c["model_version_policy"];
      HISTOCNN_CHECK(p.is_object() && p.size() == 1,
                     "{}: model_version_policy must hold one of latest, all or specific", where);
      if (p.contains("latest")) {
        m.policy.kind = VersionPolicy::Kind::latest;
        m.policy.num_versions = p["latest"].is_object() && p["latest"].contains("num_versions")
                                    ? version_number(p["latest"]["num_versions"], where + ": num_versions")
                                    : 1;
        HISTOCNN_CHECK(m.policy.num_versions >= 1, "{}: latest.num_versions must be >= 1", where);
      } else if (p.contains("all")) {
        m.policy.kind = VersionPolicy::Kind::all;
      } else if (p.contains("specific")) {
        m.policy.kind = VersionPolicy::Kind::specific;
        const json& v = p["specific"].value("versions", json::array());
        HISTOCNN_CHECK(v.is_array() && !v.empty(), "{}: specific.versions must list at least one version", where);
        for (const auto& x : v) m.policy.versions.push_back(version_number(x, where + ": specific.versions"));
      } else {
        HISTOCNN_FAIL("{}: model_version_policy must be latest, all or specific, got {}", where, p.dump());
      }
    }
    if (c.contains("version_labels")) {
      HISTOCNN_CHECK(c["version_labels"].is_object(), "{}: version_labels must map label -> version", where);
      for (const auto& [label, v] : c["version_labels"].items()) {
        m.labels[label] = version_number(v, where + ": version_labels." + label);
      }
    }
    out.models.push_back(std::move(m));
  }
  return out;
}

ServingConfig load_model_config(const fs::path& file) {
  return parse_model_config(io::read_file(file), file.string(), file.parent_path());
}

std::string to_json(const ServingConfig& config) {
  json list = json::array();
  for (const auto& m : config.models) {
    json c = {{"name", m.name}, {"base_path", m.base_path.string()}};
    switch (m.policy.kind) {
      case VersionPolicy::Kind::latest:
        c["model_version_policy"] = {{"latest", {{"num_versions", m.policy.num_versions}}}};
        break;
      case VersionPolicy::Kind::all:
        c["model_version_policy"] = {{"all", json::object()}};
        break;
      case VersionPolicy::Kind::specific:
        c["model_version_policy"] = {{"specific", {{"versions", m.policy.versions}}}};
        break;
    }
    if (!m.labels.empty()) c["version_labels"] = m.labels;
    list.push_back(c);
  }
  return json{{"model_config_list", {{"config", list}}}}.dump(2) + "\n";
}

void save_model_config(const fs::path& file, const ServingConfig& config) {
  io::write_file_atomic(file, to_json(config));
}

}  // namespace histocnn::serve
