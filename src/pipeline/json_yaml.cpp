#include "json_yaml.h"

#include "histocnn/core/error.h"

#include <regex>

namespace histocnn::pipeline::detail {

using json = nlohmann::json;

namespace {

const std::regex& int_pattern() {
  static const std::regex r("[-+]?[0-9]+|0x[0-9a-fA-F]+|0o[0-7]+");
  return r;
}
const std::regex& float_pattern() {
  static const std::regex r("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  return r;
}

json plain_scalar(const std::string& s) {
  if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (std::regex_match(s, int_pattern())) {
    try {
      return static_cast<int64_t>(std::stoll(s, nullptr, 0));
    } catch (const std::out_of_range&) {
      return s;
    }
  }
  if (std::regex_match(s, float_pattern())) return std::stod(s);
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf") return std::numeric_limits<double>::infinity();
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") return -std::numeric_limits<double>::infinity();
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  return s;
}

bool reads_as_other_type(const std::string& s) {
  const json j = plain_scalar(s);
  return !j.is_string();
}

void emit(YAML::Emitter& out, const json& v) {
  switch (v.type()) {
    case json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [k, item] : v.items()) {
        out << YAML::Key << k << YAML::Value;
        emit(out, item);
      }
      out << YAML::EndMap;
      break;
    case json::value_t::array:
      out << YAML::BeginSeq;
      for (const auto& item : v) emit(out, item);
      out << YAML::EndSeq;
      break;
    case json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (reads_as_other_type(s)) {
        out << YAML::DoubleQuoted << s;
      } else {
        out << s;
      }
      break;
    }
    case json::value_t::boolean:
      out << (v.get<bool>() ? "true" : "false");
      break;
    case json::value_t::null:
      out << YAML::Null;
      break;
    case json::value_t::number_integer:
      out << v.get<int64_t>();
      break;
    case json::value_t::number_unsigned:
      out << v.get<uint64_t>();
      break;
    default:
      out << v.dump();  // a number as JSON writes it
  }
}

}  // namespace

json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar:
      // A quoted scalar carries the non-specific tag "!": it stays a string.
      if (node.Tag() == "!" || node.Tag() == "tag:yaml.org,2002:str") return node.Scalar();
      return plain_scalar(node.Scalar());
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto& item : node) a.push_back(yaml_to_json(item));
      return a;
    }
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto& kv : node) o[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return o;
    }
  }
  return nullptr;
}

json parse_yaml(const std::string& text, const std::string& source) {
  try {
    return yaml_to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    HISTOCNN_FAIL("'{}' is not valid YAML: line {}, column {}: {}", source, e.mark.line + 1, e.mark.column + 1,
                  e.msg);
  }
}

std::string json_to_yaml(const json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetSeqFormat(YAML::Block);
  out.SetMapFormat(YAML::Block);
  emit(out, value);
  HISTOCNN_CHECK_IO(out.good(), "could not write YAML: {}", out.GetLastError());
  return std::string(out.c_str()) + "\n";
}

}  // namespace histocnn::pipeline::detail
