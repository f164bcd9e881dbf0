#include "histocnn/train/trainer.h"

#include "histocnn/core/device.h"
#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/core/progress.h"
#include "histocnn/data/loader.h"
#include "histocnn/metrics/binary.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>

namespace histocnn::train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct StopTraining {};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& params,
                                                        const TrainerOptions& o) {
  // Keras' defaults (rho 0.9, epsilon 1e-7), which the study used.
  if (o.optimizer == "rmsprop") {
    return std::make_unique<torch::optim::RMSprop>(
        params, torch::optim::RMSpropOptions(o.learning_rate).alpha(0.9).eps(1e-7).weight_decay(o.weight_decay));
  }
  if (o.optimizer == "adam") {
    return std::make_unique<torch::optim::Adam>(
        params, torch::optim::AdamOptions(o.learning_rate).eps(1e-7).weight_decay(o.weight_decay));
  }
  HISTOCNN_FAIL("optimizer '{}' is not known; use 'rmsprop' or 'adam'", o.optimizer);
}

data::LoaderOptions loader_options(const TrainerOptions& o, bool shuffle, bool augment) {
  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.shuffle = shuffle;
  lo.workers = o.workers;
  lo.seed = o.seed;
  lo.augment.enabled = augment;
  return lo;
}

// Pooled backbone features of a whole dataset, [N, C] on the model's device.
torch::Tensor extract_features(models::Classifier& model, const data::PatchDataset& ds, const TrainerOptions& o,
                               const torch::Device& device, const std::string& label) {
  model->eval();
  torch::NoGradGuard no_grad;
  data::BatchLoader loader(ds, loader_options(o, false, false));
  auto out = torch::empty({static_cast<int64_t>(ds.size()), model->backbone()->feature_channels()},
                          torch::TensorOptions().dtype(torch::kFloat32).device(device));
  ProgressBar bar(loader.num_batches(), label, o.progress, "img");
  int64_t offset = 0;
  loader.run_epoch(0, [&](data::Batch& b) {
    auto f = model->features(b.images.to(device));
    const int64_t n = f.size(0);
    out.narrow(0, offset, n).copy_(f);
    offset += n;
    bar.add_items(n);
    bar.update(1);
  });
  bar.finish();
  return out;
}

