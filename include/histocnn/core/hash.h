#pragma once
// A stable 64-bit hash of text (FNV-1a), for names and fingerprints that must be the same on
// every machine and run (std::hash gives no such promise).
//
//   std::string name = fmt::format("run-{:016x}", histocnn::fnv1a64(options_json));
#include <cstdint>
#include <string_view>

namespace histocnn {

inline uint64_t fnv1a64(std::string_view text) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ULL;
  return h;
}

}  // namespace histocnn
