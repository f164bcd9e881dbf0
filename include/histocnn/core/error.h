#pragma once
// One error path for the whole library.
//
//   HISTOCNN_CHECK(size > 0, "image_size must be positive, got {}", size);   // bad user input
//   HISTOCNN_CHECK_FOUND(fs::exists(p), "model folder '{}' does not exist; ...", p); // missing path
//   HISTOCNN_CHECK_IO(in.good(), "cannot open '{}': {}", path, why);           // I/O, environment
//
// HISTOCNN_CHECK throws std::invalid_argument (Python: ValueError); HISTOCNN_CHECK_FOUND throws
// histocnn::NotFoundError (Python: FileNotFoundError), a std::runtime_error; HISTOCNN_CHECK_IO
// throws std::runtime_error (Python: RuntimeError). Messages say what was wrong, with which file
// or value, and what to do about it.
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace histocnn {

/// A file or folder that was named does not exist (Python: FileNotFoundError).
struct NotFoundError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_invalid_argument(const std::string& message);
[[noreturn]] void throw_not_found(const std::string& message);
[[noreturn]] void throw_runtime_error(const std::string& message);

}  // namespace histocnn

#define HISTOCNN_CHECK(cond, ...)                                       \
  do {                                                                  \
    if (!(cond)) ::histocnn::throw_invalid_argument(fmt::format(__VA_ARGS__)); \
  } while (0)

#define HISTOCNN_CHECK_FOUND(cond, ...)                                 \
  do {                                                                  \
    if (!(cond)) ::histocnn::throw_not_found(fmt::format(__VA_ARGS__)); \
  } while (0)

#define HISTOCNN_CHECK_IO(cond, ...)                                    \
  do {                                                                  \
    if (!(cond)) ::histocnn::throw_runtime_error(fmt::format(__VA_ARGS__)); \
  } while (0)

#define HISTOCNN_FAIL(...) ::histocnn::throw_invalid_argument(fmt::format(__VA_ARGS__))
#define HISTOCNN_FAIL_IO(...) ::histocnn::throw_runtime_error(fmt::format(__VA_ARGS__))
