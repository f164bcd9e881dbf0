#pragma once
// Trains a Classifier on PatchDatasets and keeps the best weights by validation ROC-AUC.
//
//   histocnn::train::TrainerOptions opt;
//   opt.epochs = 10; opt.optimizer = "rmsprop"; opt.learning_rate = 1e-3;
//   histocnn::train::Trainer trainer(model, opt);
//   auto history = trainer.fit(train_set, &val_set);
//   auto pred = trainer.predict(test_set);          // P(IDC-positive) per patch
//
// With a frozen backbone and no augmentation, backbone features are computed once and the head
// trains on them (cache_features), so 20 epochs cost little more than one backbone pass.
#include "histocnn/data/dataset.h"
#include "histocnn/models/classifier.h"

#include <atomic>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace histocnn::train {

struct TrainerOptions {
  int epochs = 10;
  int64_t batch_size = 32;
  std::string optimizer = "rmsprop";  ///< rmsprop | adam
  double learning_rate = 1e-3;
  double weight_decay = 0.0;
  uint64_t seed = 42;
  int workers = 2;               ///< batch-preparation threads
  int threads = 0;               ///< LibTorch intra-op threads; <= 0: all cores
  std::string device = "auto";   ///< auto | cpu | cuda | cuda:N
  bool augment = false;          ///< flips and quarter turns on the training split
  bool cache_features = true;    ///< frozen backbone + no augmentation: compute features once
  bool restore_best = true;      ///< end with the weights of the best validation AUC epoch
  bool progress = true;          ///< progress bars on stderr

  void validate() const;
  std::string to_json() const;
};

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
  bool stopped_early = false;        ///< a callback or request_stop() ended training
  std::string to_csv() const;
};

struct Predictions {
  std::vector<double> p_positive;  ///< P(class 1) per patch, in dataset order
  std::vector<int> labels;         ///< the dataset's labels, same order
};

/// Called after each epoch; return false to stop training.
using EpochCallback = std::function<bool(const EpochRecord&)>;

/// P(class 1) for every patch of a dataset, in order, in inference mode.
Predictions predict_dataset(models::Classifier& model, const data::PatchDataset& dataset, int64_t batch_size = 64,
                            int workers = 2, bool progress = false);

class Trainer {
 public:
  Trainer(models::Classifier model, TrainerOptions options = {});

  History fit(const data::PatchDataset& train, const data::PatchDataset* val = nullptr);
  Predictions predict(const data::PatchDataset& dataset);

  void add_callback(EpochCallback callback);
  /// Asks fit() to stop after the current batch; safe from another thread or a signal handler.
  void request_stop() { stop_requested_ = true; }

  models::Classifier& model() { return model_; }
  const TrainerOptions& options() const { return options_; }

 private:
  models::Classifier model_;
  TrainerOptions options_;
  torch::Device device_;
  std::vector<EpochCallback> callbacks_;
  std::atomic<bool> stop_requested_{false};
};

}  // namespace histocnn::train
