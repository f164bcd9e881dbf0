#pragma once
// The body of a :predict or :classify request, decoded into images: what faces the network, kept
// free of the model so that it can be fuzzed on its own (tests/fuzz).
//
//   histocnn::serve::RequestLimits limits;
//   auto parsed = histocnn::serve::parse_instances(R"({"instances": [{"b64": "iVBORw0..."}]})", limits);
//   parsed.images[0];   // RGB uint8
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

/// Standard base64 (RFC 4648, padding optional, whitespace ignored); std::invalid_argument when
/// the text is not base64.
std::string base64_decode(const std::string& text);

}  // namespace histocnn::serve
