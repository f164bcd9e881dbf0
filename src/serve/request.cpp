#include "histocnn/serve/request.h"

#include "histocnn/core/error.h"
#include "histocnn/io/image.h"

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>

namespace histocnn::serve {

using json = nlohmann::json;

std::string base64_decode(const std::string& text) {
  static const auto table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    // The URL-safe alphabet too, as TF Serving's decoder accepts it.
    t[static_cast<unsigned char>('-')] = 62;
    t[static_cast<unsigned char>('_')] = 63;
    return t;
  }();
  std::string out;
  out.reserve(text.size() / 4 * 3 + 3);
  uint32_t buffer = 0;
  int bits = 0;
  size_t padding = 0;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    HISTOCNN_CHECK(padding == 0 && table[c] >= 0, "Unable to base64 decode: '{}' is not a base64 character",
                   c >= 32 && c < 127 ? std::string(1, ch) : fmt::format("\\x{:02x}", c));
    buffer = (buffer << 6) | static_cast<uint32_t>(table[c]);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  HISTOCNN_CHECK(bits < 6 && padding <= 2, "Unable to base64 decode: the text ends in the middle of a byte");
  return out;
}

std::string base64_encode(const std::string& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  const auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8) | byte(i + 2);
    for (int shift : {18, 12, 6, 0}) out.push_back(alphabet[(n >> shift) & 63]);
  }
  if (i + 1 == bytes.size()) {
    const uint32_t n = byte(i) << 16;
    out += {alphabet[n >> 18], alphabet[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t n = (byte(i) << 16) | (byte(i + 1) << 8);
    out += {alphabet[n >> 18], alphabet[(n >> 12) & 63], alphabet[(n >> 6) & 63], '='};
  }
  return out;
}

namespace {

cv::Mat image_from_array(const json& rows, size_t index, const RequestLimits& limits) {
  HISTOCNN_CHECK(rows.is_array() && !rows.empty(),
                 "instance {}: an image array must be H x W x 3 (RGB values 0..255), got {}", index,
                 rows.is_array() ? "an empty list" : rows.type_name());
  const int64_t h = static_cast<int64_t>(rows.size());
  HISTOCNN_CHECK(rows[0].is_array() && !rows[0].empty(), "instance {}: an image array must be H x W x 3; row 0 is "
                 "not a list of pixels", index);
  const int64_t w = static_cast<int64_t>(rows[0].size());
  HISTOCNN_CHECK(w <= limits.max_image_pixels / h, "instance {}: a {}x{} image is more than the limit of {} pixels",
                 index, w, h, limits.max_image_pixels);
  cv::Mat img(static_cast<int>(h), static_cast<int>(w), CV_8UC3);
  for (int64_t y = 0; y < h; ++y) {
    const json& row = rows[static_cast<size_t>(y)];
    HISTOCNN_CHECK(row.is_array() && static_cast<int64_t>(row.size()) == w,
                   "instance {}: row {} has {} pixels, row 0 has {}; an image array must be H x W x 3", index, y,
                   row.is_array() ? row.size() : 0, w);
    auto* out = img.ptr<uint8_t>(static_cast<int>(y));
    for (int64_t x = 0; x < w; ++x) {
      const json& px = row[static_cast<size_t>(x)];
      HISTOCNN_CHECK(px.is_array() && px.size() == 3,
                     "instance {}: pixel ({}, {}) must be [R, G, B]; an image array is H x W x 3", index, x, y);
      for (size_t c = 0; c < 3; ++c) {
        HISTOCNN_CHECK(px[c].is_number(), "instance {}: pixel ({}, {}) holds {}, not a number", index, x, y,
                       px[c].dump());
        const double v = px[c].get<double>();
        HISTOCNN_CHECK(std::isfinite(v) && v >= 0 && v <= 255,
                       "instance {}: pixel ({}, {}) has value {}; image arrays hold RGB values 0..255", index, x, y,
                       v);
        out[3 * x + static_cast<int64_t>(c)] = static_cast<uint8_t>(std::lround(v));
      }
    }
  }
  return img;
}

cv::Mat decode_instance(const json& instance, size_t index, const RequestLimits& limits) {
  if (instance.is_object()) {
    const json* b64 = nullptr;
    if (instance.contains("b64")) {
      b64 = &instance["b64"];
    } else if (instance.size() == 1 && instance.begin()->is_object() && instance.begin()->contains("b64")) {
      b64 = &(*instance.begin())["b64"];  // a named input: {"image": {"b64": ...}}
    } else if (instance.size() == 1) {
      return decode_instance(*instance.begin(), index, limits);
    }
    HISTOCNN_CHECK(b64 != nullptr && b64->is_string(),
                   "instance {}: an object instance must be {{\"b64\": \"<base64 PNG/JPEG/BMP/TIFF bytes>\"}}", index);
    std::string bytes;
    try {
      bytes = base64_decode(b64->get<std::string>());
    } catch (const std::invalid_argument& e) {
      HISTOCNN_FAIL("instance {}: {}", index, e.what());
    }
    return io::decode_image_rgb(bytes, fmt::format("instance {}", index), limits.max_image_pixels);
  }
  return image_from_array(instance, index, limits);
}

json parse_body(const std::string& body) {
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {  // syntax errors, and numbers too large for a double (out_of_range)
    HISTOCNN_FAIL("JSON Parse error: {}", e.what());
  }
  HISTOCNN_CHECK(j.is_object(), "the request body must be a JSON object with \"instances\" or \"inputs\"");
  return j;
}

ParsedInstances instances_of(const json& j, const RequestLimits& limits, bool classify) {
  if (j.contains("signature_name")) {
    HISTOCNN_CHECK(j["signature_name"].is_string(), "signature_name must be a string");
    const auto sig = j["signature_name"].get<std::string>();
    HISTOCNN_CHECK(sig.empty() || sig == "serving_default",
                   "Serving signature name: \"{}\" not found in signature def; use \"serving_default\"", sig);
  }
  const bool has_instances = j.contains("instances"), has_inputs = j.contains("inputs");
  const bool has_examples = classify && j.contains("examples");
  HISTOCNN_CHECK(static_cast<int>(has_instances) + static_cast<int>(has_inputs) + static_cast<int>(has_examples) == 1,
                 has_instances || has_inputs || has_examples
                     ? "Request must contain only one of \"instances\" or \"inputs\""
                     : "Missing \"instances\" or \"inputs\" key in the request body");
  ParsedInstances out;
  out.columnar = has_inputs;
  const json& list = has_instances ? j["instances"] : has_inputs ? j["inputs"] : j["examples"];
  json single = json::array();
  const json* items = &list;
  if (has_inputs && list.is_object()) {  // columnar with one (named) input: {"inputs": {"image": [...]}}
    HISTOCNN_CHECK(list.size() == 1 || list.contains("b64"), "\"inputs\" names {} inputs; this model has one (image)",
                   list.size());
    const json& only = list.contains("b64") ? list : *list.begin();
    if (only.is_object()) {
      single.push_back(only);
      items = &single;
    } else {
      items = &only;
    }
  }
  HISTOCNN_CHECK(items->is_array(), "\"{}\" must be a list of images", has_instances ? "instances" : "inputs");
  HISTOCNN_CHECK(!items->empty(), "the request holds no images: \"{}\" is empty", has_instances ? "instances" : "inputs");
  HISTOCNN_CHECK(static_cast<int64_t>(items->size()) <= limits.max_instances,
                 "the request holds {} images, more than the limit of {} per request; split it", items->size(),
                 limits.max_instances);
  out.images.reserve(items->size());
  for (size_t i = 0; i < items->size(); ++i) out.images.push_back(decode_instance((*items)[i], i, limits));
  return out;
}

// A name from the request, cut to 64 bytes for a message without splitting a UTF-8 character
// (the message goes back as JSON, which must stay valid UTF-8).
std::string shown(const std::string& name) {
  if (name.size() <= 64) return name;
  size_t end = 64;
  while (end > 0 && (static_cast<unsigned char>(name[end]) & 0xC0) == 0x80) --end;
  return name.substr(0, end) + "...";
}

ExplainParameters explain_parameters_of(const json& j) {
  ExplainParameters p;
  if (!j.contains("parameters")) return p;
  const json& params = j["parameters"];
  HISTOCNN_CHECK(params.is_object(), "\"parameters\" must be an object: {{\"method\": \"gradcam\", \"target_class\": 1, "
                 "\"layer\": \"...\", \"outputs\": [\"overlay\", \"map\", \"layer_map\"]}}, every field optional");
  for (const auto& [key, value] : params.items()) {
    if (key == "method") {
      HISTOCNN_CHECK(value.is_string(), "parameters.method must be a string: \"gradcam\" or \"gradcam++\"");
      p.method = value.get<std::string>();
    } else if (key == "target_class") {
      HISTOCNN_CHECK(value.is_number_integer() && value.get<int64_t>() >= 0 && value.get<int64_t>() < 1000000,
                     "parameters.target_class must be a class index (0 or 1), got {}", value.dump());
      p.target_class = value.get<int64_t>();
    } else if (key == "layer") {
      HISTOCNN_CHECK(value.is_string() && value.get<std::string>().size() <= 256,
                     "parameters.layer must be a layer name (a module path such as \"features.14\"), got {}",
                     value.is_string() ? "a name longer than 256 characters" : value.type_name());
      p.layer = value.get<std::string>();
    } else if (key == "outputs") {
      HISTOCNN_CHECK(value.is_array() && !value.empty(),
                     "parameters.outputs must be a non-empty list of \"overlay\", \"map\" and \"layer_map\"");
      p.overlay = false;
      for (const auto& output : value) {
        const std::string name = output.is_string() ? output.get<std::string>() : output.dump();
        if (name == "overlay") {
          p.overlay = true;
        } else if (name == "map") {
          p.map = true;
        } else if (name == "layer_map") {
          p.layer_map = true;
        } else {
          HISTOCNN_FAIL("parameters.outputs names '{}'; choose among \"overlay\", \"map\" and \"layer_map\"",
                        shown(name));
        }
      }
    } else {
      HISTOCNN_FAIL("unknown parameter '{}'; an explanation takes method, target_class, layer and outputs",
                    shown(key));
    }
  }
  return p;
}

}  // namespace

ParsedInstances parse_instances(const std::string& body, const RequestLimits& limits, bool classify) {
  return instances_of(parse_body(body), limits, classify);
}

ParsedExplainRequest parse_explain_request(const std::string& body, const RequestLimits& limits) {
  const json j = parse_body(body);
  ParsedExplainRequest out;
  out.parameters = explain_parameters_of(j);  // first: a bad parameter is refused before decoding images
  out.instances = instances_of(j, limits, /*classify=*/false);
  return out;
}

}  // namespace histocnn::serve
