#include "histocnn/core/error.h"

namespace histocnn {

void throw_invalid_argument(const std::string& message) { throw std::invalid_argument(message); }
void throw_not_found(const std::string& message) { throw NotFoundError(message); }
void throw_runtime_error(const std::string& message) { throw std::runtime_error(message); }

}  // namespace histocnn
