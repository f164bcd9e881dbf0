#include "histocnn/train/callbacks.h"

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/inference/saved_model.h"
#include "histocnn/train/trainer.h"

#include <array>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>

#include <unistd.h>

namespace histocnn::train {

namespace fs = std::filesystem;

double TrainContext::learning_rate() const { return trainer->learning_rate(); }
void TrainContext::set_learning_rate(double lr) { trainer->set_learning_rate(lr); }

void StopSignal::on_train_begin(TrainContext& context) {
  if (requested_) context.trainer->request_stop();
}

void StopSignal::on_batch_end(TrainContext& context, int64_t, double) {
  if (requested_) context.trainer->request_stop();
}

double monitored_value(const EpochRecord& r, const std::string& monitor) {
  if (monitor == "val_auc") return r.val_auc;
  if (monitor == "val_loss") return r.val_loss;
  if (monitor == "val_accuracy") return r.val_accuracy;
  if (monitor == "train_loss" || monitor == "loss") return r.train_loss;
  if (monitor == "train_accuracy" || monitor == "accuracy") return r.train_accuracy;
  HISTOCNN_FAIL("cannot monitor '{}'; use val_auc, val_loss, val_accuracy, train_loss or train_accuracy", monitor);
}

bool monitor_is_higher_better(const std::string& monitor) { return monitor.find("loss") == std::string::npos; }

namespace {
// Keras' rule: an improvement must beat the best by more than min_delta in the monitored direction.
bool is_improvement(double value, double best, bool has_best, bool higher_better, double min_delta) {
  if (!std::isfinite(value)) return false;
  if (!has_best) return true;
  return higher_better ? value > best + min_delta : value < best - min_delta;
}
}  // namespace

EarlyStopping::EarlyStopping(std::string monitor, int patience, double min_delta)
    : monitor_(std::move(monitor)), patience_(patience), min_delta_(min_delta) {
  HISTOCNN_CHECK(patience_ >= 1, "EarlyStopping patience must be at least 1, got {}", patience_);
  monitored_value(EpochRecord{}, monitor_);  // validates the name now, not after the first epoch
}

bool EarlyStopping::improved(double value) const {
  return is_improvement(value, best_, has_best_, monitor_is_higher_better(monitor_), min_delta_);
}

void EarlyStopping::on_train_begin(TrainContext& context) {
  has_best_ = false;
  wait_ = 0;
  stopped_epoch_ = 0;
  for (const auto& r : context.history->epochs) {
    TrainContext replay = context;
    on_epoch_end(replay, r);
  }
}

void EarlyStopping::on_epoch_end(TrainContext& context, const EpochRecord& record) {
  const double value = monitored_value(record, monitor_);
  if (improved(value)) {
    best_ = value;
    has_best_ = true;
    wait_ = 0;
    return;
  }
  if (++wait_ >= patience_) {
    stopped_epoch_ = record.epoch;
    context.stop_training = true;
  }
}

ReduceLROnPlateau::ReduceLROnPlateau(std::string monitor, double factor, int patience, double min_lr)
    : monitor_(std::move(monitor)), factor_(factor), patience_(patience), min_lr_(min_lr) {
  HISTOCNN_CHECK(factor_ > 0 && factor_ < 1, "ReduceLROnPlateau factor must be in (0, 1), got {}", factor_);
  HISTOCNN_CHECK(patience_ >= 1, "ReduceLROnPlateau patience must be at least 1, got {}", patience_);
  HISTOCNN_CHECK(min_lr_ >= 0, "min_lr must be >= 0, got {}", min_lr_);
  monitored_value(EpochRecord{}, monitor_);
}

void ReduceLROnPlateau::on_train_begin(TrainContext& context) {
  // The learning rate itself is restored with the optimizer; only the counters are rebuilt.
  has_best_ = false;
  wait_ = 0;
  const bool higher = monitor_is_higher_better(monitor_);
  for (size_t i = 0; i < context.history->epochs.size(); ++i) {
    const auto& r = context.history->epochs[i];
    const double v = monitored_value(r, monitor_);
    if (is_improvement(v, best_, has_best_, higher, 0.0)) {
      best_ = v;
      has_best_ = true;
      wait_ = 0;
    } else if (++wait_ >= patience_) {
      wait_ = 0;
    }
  }
}

void ReduceLROnPlateau::on_epoch_end(TrainContext& context, const EpochRecord& record) {
  const double v = monitored_value(record, monitor_);
  if (is_improvement(v, best_, has_best_, monitor_is_higher_better(monitor_), 0.0)) {
    best_ = v;
    has_best_ = true;
    wait_ = 0;
    return;
  }
  if (++wait_ >= patience_) {
    wait_ = 0;
    const double old_lr = context.learning_rate();
    const double new_lr = std::max(old_lr * factor_, min_lr_);
    if (new_lr < old_lr) {
      context.set_learning_rate(new_lr);
      log_info("ReduceLROnPlateau: {} did not improve for {} epochs; learning rate {:.3g} -> {:.3g}", monitor_,
               patience_, old_lr, new_lr);
    }
  }
}

CSVLogger::CSVLogger(fs::path path) : path_(std::move(path)) {}

void CSVLogger::on_epoch_end(TrainContext& context, const EpochRecord& record) {
  History h = *context.history;
  h.epochs.push_back(record);
  io::write_file_atomic(path_, h.to_csv());
}

ModelCheckpoint::ModelCheckpoint(fs::path dir, inference::ModelCard card, std::string monitor, bool save_best_only)
    : dir_(std::move(dir)), card_(std::move(card)), monitor_(std::move(monitor)), save_best_only_(save_best_only) {
  monitored_value(EpochRecord{}, monitor_);
}

void ModelCheckpoint::on_train_begin(TrainContext& context) {
  has_best_ = false;
  for (const auto& r : context.history->epochs) {
    const double v = monitored_value(r, monitor_);
    if (is_improvement(v, best_, has_best_, monitor_is_higher_better(monitor_), 0.0)) {
      best_ = v;
      has_best_ = true;
    }
  }
}

void ModelCheckpoint::on_epoch_end(TrainContext& context, const EpochRecord& record) {
  const double v = monitored_value(record, monitor_);
  const bool better = is_improvement(v, best_, has_best_, monitor_is_higher_better(monitor_), 0.0);
  if (better) {
    best_ = v;
    has_best_ = true;
  }
  if (save_best_only_ && !better) return;
  auto card = card_;
  card.provenance.best_epoch = record.epoch;
  card.provenance.note = fmt::format("checkpoint: {} {} at epoch {}", monitor_, v, record.epoch);
  inference::save_model(context.trainer->model(), card, dir_);
}

// TensorBoard event files: TFRecord framing (length, masked CRC32C, data, masked CRC32C) around
// hand-encoded tensorflow.Event protocol buffers holding scalar summaries.
struct TensorBoard::Writer {
  std::ofstream out;

