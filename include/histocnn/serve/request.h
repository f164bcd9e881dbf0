#pragma once
// The body of a :predict, :classify or :explain request, decoded into images (and an explanation's
// parameters): what faces the network, kept free of the model so that it can be fuzzed on its own
// (tests/fuzz).
//
//   histocnn::serve::RequestLimits limits;
//   auto parsed = histocnn::serve::parse_instances(R"({"instances": [{"b64": "iVBORw0..."}]})", limits);
//   parsed.images[0];   // RGB uint8
//   auto e = histocnn::serve::parse_explain_request(
//       R"({"instances": [{"b64": "iVBORw0..."}], "parameters": {"layer": "features.14"}})", limits);
//   e.parameters.method;  // "gradcam"
#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace histocnn::serve {

struct RequestLimits {
  int64_t max_body_bytes = 64ll << 20;      ///< 413 above
  int64_t max_instances = 1024;             ///< images in one request (400 above)
  int64_t max_image_pixels = 4096ll * 4096;  ///< width x height from the header, checked before decoding
};

/// A request's images, decoded: what `:predict` and `:classify` run on.
struct ParsedInstances {
  std::vector<cv::Mat> images;  ///< RGB uint8
  bool columnar = false;        ///< {"inputs": ...} (answered with "outputs")
};

/// Parses a :predict or :classify body: {"instances": [...]} (row format), {"inputs": [...]}
/// (columnar) or, for classify, {"examples": [...]}. An instance is {"b64": "<PNG/JPEG/BMP/TIFF
/// bytes>"} or an H x W x 3 array of RGB values 0..255. Throws std::invalid_argument with a message
/// that says what to fix.
ParsedInstances parse_instances(const std::string& body, const RequestLimits& limits, bool classify = false);

/// What an :explain request asks for, beside its images: {"parameters": {"method": ...,
/// "target_class": ..., "layer": ..., "outputs": [...]}}, every field optional. The method and
/// layer are checked against the model where it answers.
struct ExplainParameters {
  std::string method = "gradcam";  ///< "gradcam" or "gradcam++"
  int64_t target_class = 1;        ///< the class whose evidence is mapped
  std::string layer;               ///< a backbone layer by module path; "" for its last feature map
  bool overlay = true;    ///< "overlay": a PNG of the patch under the heatmap, with a colour bar
  bool map = false;       ///< "map": the map at the model's input size
  bool layer_map = false; ///< "layer_map": the map at the layer's resolution
};

struct ParsedExplainRequest {
  ParsedInstances instances;
  ExplainParameters parameters;
};

/// Parses an :explain body: the instances as parse_instances reads them ("instances" or "inputs")
/// and optional "parameters". Throws std::invalid_argument with a message that says what to fix.
ParsedExplainRequest parse_explain_request(const std::string& body, const RequestLimits& limits);

/// Standard base64 (RFC 4648, padding optional, whitespace ignored); std::invalid_argument when
/// the text is not base64.
std::string base64_decode(const std::string& text);
/// Standard base64 (RFC 4648) with padding.
std::string base64_encode(const std::string& bytes);

}  // namespace histocnn::serve
