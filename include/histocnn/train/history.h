#pragma once
// The per-epoch record of a training run.
//
//   histocnn::train::History h = trainer.fit(train, &val);
//   std::cout << h.to_csv();                 // the run folder's history.csv
//   auto again = histocnn::train::History::from_csv(text);
#include <limits>
#include <string>
#include <vector>

namespace histocnn::train {

struct EpochRecord {
  int epoch = 0;  ///< 1-based
  double train_loss = 0, train_accuracy = 0;
  double val_loss = std::numeric_limits<double>::quiet_NaN();
  double val_accuracy = std::numeric_limits<double>::quiet_NaN();
  double val_auc = std::numeric_limits<double>::quiet_NaN();
  double learning_rate = 0;
  double seconds = 0;
  double images_per_second = 0;
};

struct History {
  std::vector<EpochRecord> epochs;
  int best_epoch = 0;  ///< 1-based; 0 when no validation set
  double best_val_auc = std::numeric_limits<double>::quiet_NaN();
  double feature_cache_seconds = 0;  ///< time spent computing cached backbone features
  double fit_seconds = 0;            ///< wall time of the last fit(): decoding, feature cache, epochs
  bool stopped_early = false;        ///< a callback or request_stop() ended training
  bool interrupted = false;          ///< request_stop() ended training mid-epoch (rerun to resume)
  int resumed_from_epoch = 0;        ///< > 0 when training continued from a checkpoint

  /// The columns that describe what was learned (epoch .. learning_rate); with timings also
  /// seconds and images_per_second, which differ between otherwise identical runs.
  std::string to_csv(bool with_timings = true) const;
  static History from_csv(const std::string& text);
};

}  // namespace histocnn::train