  static uint32_t crc32c(const std::string& data) {
    // Built once, thread-safely (a function-local static's initialiser runs exactly once).
    static const std::array<uint32_t, 256> table = [] {
      std::array<uint32_t, 256> t{};
      for (uint32_t i = 0; i < 256; ++i) {
        uint32_t c = i;
        for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        t[i] = c;
      }
      return t;
    }();
    uint32_t crc = 0xFFFFFFFFu;
    for (unsigned char ch : data) crc = table[(crc ^ ch) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
  }
  static uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }
  static void put_fixed(std::string& s, uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  }
  static void put_varint(std::string& s, uint64_t v) {
    while (v >= 0x80) {
      s.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    s.push_back(static_cast<char>(v));
  }
  static void put_bytes(std::string& s, int field, const std::string& bytes) {
    put_varint(s, (static_cast<uint64_t>(field) << 3) | 2);
    put_varint(s, bytes.size());
    s += bytes;
  }
  static std::string event_header(double wall_time, int64_t step) {
    std::string e;
    e.push_back(0x09);  // field 1 (wall_time), fixed64
    uint64_t bits;
    std::memcpy(&bits, &wall_time, 8);
    put_fixed(e, bits, 8);
    e.push_back(0x10);  // field 2 (step), varint
    put_varint(e, static_cast<uint64_t>(step));
    return e;
  }
  void write_record(const std::string& data) {
    std::string header;
    put_fixed(header, data.size(), 8);
    std::string rec = header;
    put_fixed(rec, masked(crc32c(header)), 4);
    rec += data;
    put_fixed(rec, masked(crc32c(data)), 4);
    out.write(rec.data(), static_cast<std::streamsize>(rec.size()));
  }
  void write_file_version() {
    std::string e = event_header(static_cast<double>(std::time(nullptr)), 0);
    put_bytes(e, 3, "brain.Event:2");
    write_record(e);
    out.flush();
  }
  void write_scalars(int64_t step, const std::vector<std::pair<std::string, double>>& scalars) {
    std::string summary;
    for (const auto& [tag, value] : scalars) {
      if (!std::isfinite(value)) continue;
      std::string v;
      put_bytes(v, 1, tag);  // Summary.Value.tag
      v.push_back(0x15);     // field 2 (simple_value), fixed32
      float f = static_cast<float>(value);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      put_fixed(v, bits, 4);
      put_bytes(summary, 1, v);  // Summary.value
    }
    std::string e = event_header(static_cast<double>(std::time(nullptr)), step);
    put_bytes(e, 5, summary);  // Event.summary
    write_record(e);
    out.flush();
  }
};

TensorBoard::TensorBoard(fs::path log_dir) : log_dir_(std::move(log_dir)) {}
TensorBoard::~TensorBoard() = default;

void TensorBoard::on_train_begin(TrainContext&) {
  fs::create_directories(log_dir_);
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  const auto file = log_dir_ / fmt::format("events.out.tfevents.{}.{}", std::time(nullptr), host);
  writer_ = std::make_unique<Writer>();
  writer_->out.open(file, std::ios::binary | std::ios::app);
  HISTOCNN_CHECK_IO(writer_->out.good(), "cannot write TensorBoard events to '{}'", file.string());
  writer_->write_file_version();
}

void TensorBoard::on_epoch_end(TrainContext&, const EpochRecord& r) {
  if (!writer_) return;
  writer_->write_scalars(r.epoch, {{"train/loss", r.train_loss},
                                   {"train/accuracy", r.train_accuracy},
                                   {"val/loss", r.val_loss},
                                   {"val/accuracy", r.val_accuracy},
                                   {"val/auc", r.val_auc},
                                   {"learning_rate", r.learning_rate},
                                   {"images_per_second", r.images_per_second}});
}

}  // namespace histocnn::train
