#pragma once
// The errors a request can end in, each with its HTTP status (TensorFlow Serving's mapping):
// std::invalid_argument -> 400, NotFound -> 404, PayloadTooLarge -> 413, Unavailable -> 503,
// Unauthorized -> 401, anything else -> 500.
#include <stdexcept>
#include <string>

namespace histocnn::serve {

struct NotFound : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct PayloadTooLarge : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct Unavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct Unauthorized : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace histocnn::serve
