#pragma once
// A terminal progress bar for long work (training epochs, scans, feature extraction).
//
//   histocnn::ProgressBar bar(total_batches, "epoch 1/10");
//   for (...) { ...; bar.update(1, fmt::format("loss {:.4f}", loss)); }
//   bar.finish();
//
// It redraws at most a few times a second on stderr, shows items per second and an ETA, and stays
// silent when disabled (for example in tests or when a Python callback shows its own bar).
#include <chrono>
#include <cstdint>
#include <string>

namespace histocnn {

class ProgressBar {
 public:
  ProgressBar(int64_t total, std::string label, bool enabled = true, std::string unit = "it");
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  /// Advances by `steps` and sets the text shown after the bar (e.g. the running loss).
  void update(int64_t steps = 1, const std::string& postfix = "");
  /// Adds to the item counter used for the rate (e.g. images, when steps are batches).
  void add_items(int64_t items) { items_ += items; }
  /// Draws the final state and ends the line. Called by the destructor if not called before.
  void finish(const std::string& postfix = "");

  double elapsed_seconds() const;
  double items_per_second() const;

 private:
  void draw(bool final);
  int64_t total_;
  int64_t done_ = 0;
  int64_t items_ = 0;
  std::string label_;
  std::string unit_;
  std::string postfix_;
  bool enabled_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

/// Whether progress bars are shown by default: true unless HISTOCNN_PROGRESS=0 is set.
bool progress_enabled_by_default();

}  // namespace histocnn
