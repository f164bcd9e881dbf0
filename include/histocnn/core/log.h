#pragma once
// Plain, line-oriented messages on stderr, prefixed with the level.
//
//   histocnn::log_info("scanned {} patches from {} patients", n, p);
//   histocnn::log_warn("splitting by patch leaks patients between splits");
//
// HISTOCNN_LOG_LEVEL=warn silences info messages; =error silences warnings too.
#include <fmt/format.h>

#include <string>

namespace histocnn {

enum class LogLevel { kInfo = 0, kWarn = 1, kError = 2 };

void log_message(LogLevel level, const std::string& message);

template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
  log_message(LogLevel::kInfo, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... args) {
  log_message(LogLevel::kWarn, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace histocnn
