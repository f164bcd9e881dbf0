#pragma once
// YAML <-> JSON for the pipeline module: pipeline.yaml and compiled Kubeflow files are read into
// nlohmann::json (plain scalars typed by YAML 1.2's core schema, quoted ones kept as strings), and
// compiled files are written from it.
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <string>

namespace histocnn::pipeline::detail {

nlohmann::json yaml_to_json(const YAML::Node& node);
/// Parses YAML text; std::invalid_argument names `source`, line and column on a syntax error.
nlohmann::json parse_yaml(const std::string& text, const std::string& source);
/// Block-style YAML of a JSON value; strings that would read back as another type are quoted.
std::string json_to_yaml(const nlohmann::json& value);

}  // namespace histocnn::pipeline::detail
