#pragma once
// Training callbacks with Keras' names and meaning.
//
//   trainer.add_callback(std::make_shared<histocnn::train::EarlyStopping>("val_auc", /*patience=*/3));
//   trainer.add_callback(std::make_shared<histocnn::train::ReduceLROnPlateau>("val_loss", 0.2, 2, 1e-4));
//   trainer.add_callback(std::make_shared<histocnn::train::CSVLogger>("run/history.csv"));
//
// Write your own by deriving from Callback. Callbacks keep no state that the history does not
// hold: on_train_begin receives the history so far (non-empty when a run resumes from its
// checkpoint) and rebuilds counters from it, so a resumed run behaves as an uninterrupted one.
#include "histocnn/inference/model_card.h"
#include "histocnn/train/history.h"

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace histocnn::train {

class Trainer;

/// What a callback may look at and change while training runs.
struct TrainContext {
  Trainer* trainer = nullptr;
  int epochs = 0;              ///< planned number of epochs
  int64_t batches_per_epoch = 0;
  const History* history = nullptr;
  bool stop_training = false;  ///< set to true to end training after this epoch
  double learning_rate() const;
  void set_learning_rate(double lr);
};

class Callback {
 public:
  virtual ~Callback() = default;
  virtual void on_train_begin(TrainContext& context) {}
  virtual void on_epoch_begin(TrainContext& context, int epoch) {}
  virtual void on_batch_end(TrainContext& context, int64_t batch, double loss) {}
  virtual void on_epoch_end(TrainContext& context, const EpochRecord& record) {}
  virtual void on_train_end(TrainContext& context) {}
};

/// Stops training at the next batch once request() is called (from any thread): what a Ctrl-C
/// handler or a notebook's interrupt calls. The epoch in progress is dropped and the checkpoint of
/// the last complete epoch is kept, so the same run resumes from there.
class StopSignal : public Callback {
 public:
  void request() { requested_ = true; }
  bool requested() const { return requested_; }
  void on_train_begin(TrainContext& context) override;
  void on_batch_end(TrainContext& context, int64_t batch, double loss) override;

 private:
  std::atomic<bool> requested_{false};
};

/// Reads a monitored quantity ("val_auc", "val_loss", "val_accuracy", "train_loss", "train_accuracy")
/// from an epoch record; throws std::invalid_argument naming the known ones otherwise.
double monitored_value(const EpochRecord& record, const std::string& monitor);
/// "max" for accuracies and AUC, "min" for losses.
bool monitor_is_higher_better(const std::string& monitor);

/// Stops when `monitor` has not improved by min_delta for `patience` epochs. The trainer's
/// restore_best option then restores the best weights (Keras' restore_best_weights).
class EarlyStopping : public Callback {
 public:
  EarlyStopping(std::string monitor = "val_auc", int patience = 5, double min_delta = 0.0);
  void on_train_begin(TrainContext& context) override;
  void on_epoch_end(TrainContext& context, const EpochRecord& record) override;
  int stopped_epoch() const { return stopped_epoch_; }

 private:
  bool improved(double value) const;
  std::string monitor_;
  int patience_;
  double min_delta_;
  double best_ = 0;
  bool has_best_ = false;
  int wait_ = 0;
  int stopped_epoch_ = 0;
};

/// Multiplies the learning rate by `factor` when `monitor` has not improved for `patience`
/// epochs, never going below min_lr (the study: factor 0.2, min_lr 1e-4).
class ReduceLROnPlateau : public Callback {
 public:
  ReduceLROnPlateau(std::string monitor = "val_loss", double factor = 0.2, int patience = 2, double min_lr = 1e-4);
  void on_train_begin(TrainContext& context) override;
  void on_epoch_end(TrainContext& context, const EpochRecord& record) override;

 private:
  std::string monitor_;
  double factor_;
  int patience_;
  double min_lr_;
  double best_ = 0;
  bool has_best_ = false;
  int wait_ = 0;
};

/// Writes the history as CSV after every epoch (atomically, so it is always complete).
class CSVLogger : public Callback {
 public:
  explicit CSVLogger(std::filesystem::path path);
  void on_epoch_end(TrainContext& context, const EpochRecord& record) override;

 private:
  std::filesystem::path path_;
};

/// Saves a model bundle that inference::Predictor loads to `dir` after each epoch, or only when
/// `monitor` improves. `card` supplies the preprocessing, class names and threshold to record (the
/// preprocessing the training data used); the epoch and monitored value go into its provenance.
class ModelCheckpoint : public Callback {
 public:
  ModelCheckpoint(std::filesystem::path dir, inference::ModelCard card, std::string monitor = "val_auc",
                  bool save_best_only = true);
  void on_train_begin(TrainContext& context) override;
  void on_epoch_end(TrainContext& context, const EpochRecord& record) override;

 private:
  std::filesystem::path dir_;
  inference::ModelCard card_;
  std::string monitor_;
  bool save_best_only_;
  double best_ = 0;
  bool has_best_ = false;
};

/// TensorBoard scalars (train/val loss, accuracy, AUC, learning rate) per epoch, in an event file
/// that TensorBoard opens.
class TensorBoard : public Callback {
 public:
  explicit TensorBoard(std::filesystem::path log_dir);
  ~TensorBoard() override;
  void on_train_begin(TrainContext& context) override;
  void on_epoch_end(TrainContext& context, const EpochRecord& record) override;

 private:
  struct Writer;
  std::filesystem::path log_dir_;
  std::unique_ptr<Writer> writer_;
};

}  // namespace histocnn::train