std::vector<double> to_vector(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU, torch::kFloat64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace

void TrainerOptions::validate() const {
  HISTOCNN_CHECK(epochs >= 1, "epochs must be at least 1, got {}", epochs);
  HISTOCNN_CHECK(batch_size >= 1, "batch_size must be at least 1, got {}", batch_size);
  HISTOCNN_CHECK(learning_rate > 0 && std::isfinite(learning_rate), "learning_rate must be positive, got {}",
                 learning_rate);
  HISTOCNN_CHECK(weight_decay >= 0, "weight_decay must be >= 0, got {}", weight_decay);
  HISTOCNN_CHECK(workers >= 0, "workers must be >= 0, got {}", workers);
  HISTOCNN_CHECK(optimizer == "rmsprop" || optimizer == "adam", "optimizer '{}' is not known; use 'rmsprop' or 'adam'",
                 optimizer);
}

std::string TrainerOptions::to_json() const {
  nlohmann::json j = {{"epochs", epochs},       {"batch_size", batch_size},         {"optimizer", optimizer},
                      {"learning_rate", learning_rate}, {"weight_decay", weight_decay}, {"seed", seed},
                      {"workers", workers},     {"threads", threads},               {"device", device},
                      {"augment", augment},     {"cache_features", cache_features}, {"restore_best", restore_best}};
  return j.dump();
}

std::string History::to_csv() const {
  std::string s = "epoch,train_loss,train_accuracy,val_loss,val_accuracy,val_auc,learning_rate,seconds,images_per_second\n";
  auto num = [](double v) { return std::isfinite(v) ? fmt::format("{:.6g}", v) : std::string(); };
  for (const auto& e : epochs) {
    s += fmt::format("{},{},{},{},{},{},{},{},{}\n", e.epoch, num(e.train_loss), num(e.train_accuracy), num(e.val_loss),
                     num(e.val_accuracy), num(e.val_auc), num(e.learning_rate), num(e.seconds),
                     num(e.images_per_second));
  }
  return s;
}

Predictions predict_dataset(models::Classifier& model, const data::PatchDataset& dataset, int64_t batch_size,
                            int workers, bool progress) {
  HISTOCNN_CHECK(dataset.size() > 0, "cannot predict on an empty dataset");
  const auto device = model->parameters().front().device();
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.workers = workers;
  data::BatchLoader loader(dataset, lo);
  Predictions out;
  out.p_positive.reserve(dataset.size());
  ProgressBar bar(loader.num_batches(), "predict", progress, "img");
  loader.run_epoch(0, [&](data::Batch& b) {
    auto p = torch::softmax(model->forward(b.images.to(device)), 1).select(1, 1);
    auto v = to_vector(p);
    out.p_positive.insert(out.p_positive.end(), v.begin(), v.end());
    bar.add_items(b.images.size(0));
    bar.update(1);
  });
  bar.finish();
  out.labels = dataset.labels();
  if (was_training) model->train(true);
  return out;
}

Trainer::Trainer(models::Classifier model, TrainerOptions options)
    : model_(std::move(model)), options_(std::move(options)), device_(parse_device(options_.device)) {
  options_.validate();
  HISTOCNN_CHECK(!model_.is_empty(), "Trainer needs a model");
}

void Trainer::add_callback(EpochCallback callback) { callbacks_.push_back(std::move(callback)); }

Predictions Trainer::predict(const data::PatchDataset& dataset) {
  return predict_dataset(model_, dataset, std::max<int64_t>(options_.batch_size, 64), options_.workers,
                         options_.progress);
}

History Trainer::fit(const data::PatchDataset& train, const data::PatchDataset* val) {
  HISTOCNN_CHECK(train.size() > 0, "the training set is empty");
  HISTOCNN_CHECK(!val || val->size() > 0, "the validation set is empty; pass none instead");
  stop_requested_ = false;
  configure_threads(options_.threads);
  torch::manual_seed(options_.seed);
  model_->to(device_);

  train.preload(options_.workers, options_.progress);
  if (val) val->preload(options_.workers, options_.progress);

  std::vector<torch::Tensor> params;
  for (auto& p : model_->parameters()) {
    if (p.requires_grad()) params.push_back(p);
  }
  HISTOCNN_CHECK(!params.empty(), "the model has no trainable parameters");
  auto optimizer = make_optimizer(params, options_);

  History history;
  const bool use_cache = options_.cache_features && model_->backbone_frozen() && !options_.augment;
  torch::Tensor train_features, val_features;
  if (use_cache) {
    auto t0 = Clock::now();
    train_features = extract_features(model_, train, options_, device_, "features (train)");
    if (val) val_features = extract_features(model_, *val, options_, device_, "features (val)");
    history.feature_cache_seconds = seconds_since(t0);
  }
  const auto label_list = train.labels();
  const auto train_labels = torch::tensor(std::vector<int64_t>(label_list.begin(), label_list.end())).to(device_);
  data::BatchLoader loader(train, loader_options(options_, /*shuffle=*/true, options_.augment));

  auto validate = [&](EpochRecord& rec) {
    if (!val) return;
    std::vector<double> p;
    if (use_cache) {
      model_->eval();
      torch::NoGradGuard no_grad;
      p = to_vector(torch::softmax(model_->head_forward(val_features), 1).select(1, 1));
    } else {
      p = predict_dataset(model_, *val, std::max<int64_t>(options_.batch_size, 64), options_.workers, false)
              .p_positive;
    }
    auto m = metrics::evaluate_binary(val->labels(), p, 0.5);
    rec.val_loss = m.log_loss;
    rec.val_accuracy = m.accuracy;
    rec.val_auc = m.roc_auc;
  };

  io::TensorMap best_state;
  for (int epoch = 1; epoch <= options_.epochs && !stop_requested_; ++epoch) {
    auto t0 = Clock::now();
    model_->train(true);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    ProgressBar bar(loader.num_batches(), fmt::format("epoch {}/{}", epoch, options_.epochs), options_.progress, "img");
    auto step = [&](const torch::Tensor& logits, const torch::Tensor& y) {
      auto loss = torch::nn::functional::cross_entropy(logits, y);
      optimizer->zero_grad();
      loss.backward();
      optimizer->step();
      const int64_t n = y.size(0);
      loss_sum += loss.item<double>() * n;
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      seen += n;
      bar.add_items(n);
      bar.update(1, fmt::format("loss {:.4f} acc {:.3f}", loss_sum / seen, static_cast<double>(correct) / seen));
      if (stop_requested_) throw StopTraining{};
    };
    try {
      if (use_cache) {
        const auto order = loader.epoch_order(epoch - 1);
        const auto index = torch::tensor(order).to(device_);
        for (int64_t b = 0; b < loader.num_batches(); ++b) {
          const int64_t begin = b * options_.batch_size;
          const int64_t n = std::min<int64_t>(options_.batch_size, index.size(0) - begin);
          auto idx = index.narrow(0, begin, n);
          step(model_->head_forward(train_features.index_select(0, idx)), train_labels.index_select(0, idx));
        }
      } else {
        loader.run_epoch(epoch - 1, [&](data::Batch& b) { step(model_->forward(b.images.to(device_)), b.labels.to(device_)); });
      }
    } catch (const StopTraining&) {
      history.stopped_early = true;
    }
    bar.finish();
    if (history.stopped_early) break;

    EpochRecord rec;
    rec.epoch = epoch;
    rec.train_loss = loss_sum / std::max<int64_t>(seen, 1);
    rec.train_accuracy = static_cast<double>(correct) / std::max<int64_t>(seen, 1);
    rec.learning_rate = options_.learning_rate;
    validate(rec);
    rec.seconds = seconds_since(t0);
    rec.images_per_second = seen / std::max(rec.seconds, 1e-9);
    history.epochs.push_back(rec);
    log_info("epoch {}/{}: loss {:.4f} acc {:.4f}{} ({:.1f}s, {:.0f} img/s)", epoch, options_.epochs, rec.train_loss,
             rec.train_accuracy,
             val ? fmt::format(" | val loss {:.4f} acc {:.4f} auc {:.4f}", rec.val_loss, rec.val_accuracy, rec.val_auc)
                 : std::string(),
             rec.seconds, rec.images_per_second);

    if (val && std::isfinite(rec.val_auc) && (history.best_epoch == 0 || rec.val_auc > history.best_val_auc)) {
      history.best_epoch = epoch;
      history.best_val_auc = rec.val_auc;
      if (options_.restore_best) {
        best_state.clear();
        for (const auto& kv : models::state_dict(*model_)) best_state[kv.first] = kv.second.clone();
      }
    }
    for (auto& cb : callbacks_) {
      if (!cb(rec)) history.stopped_early = true;
    }
    if (history.stopped_early) break;
  }
  if (options_.restore_best && !best_state.empty() && history.best_epoch != static_cast<int>(history.epochs.size())) {
    models::load_state_dict(*model_, best_state);
    log_info("restored the weights of epoch {} (best validation AUC {:.4f})", history.best_epoch, history.best_val_auc);
  }
  model_->eval();
  return history;
}

}  // namespace histocnn::train
