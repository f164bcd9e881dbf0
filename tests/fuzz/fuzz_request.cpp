// libFuzzer target for what a server reads from the network: the JSON body of :predict, :classify
// and :explain, base64, image headers and image decoding (serve::parse_instances,
// serve::parse_explain_request). Any input may be refused with
// std::invalid_argument; anything else (a crash, a sanitizer report, another exception) is a bug.
#include "histocnn/serve/request.h"

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  histocnn::serve::RequestLimits limits;
  limits.max_image_pixels = 512 * 512;  // the same code path, smaller allocations
  limits.max_instances = 16;
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (bool classify : {false, true}) {
    try {
      histocnn::serve::parse_instances(body, limits, classify);
    } catch (const std::invalid_argument&) {
      // a refusal with a message: the expected outcome for bad input
    }
  }
  try {
    histocnn::serve::parse_explain_request(body, limits);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
