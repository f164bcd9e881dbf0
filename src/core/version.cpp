#include "histocnn/core/version.h"

#include <torch/version.h>

namespace histocnn {

const char* version() { return HISTOCNN_VERSION; }

std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

}  // namespace histocnn
