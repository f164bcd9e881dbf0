#pragma once
// Trains a Classifier on PatchDatasets and keeps the best weights by validation ROC-AUC.
//
//   histocnn::train::TrainerOptions opt;
//   opt.epochs = 10; opt.optimizer = histocnn::train::OptimizerKind::rmsprop; opt.learning_rate = 1e-3;
//   opt.checkpoint_dir = "runs/x/checkpoint";      // resumable: rerun continues where it stopped
//   histocnn::train::Trainer trainer(model, opt);
//   trainer.add_callback(std::make_shared<histocnn::train::CSVLogger>("runs/x/history.csv"));
//   auto history = trainer.fit(train_set, &val_set);
//   auto pred = trainer.predict(test_set);          // P(IDC-positive) per patch
//
// With a frozen backbone and no augmentation, backbone features are computed once and the head
// trains on them (cache_features), so 20 epochs cost little more than one backbone pass.
#include "histocnn/core/progress.h"
#include "histocnn/data/dataset.h"
#include "histocnn/data/augment.h"
#include "histocnn/inference/predict.h"
#include "histocnn/models/classifier.h"
#include "histocnn/train/callbacks.h"
#include "histocnn/train/choices.h"
#include "histocnn/train/history.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace torch::optim {
class Optimizer;
}

namespace histocnn::train {

struct TrainerOptions {
  int epochs = 10;
  int64_t batch_size = 32;
  OptimizerKind optimizer = OptimizerKind::rmsprop;
  double learning_rate = 1e-3;
  /// Learning rate of the trainable backbone layers relative to the head's (e.g. 0.1 for gentle
  /// fine-tuning of the unfrozen blocks); schedules and ReduceLROnPlateau keep the ratio.
  double backbone_lr_multiplier = 1.0;
  double weight_decay = 0.0;
  double momentum = 0.9;              ///< sgd only
  Schedule schedule = Schedule::constant;  ///< per epoch, after warmup_epochs of linear warm-up
  int warmup_epochs = 0;
  int reduce_lr_patience = 0;         ///< > 0: ReduceLROnPlateau on val_loss (factor, min_lr below)
  double reduce_lr_factor = 0.2;
  double min_lr = 1e-4;
  int early_stopping_patience = 0;    ///< > 0: EarlyStopping on val_auc
  ClassWeight class_weight = ClassWeight::none;
  Sampler sampler = Sampler::shuffle;
  /// > 0: at most this many patches of each patient per epoch, drawn afresh each epoch (shuffle
  /// sampler only), so every patient weighs alike whether it has 50 patches or 2,000.
  int64_t per_patient = 0;
  uint64_t seed = 42;
  int workers = 2;               ///< batch-preparation threads
  int threads = 0;               ///< LibTorch intra-op threads; <= 0: all cores
  std::string device = "auto";   ///< auto | cpu | cuda | cuda:N
  /// Forward passes in bfloat16 autocast: automatic (on CUDA, off on the CPU), off, or bf16 (on
  /// any device; on CPUs without bfloat16 instructions it is slower, not faster).
  MixedPrecision mixed_precision = MixedPrecision::automatic;
  data::AugmentOptions augment;  ///< on the training split only
  bool cache_features = true;    ///< frozen backbone + no augmentation: compute features once
  bool restore_best = true;      ///< end with the weights of the best validation AUC epoch
  /// 0: off. Else validation, the best epoch and the final model use an exponential moving average
  /// of the weights with this decay (e.g. 0.999), updated after every step (train/weight_average.h).
  double ema_decay = 0.0;
  /// 0: off. Else mixup (train/mixup.h) with lambda ~ Beta(mixup, mixup) per batch (e.g. 0.2).
  double mixup = 0.0;
  std::string checkpoint_dir;    ///< "" = no checkpoints; else resume from and save to this folder
  bool progress = progress_enabled_by_default();  ///< progress bars on stderr (HISTOCNN_PROGRESS=0: off)
  /// Data-parallel training (train/distributed.h). fit() joins the job its environment describes
  /// (WORLD_SIZE > 1); nproc > 1 makes run_training start that many local workers.
  int nproc = 1;
  std::string dist_backend = "auto";  ///< auto | gloo | nccl
  double dist_timeout = 1800;         ///< seconds a rank waits for the others

  void validate() const;
  std::string to_json() const;
  /// The options that change what is learned (not threads, workers, device, progress, paths):
  /// a checkpoint is only resumed by a run with the same ones.
  std::string learning_json() const;
};

using inference::Predictions;

/// Called after each epoch; return false to stop training.
using EpochCallback = std::function<bool(const EpochRecord&)>;

class Trainer {
 public:
  Trainer(models::Classifier model, TrainerOptions options = {});
  ~Trainer();

  History fit(const data::PatchDataset& train, const data::PatchDataset* val = nullptr);
  /// P(class 1) for every patch. After a fit() that cached frozen-backbone features, predicting the
  /// same validation set reuses them (only the head runs).
  Predictions predict(const data::PatchDataset& dataset);

  void add_callback(std::shared_ptr<Callback> callback);
  void add_callback(EpochCallback callback);
  /// Asks fit() to stop after the current batch; safe from another thread or a signal handler.
  /// The last completed epoch's checkpoint is kept, so the run can be resumed.
  void request_stop() { stop_requested_ = true; }

  /// The model. Handing it out drops the cached validation features: the caller may change it.
  models::Classifier& model() {
    val_features_ = torch::Tensor();
    return model_;
  }
  const TrainerOptions& options() const { return options_; }
  /// The head's learning rate (the options' before and after training).
  double learning_rate() const;
  /// Every parameter group's learning rate while training: the head's, then the trainable
  /// backbone layers' (learning rate x backbone_lr_multiplier) when there are any.
  std::vector<double> group_learning_rates() const;
  /// Sets the head's learning rate and the backbone group's in proportion.
  void set_learning_rate(double lr);

 private:
  models::Classifier model_;
  TrainerOptions options_;
  torch::Device device_;
  std::vector<std::shared_ptr<Callback>> callbacks_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::atomic<bool> stop_requested_{false};
  torch::Tensor val_features_;   ///< frozen-backbone features of fit()'s validation set
  uint64_t val_features_of_ = 0;  ///< hash of that set's patches, labels and preprocessing
};

}  // namespace histocnn::train
