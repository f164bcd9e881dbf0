#include "histocnn/core/log.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace histocnn {

namespace {
LogLevel threshold() {
  const char* env = std::getenv("HISTOCNN_LOG_LEVEL");
  if (!env) return LogLevel::kInfo;
  if (std::strcmp(env, "warn") == 0) return LogLevel::kWarn;
  if (std::strcmp(env, "error") == 0) return LogLevel::kError;
  return LogLevel::kInfo;
}
}  // namespace

void log_message(LogLevel level, const std::string& message) {
  static std::mutex mu;
  if (level < threshold()) return;
  const char* prefix = level == LogLevel::kInfo ? "histocnn: " : level == LogLevel::kWarn ? "histocnn: warning: " : "histocnn: error: ";
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "%s%s\n", prefix, message.c_str());
}

}  // namespace histocnn
