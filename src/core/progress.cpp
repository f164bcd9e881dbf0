#include "histocnn/core/progress.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <unistd.h>

namespace histocnn {

bool progress_enabled_by_default() {
  const char* env = std::getenv("HISTOCNN_PROGRESS");
  return !(env && std::strcmp(env, "0") == 0);
}

ProgressBar::ProgressBar(int64_t total, std::string label, bool enabled, std::string unit)
    : total_(total), label_(std::move(label)), unit_(std::move(unit)), enabled_(enabled),
      start_(std::chrono::steady_clock::now()), last_draw_(start_ - std::chrono::seconds(1)) {}

ProgressBar::~ProgressBar() {
  if (!finished_) finish();
}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

double ProgressBar::items_per_second() const {
  double s = elapsed_seconds();
  return s > 0 ? static_cast<double>(items_ > 0 ? items_ : done_) / s : 0.0;
}

void ProgressBar::update(int64_t steps, const std::string& postfix) {
  done_ += steps;
  if (!postfix.empty()) postfix_ = postfix;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ >= std::chrono::milliseconds(200) || done_ == total_) {
    last_draw_ = now;
    draw(false);
  }
}

void ProgressBar::finish(const std::string& postfix) {
  if (finished_) return;
  finished_ = true;
  if (!postfix.empty()) postfix_ = postfix;
  draw(true);
}

void ProgressBar::draw(bool final) {
  if (!enabled_) return;
  // In a log file, redraws are noise: show only the final line.
  static const bool interactive = isatty(fileno(stderr)) != 0;
  if (!interactive && !final) return;
  constexpr int width = 24;
  double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done_) / total_) : 0.0;
  int filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar.append(width - filled, '.');
  double elapsed = elapsed_seconds();
  double rate = items_per_second();
  std::string eta;
  if (!final && done_ > 0 && total_ > done_) {
    double remaining = elapsed / done_ * (total_ - done_);
    eta = fmt::format(" eta {:.0f}s", remaining);
  }
  std::string line = fmt::format("\r{} [{}] {}/{} {:.1f}s {:.1f} {}/s{} {}", label_, bar, done_, total_,
                                 elapsed, rate, unit_, eta, postfix_);
  std::fputs(line.c_str(), stderr);
  std::fputs("\x1b[K", stderr);  // clear what a longer previous line left behind
  if (final) std::fputc('\n', stderr);
  std::fflush(stderr);
}

}  // namespace histocnn
