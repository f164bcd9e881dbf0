#include "histocnn/train/trainer.h"

#include "histocnn/train/options.h"

#include "histocnn/core/device.h"
#include "histocnn/core/error.h"
#include "histocnn/core/hash.h"
#include "histocnn/core/log.h"
#include "histocnn/core/progress.h"
#include "histocnn/data/loader.h"
#include "histocnn/metrics/binary.h"
#include "histocnn/train/checkpoint.h"
#include "histocnn/train/distributed.h"
#include "histocnn/train/mixup.h"
#include "histocnn/train/weight_average.h"

#include <ATen/autocast_mode.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <optional>
#include <set>
#include <sstream>

namespace histocnn::train {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct StopTraining {};

// Mixup's draws for batch b of an epoch come from sample_seed(seed, epoch, kMixupStream - b), apart
// from the patches' augmentation (indices >= 0) and the ranks' dropout (-100 - rank).
constexpr int64_t kMixupStream = -1'000'000;

// Mixed precision for the forward pass: bfloat16 autocast (no loss scaling needed, unlike float16)
// on the device the model runs on, restored on scope exit. Outputs are cast back to float32.
class AutocastScope {
 public:
  AutocastScope(bool on, const torch::Device& device) : on_(on), cuda_(device.is_cuda()) {
    if (!on_) return;
    if (cuda_) {
      was_enabled_ = at::autocast::is_enabled();
      was_dtype_ = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
      at::autocast::set_enabled(true);
    } else {
      was_enabled_ = at::autocast::is_cpu_enabled();
      was_dtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
      at::autocast::set_cpu_enabled(true);
    }
  }
  ~AutocastScope() {
    if (!on_) return;
    if (cuda_) {
      at::autocast::set_enabled(was_enabled_);
      at::autocast::set_autocast_gpu_dtype(was_dtype_);
    } else {
      at::autocast::set_cpu_enabled(was_enabled_);
      at::autocast::set_autocast_cpu_dtype(was_dtype_);
    }
    at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_, cuda_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
};

bool use_mixed_precision(const TrainerOptions& o, const torch::Device& device) {
  return o.mixed_precision == MixedPrecision::bf16 || (o.mixed_precision == MixedPrecision::automatic && device.is_cuda());
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::vector<torch::Tensor>& params,
                                                        const TrainerOptions& o) {
  // Keras' defaults (rho 0.9, epsilon 1e-7) for RMSprop and Adam, which the study used.
  switch (o.optimizer) {
    case OptimizerKind::rmsprop:
      return std::make_unique<torch::optim::RMSprop>(
          params, torch::optim::RMSpropOptions(o.learning_rate).alpha(0.9).eps(1e-7).weight_decay(o.weight_decay));
    case OptimizerKind::adam:
      return std::make_unique<torch::optim::Adam>(
          params, torch::optim::AdamOptions(o.learning_rate).eps(1e-7).weight_decay(o.weight_decay));
    case OptimizerKind::adamw:
      return std::make_unique<torch::optim::AdamW>(
          params, torch::optim::AdamWOptions(o.learning_rate).eps(1e-7).weight_decay(o.weight_decay));
    case OptimizerKind::sgd:
      return std::make_unique<torch::optim::SGD>(
          params, torch::optim::SGDOptions(o.learning_rate).momentum(o.momentum).weight_decay(o.weight_decay));
  }
  HISTOCNN_FAIL_IO("optimizer {} has no implementation", static_cast<int>(o.optimizer));
}

data::LoaderOptions loader_options(const TrainerOptions& o, bool shuffle, const data::AugmentOptions& augment) {
  data::LoaderOptions lo;
  lo.batch_size = o.batch_size;
  lo.shuffle = shuffle;
  lo.balanced = shuffle && o.sampler == Sampler::balanced;
  lo.max_per_patient = shuffle ? o.per_patient : 0;
  lo.workers = o.workers;
  lo.seed = o.seed;
  lo.augment = augment;
  return lo;
}

// What the head reads for a whole dataset (pooled features or feature-map sequences), on `device`.
// In a data-parallel job (dist), each rank computes its part of every batch and all gather the rest.
torch::Tensor extract_features(models::Classifier& model, const data::PatchDataset& ds, const TrainerOptions& o,
                               const torch::Device& device, const std::string& label, ProcessGroup* dist = nullptr) {
  model->eval();
  torch::NoGradGuard no_grad;
  auto lo = loader_options(o, false, {});
  // Sharded only when every rank gets rows (so it knows their shape): the first batch covers all ranks.
  const bool sharded = dist && std::min<int64_t>(lo.batch_size, static_cast<int64_t>(ds.size())) >= dist->size();
  if (sharded) {
    lo.shard_count = dist->size();
    lo.shard_index = dist->rank();
  }
  data::BatchLoader loader(ds, lo);
  torch::Tensor out;
  ProgressBar bar(loader.num_batches(), label, o.progress, "img");
  int64_t offset = 0;
  const bool amp = use_mixed_precision(o, device);
  std::vector<torch::Tensor> parts;
  std::vector<int64_t> indices;
  loader.run_epoch(0, [&](data::Batch& b) {
    torch::Tensor f;
    if (b.images.size(0) > 0) {
      AutocastScope autocast(amp, device);
      f = model->features(b.images.to(device)).to(torch::kFloat32);
    }
    if (sharded) {
      if (f.defined()) parts.push_back(f);
      indices.insert(indices.end(), b.indices.begin(), b.indices.end());
      bar.add_items(b.images.size(0));
      bar.update(1);
      return;
    }
    if (!out.defined()) {
      auto sizes = f.sizes().vec();
      sizes[0] = static_cast<int64_t>(ds.size());
      out = torch::empty(sizes, f.options());
    }
    const int64_t n = f.size(0);
    out.narrow(0, offset, n).copy_(f);
    offset += n;
    bar.add_items(n);
    bar.update(1);
  });
  bar.finish();
  if (sharded) {
    const auto rows = dist->all_gather_rows(torch::cat(parts));
    const auto where = dist->all_gather_rows(torch::tensor(indices, torch::kInt64)).to(rows.device());
    auto sizes = rows.sizes().vec();
    sizes[0] = static_cast<int64_t>(ds.size());
    out = torch::empty(sizes, rows.options());
    out.index_copy_(0, where, rows);
  }
  return out;
}

inference::PredictOptions prediction_options(const TrainerOptions& o, bool progress) {
  inference::PredictOptions p;
  p.batch_size = std::max<int64_t>(o.batch_size, 64);
  p.workers = o.workers;
  p.progress = progress;
  return p;
}

// The patches, labels and preprocessing of a dataset, as text.
std::string dataset_identity(const data::PatchDataset& ds) {
  std::string data;
  for (const auto& r : ds.manifest().rows()) data += r.path + (r.label ? "1" : "0") + ";";
  return data + ds.preprocessing().to_json() + fmt::format("stain_shift={}", ds.stain_shift());
}

// Identifies what a run learns from: the options that matter and the exact training data.
std::string fingerprint(const TrainerOptions& o, const models::Classifier& model, const data::PatchDataset& train,
                        const data::PatchDataset* val) {
  std::string data = dataset_identity(train) + "|";
  if (val) data += dataset_identity(*val) + "|";
  return fmt::format("{}|{}|data:{:016x}", o.learning_json(), model->options().to_json(), fnv1a64(data));
}

io::TensorMap clone_state(const models::Classifier& model) {
  io::TensorMap out;
  for (const auto& kv : models::state_dict(*model)) out[kv.first] = kv.second.to(torch::kCPU).clone();
  return out;
}

std::string serialize_optimizer(const torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive archive;
  optimizer.save(archive);
  std::ostringstream out;
  archive.save_to(out);
  return out.str();
}

void deserialize_optimizer(torch::optim::Optimizer& optimizer, const std::string& bytes) {
  torch::serialize::InputArchive archive;
  std::istringstream in(bytes);
  archive.load_from(in);
  optimizer.load(archive);
}

io::TensorMap rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return {{"cpu", gen.get_state()}};
}

void set_rng_state(const io::TensorMap& state) {
  auto it = state.find("cpu");
  if (it == state.end()) return;
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(it->second);
}

class LambdaCallback : public Callback {
 public:
  explicit LambdaCallback(EpochCallback fn) : fn_(std::move(fn)) {}
  void on_epoch_end(TrainContext& context, const EpochRecord& record) override {
    if (!fn_(record)) context.stop_training = true;
  }

 private:
  EpochCallback fn_;
};

}  // namespace

void TrainerOptions::validate() const {
  HISTOCNN_CHECK(epochs >= 1, "epochs must be at least 1, got {}", epochs);
  parse_device(device);  // "tpu", or cuda without a GPU, is refused before any data is read
  HISTOCNN_CHECK(batch_size >= 1, "batch_size must be at least 1, got {}", batch_size);
  HISTOCNN_CHECK(learning_rate > 0 && std::isfinite(learning_rate), "learning_rate must be positive, got {}",
                 learning_rate);
  HISTOCNN_CHECK(weight_decay >= 0, "weight_decay must be >= 0, got {}", weight_decay);
  HISTOCNN_CHECK(backbone_lr_multiplier > 0 && backbone_lr_multiplier <= 100,
                 "backbone_lr_multiplier must be in (0, 100], got {}", backbone_lr_multiplier);
  HISTOCNN_CHECK(workers >= 0, "workers must be >= 0, got {}", workers);
  HISTOCNN_CHECK(warmup_epochs >= 0 && warmup_epochs < epochs, "warmup_epochs must be in [0, epochs), got {}",
                 warmup_epochs);
  HISTOCNN_CHECK(reduce_lr_patience >= 0 && early_stopping_patience >= 0, "patience values must be >= 0");
  HISTOCNN_CHECK(nproc >= 1 && nproc <= 256, "nproc must be in [1, 256], got {}", nproc);
  HISTOCNN_CHECK(dist_backend == "auto" || dist_backend == "gloo" || dist_backend == "nccl",
                 "dist_backend must be auto, gloo or nccl, got '{}'", dist_backend);
  HISTOCNN_CHECK(dist_timeout > 0, "dist_timeout must be positive (seconds), got {}", dist_timeout);
  HISTOCNN_CHECK(ema_decay == 0 || (ema_decay > 0 && ema_decay < 1),
                 "ema_decay must be 0 (off) or in (0, 1), e.g. 0.999, got {}", ema_decay);
  HISTOCNN_CHECK(mixup >= 0 && mixup <= 100, "mixup must be 0 (off) or a Beta(alpha, alpha) alpha in (0, 100], "
                 "e.g. 0.2, got {}", mixup);
  HISTOCNN_CHECK(per_patient >= 0, "per_patient must be >= 0 (0: every patch), got {}", per_patient);
  HISTOCNN_CHECK(per_patient == 0 || sampler == Sampler::shuffle,
                 "per_patient and sampler 'balanced' cannot be combined: choose one way of drawing an epoch");
  augment.validate();
}

std::string TrainerOptions::learning_json() const {
  nlohmann::json j = {{"batch_size", batch_size},
                      {"optimizer", choice_name(optimizer)},
                      {"learning_rate", learning_rate},
                      {"weight_decay", weight_decay},
                      {"momentum", momentum},
                      {"schedule", choice_name(schedule)},
                      {"warmup_epochs", warmup_epochs},
                      {"reduce_lr_patience", reduce_lr_patience},
                      {"reduce_lr_factor", reduce_lr_factor},
                      {"min_lr", min_lr},
                      {"early_stopping_patience", early_stopping_patience},
                      {"class_weight", choice_name(class_weight)},
                      {"sampler", choice_name(sampler)},
                      {"seed", seed},
                      {"augment", nlohmann::json::parse(augment.to_json())},
                      {"cache_features", cache_features},
                      {"restore_best", restore_best}};
  // Only when set, so that runs named before this option existed keep their names.
  if (backbone_lr_multiplier != 1.0) j["backbone_lr_multiplier"] = backbone_lr_multiplier;
  if (mixed_precision != MixedPrecision::automatic) j["mixed_precision"] = choice_name(mixed_precision);
  if (per_patient > 0) j["per_patient"] = per_patient;
  if (ema_decay > 0) j["ema_decay"] = ema_decay;
  if (mixup > 0) j["mixup"] = mixup;
  return j.dump();
}

std::string TrainerOptions::to_json() const {
  auto j = nlohmann::json::parse(learning_json());
  j["epochs"] = epochs;
  j["workers"] = workers;
  j["threads"] = threads;
  j["device"] = device;
  j["mixed_precision"] = choice_name(mixed_precision);
  j["checkpoint_dir"] = checkpoint_dir;
  j["nproc"] = nproc;
  j["dist_backend"] = dist_backend;
  j["dist_timeout"] = dist_timeout;
  return j.dump();
}

Trainer::Trainer(models::Classifier model, TrainerOptions options)
    : model_(std::move(model)), options_(std::move(options)), device_(parse_device(options_.device)) {
  options_.validate();
  HISTOCNN_CHECK(!model_.is_empty(), "Trainer needs a model");
}

Trainer::~Trainer() = default;

void Trainer::add_callback(std::shared_ptr<Callback> callback) {
  HISTOCNN_CHECK(callback != nullptr, "add_callback got a null callback");
  callbacks_.push_back(std::move(callback));
}

void Trainer::add_callback(EpochCallback callback) {
  callbacks_.push_back(std::make_shared<LambdaCallback>(std::move(callback)));
}

double Trainer::learning_rate() const {
  if (!optimizer_) return options_.learning_rate;
  return optimizer_->param_groups().front().options().get_lr();
}

std::vector<double> Trainer::group_learning_rates() const {
  std::vector<double> out;
  if (!optimizer_) return out;
  for (const auto& group : optimizer_->param_groups()) out.push_back(group.options().get_lr());
  return out;
}

void Trainer::set_learning_rate(double lr) {
  HISTOCNN_CHECK(lr > 0 && std::isfinite(lr), "learning rate must be positive, got {}", lr);
  HISTOCNN_CHECK(optimizer_ != nullptr, "the learning rate can only be changed while training");
  auto& groups = optimizer_->param_groups();
  // Group 0 is the head; group 1, when present, the trainable backbone layers.
  for (size_t g = 0; g < groups.size(); ++g) {
    groups[g].options().set_lr(g == 0 ? lr : lr * options_.backbone_lr_multiplier);
  }
}

Predictions Trainer::predict(const data::PatchDataset& dataset) {
  const bool cached = val_features_.defined() && model_->backbone_frozen();
  if (cached && fnv1a64(dataset_identity(dataset)) == val_features_of_) {
    Predictions out;
    out.p_positive = inference::predict_from_features(model_, val_features_);
    out.labels = dataset.labels();
    return out;
  }
  return inference::predict_dataset(model_, dataset, prediction_options(options_, options_.progress));
}

History Trainer::fit(const data::PatchDataset& train, const data::PatchDataset* val) {
  HISTOCNN_CHECK(train.size() > 0, "the training set is empty");
  HISTOCNN_CHECK(!val || val->size() > 0, "the validation set is empty; pass none instead");
  stop_requested_ = false;
  val_features_ = torch::Tensor();
  const auto fit_start = Clock::now();
  // A data-parallel job when the environment describes one (train/distributed.h); nullptr otherwise,
  // and then every `dist` branch below is skipped: one process trains as it always has.
  ProcessGroup* dist = default_process_group({options_.dist_backend, options_.dist_timeout, options_.device});
  if (dist) {
    HISTOCNN_CHECK(options_.batch_size >= dist->size(),
                   "batch_size {} is the global batch, split over the job's {} processes: it must be at least {}",
                   options_.batch_size, dist->size(), dist->size());
    if (!dist->is_main()) options_.progress = false;
    device_ = dist->device();
  }
  configure_threads(dist ? threads_per_process(options_.threads, dist->environment()) : options_.threads);
  torch::manual_seed(options_.seed);
  model_->to(device_);

  train.preload(options_.workers, options_.progress);
  if (val) val->preload(options_.workers, options_.progress);

  // Two parameter groups: the head at the learning rate, the trainable backbone layers at the
  // learning rate times backbone_lr_multiplier.
  std::set<const void*> in_backbone;
  for (const auto& p : model_->backbone()->parameters()) in_backbone.insert(p.unsafeGetTensorImpl());
  std::vector<torch::Tensor> head_params, backbone_params;
  for (auto& p : model_->parameters()) {
    if (!p.requires_grad()) continue;
    (in_backbone.count(p.unsafeGetTensorImpl()) ? backbone_params : head_params).push_back(p);
  }
  HISTOCNN_CHECK(!head_params.empty() || !backbone_params.empty(), "the model has no trainable parameters");
  optimizer_ = make_optimizer(head_params, options_);
  if (!backbone_params.empty()) {
    optimizer_->add_param_group(torch::optim::OptimizerParamGroup(backbone_params));
    set_learning_rate(options_.learning_rate);
  }

  // Built-in callbacks from the options, before the user's (so the user sees their effect).
  std::vector<std::shared_ptr<Callback>> callbacks;
  if (options_.reduce_lr_patience > 0) {
    callbacks.push_back(std::make_shared<ReduceLROnPlateau>("val_loss", options_.reduce_lr_factor,
                                                            options_.reduce_lr_patience, options_.min_lr));
  }
  if (options_.early_stopping_patience > 0) {
    callbacks.push_back(std::make_shared<EarlyStopping>("val_auc", options_.early_stopping_patience));
  }
  callbacks.insert(callbacks.end(), callbacks_.begin(), callbacks_.end());
  const bool needs_val = options_.reduce_lr_patience > 0 || options_.early_stopping_patience > 0;
  HISTOCNN_CHECK(val || !needs_val, "early stopping and ReduceLROnPlateau watch the validation set; pass one");

  // Resume from the last checkpoint when it was written by the same run.
  History history;
  io::TensorMap best_state, resumed_average;
  int64_t resumed_average_updates = 0;
  const std::string print = fingerprint(options_, model_, train, val);
  if (dist) dist->check_same(print, "training data and options");
  if (!options_.checkpoint_dir.empty()) {
    if (auto ck = dist ? load_checkpoint_of_rank0(*dist, options_.checkpoint_dir) : load_checkpoint(options_.checkpoint_dir)) {
      HISTOCNN_CHECK(ck->fingerprint == print,
                     "the checkpoint in '{}' was written by a run with other options or data; use another run "
                     "folder, or delete that checkpoint to start over",
                     options_.checkpoint_dir);
      models::load_state_dict(*model_, ck->model);
      best_state = std::move(ck->best_model);
      resumed_average = std::move(ck->average);
      resumed_average_updates = ck->average_updates;
      deserialize_optimizer(*optimizer_, ck->optimizer);
      set_rng_state(ck->rng);
      history = std::move(ck->history);
      history.resumed_from_epoch = history.epochs.empty() ? 0 : history.epochs.back().epoch;
      log_info("resuming from the checkpoint of epoch {} in {}", history.resumed_from_epoch, options_.checkpoint_dir);
    }
  }
  if (dist) dist->broadcast_module(*model_);  // every rank starts from rank 0's weights
  std::optional<WeightAverage> average;
  if (options_.ema_decay > 0) {
    average.emplace(model_, options_.ema_decay);
    if (!resumed_average.empty()) {
      average->load(resumed_average, resumed_average_updates);
    } else if (!history.epochs.empty()) {
      HISTOCNN_FAIL("the checkpoint in '{}' holds no weight average; delete it to start over",
                    options_.checkpoint_dir);
    }
    if (!dist || dist->is_main()) {
      log_info("validating and keeping a moving average of the weights (decay {:g})", options_.ema_decay);
    }
  }

  const bool use_cache = options_.cache_features && model_->backbone_frozen() && !options_.augment.enabled;
  const bool amp = use_mixed_precision(options_, device_);
  if (amp) log_info("mixed precision: bfloat16 autocast on {}", device_.str());
  torch::Tensor train_features, val_features;
  const bool already_done = history.stopped_early || static_cast<int>(history.epochs.size()) >= options_.epochs;
  if (use_cache && !already_done) {
    auto t0 = Clock::now();
    train_features = extract_features(model_, train, options_, device_, "features (train)", dist);
    if (val) {
      val_features = extract_features(model_, *val, options_, device_, "features (val)", dist);
      val_features_ = val_features;
      val_features_of_ = fnv1a64(dataset_identity(*val));
    }
    history.feature_cache_seconds = seconds_since(t0);
  }
  const auto label_list = train.labels();
  const auto train_labels = torch::tensor(std::vector<int64_t>(label_list.begin(), label_list.end())).to(device_);
  torch::Tensor class_weights;
  if (options_.class_weight == ClassWeight::balanced) {
    const int64_t pos = train_labels.sum().item<int64_t>(), n = train_labels.size(0);
    HISTOCNN_CHECK(pos > 0 && pos < n, "class_weight 'balanced' needs both classes in the training set");
    class_weights = torch::tensor({n / (2.0 * (n - pos)), n / (2.0 * pos)}, torch::kFloat32).to(device_);
  }
  auto train_loader_options = loader_options(options_, /*shuffle=*/true, options_.augment);
  std::unique_ptr<GradientReducer> reducer;
  if (dist) {
    // Each rank takes its part of every global batch; the gradients are summed over ranks.
    train_loader_options.shard_count = dist->size();
    train_loader_options.shard_index = dist->rank();
    std::vector<torch::Tensor> trainable = head_params;
    trainable.insert(trainable.end(), backbone_params.begin(), backbone_params.end());
    reducer = std::make_unique<GradientReducer>(*dist, trainable);
  }
  data::BatchLoader loader(train, train_loader_options);
  if (loader.epoch_size() < static_cast<int64_t>(train.size()) && (!dist || dist->is_main())) {
    log_info("each epoch draws at most {} patches of each patient: {} of the {} training patches",
             options_.per_patient, loader.epoch_size(), train.size());
  }

  auto validate = [&](EpochRecord& rec) {
    if (!val) return;
    if (!dist || dist->is_main()) {
      std::optional<WeightAverage::Applied> averaged;
      if (average) averaged.emplace(*average);
      std::vector<double> p;
      if (use_cache) {
        p = inference::predict_from_features(model_, val_features);
      } else {
        p = inference::predict_dataset(model_, *val, prediction_options(options_, false)).p_positive;
      }
      auto m = metrics::evaluate_binary(val->labels(), p, 0.5);
      rec.val_loss = m.log_loss;
      rec.val_accuracy = m.accuracy;
      rec.val_auc = m.roc_auc;
    }
    // Rank 0 validates; the others take its numbers, so that every rank's callbacks decide alike.
    if (dist) broadcast_validation(*dist, rec);
  };

  TrainContext context;
  context.trainer = this;
  context.epochs = options_.epochs;
  context.history = &history;
  context.batches_per_epoch = loader.num_batches();
  for (auto& cb : callbacks) cb->on_train_begin(context);

  const int first_epoch = static_cast<int>(history.epochs.size()) + 1;
  for (int epoch = first_epoch; epoch <= options_.epochs && !already_done; ++epoch) {
    auto t0 = Clock::now();
    if (options_.schedule == Schedule::cosine) {
      const int e = epoch - 1, w = options_.warmup_epochs;
      const double factor = e < w ? (e + 1.0) / w
                                  : 0.5 * (1.0 + std::cos(M_PI * (e - w) / std::max(1, options_.epochs - w)));
      set_learning_rate(std::max(options_.learning_rate * factor, 1e-12));
    }
    for (auto& cb : callbacks) cb->on_epoch_begin(context, epoch);
    // Dropout differs between ranks and is reproducible per epoch, so a resumed job replays it.
    if (dist) torch::manual_seed(data::sample_seed(options_.seed, epoch, -100 - dist->rank()));
    const double reduce_seconds_before = reducer ? reducer->seconds() : 0.0;
    model_->train(true);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0, batch_index = 0;
    bool interrupted = false;
    ProgressBar bar(loader.num_batches(), fmt::format("epoch {}/{}", epoch, options_.epochs), options_.progress, "img");
    // A diverged run stops before the weights take the step: the checkpoint of the last complete
    // epoch stays as it is.
    auto check_finite = [&](double batch_loss) {
      if (!std::isfinite(batch_loss)) {
        bar.finish();
        throw std::runtime_error(fmt::format(
            "the training loss is {} at epoch {}, batch {} of {}: training has diverged. {}Lower the learning "
            "rate (now {:g}; --learning-rate), or look for broken images or labels in the data",
            std::isnan(batch_loss) ? "NaN" : "infinite", epoch, batch_index + 1, loader.num_batches(),
            options_.checkpoint_dir.empty() || epoch == 1
                ? std::string()
                : fmt::format("The checkpoint of epoch {} in '{}' is kept. ", epoch - 1, options_.checkpoint_dir),
            learning_rate()));
      }
    };
    // Mixup's blend for this batch (train/mixup.h): the same draw on every rank and on a resumed run.
    Mixup mixed;
    auto mix = [&](const torch::Tensor& input, const torch::Tensor& y) {
      mixed = Mixup{input, torch::Tensor(), 1.0};
      if (options_.mixup > 0 && input.size(0) > 1) {
        mixed = mixup_batch(input, y, options_.mixup, data::sample_seed(options_.seed, epoch, kMixupStream - batch_index));
      }
      return mixed.input;
    };
    auto step = [&](const torch::Tensor& logits, const torch::Tensor& y) {
      double batch_loss = 0;
      int64_t n = 0, batch_correct = 0;
      if (reducer) {
        // This rank's part: summed loss and backward; then gradients and totals summed over ranks
        // and divided by the global batch's weight, the gradient of one process's mean loss.
        optimizer_->zero_grad();
        auto local = local_step(logits, y, class_weights, mixed.other, mixed.lambda);
        local.stop = stop_requested_;
        const auto total = reducer->reduce(local);
        batch_loss = total.weight_sum > 0 ? total.loss_sum / total.weight_sum : 0.0;
        n = static_cast<int64_t>(total.samples);
        batch_correct = static_cast<int64_t>(total.correct);
        if (total.stop) stop_requested_ = true;  // any rank asked: all stop after this batch
        check_finite(batch_loss);
        optimizer_->step();
      } else {
        const auto summed = weighted_cross_entropy(logits, y, class_weights, mixed.other, mixed.lambda);
        auto loss = summed.sum / summed.weight_sum;
        batch_loss = loss.item<double>();
        check_finite(batch_loss);
        optimizer_->zero_grad();
        loss.backward();
        optimizer_->step();
        n = y.size(0);
        batch_correct = logits.argmax(1).eq(y).sum().item<int64_t>();
      }
      if (average) average->update();
      loss_sum += batch_loss * n;
      correct += batch_correct;
      seen += n;
      bar.add_items(n);
      bar.update(1, fmt::format("loss {:.4f} acc {:.3f}", loss_sum / seen, static_cast<double>(correct) / seen));
      for (auto& cb : callbacks) cb->on_batch_end(context, batch_index, batch_loss);
      ++batch_index;
      if (stop_requested_) throw StopTraining{};
    };
    auto forward = [&](const torch::Tensor& input, bool from_features) {
      if (input.size(0) == 0) return torch::Tensor();  // a rank's empty part of a short last batch
      AutocastScope autocast(amp, device_);
      return (from_features ? model_->head_forward(input) : model_->forward(input)).to(torch::kFloat32);
    };
    try {
      if (use_cache) {
        const auto order = loader.epoch_order(epoch - 1);
        const auto index = torch::tensor(order).to(device_);
        for (int64_t b = 0; b < loader.num_batches(); ++b) {
          int64_t begin = b * options_.batch_size;
          int64_t n = std::min<int64_t>(options_.batch_size, index.size(0) - begin);
          if (dist) {
            const auto part = data::shard_range(n, dist->rank(), dist->size());
            begin += part.first;
            n = part.second - part.first;
          }
          auto idx = index.narrow(0, begin, n);
          const auto y = train_labels.index_select(0, idx);
          step(forward(mix(train_features.index_select(0, idx), y), true), y);
        }
      } else {
        loader.run_epoch(epoch - 1,
                         [&](data::Batch& b) {
                           const auto y = b.labels.to(device_);
                           step(forward(mix(b.images.to(device_), y), false), y);
                         });
      }
    } catch (const StopTraining&) {
      interrupted = true;
    }
    bar.finish();
    if (interrupted) {
      // The epoch is incomplete: keep the last checkpoint as it is, so a rerun redoes this epoch.
      history.stopped_early = true;
      history.interrupted = true;
      log_info("training stopped during epoch {}; the checkpoint of epoch {} is kept", epoch, epoch - 1);
      break;
    }
    const double train_seconds = seconds_since(t0);
    if (dist) dist->average_batchnorm_statistics(*model_);

    EpochRecord rec;
    rec.epoch = epoch;
    rec.train_loss = loss_sum / std::max<int64_t>(seen, 1);
    rec.train_accuracy = static_cast<double>(correct) / std::max<int64_t>(seen, 1);
    rec.learning_rate = learning_rate();
    validate(rec);
    rec.seconds = seconds_since(t0);
    rec.images_per_second = seen / std::max(rec.seconds, 1e-9);
    log_info("epoch {}/{}: loss {:.4f} acc {:.4f}{} ({:.1f}s, {:.0f} img/s)", epoch, options_.epochs, rec.train_loss,
             rec.train_accuracy,
             val ? fmt::format(" | val loss {:.4f} acc {:.4f} auc {:.4f}", rec.val_loss, rec.val_accuracy, rec.val_auc)
                 : std::string(),
             rec.seconds, rec.images_per_second);
    if (reducer) {
      const double reduce_seconds = reducer->seconds() - reduce_seconds_before;
      log_info("epoch {}/{}: gradient all-reduce {:.3f}s of {:.3f}s training ({:.1f}%), {} processes, {} buckets, "
               "{:.0f} img/s training", epoch, options_.epochs, reduce_seconds, train_seconds,
               100.0 * reduce_seconds / std::max(train_seconds, 1e-9), dist->size(), reducer->buckets(),
               seen / std::max(train_seconds, 1e-9));
    }

    if (val && std::isfinite(rec.val_auc) && (history.best_epoch == 0 || rec.val_auc > history.best_val_auc)) {
      history.best_epoch = epoch;
      history.best_val_auc = rec.val_auc;
      if (options_.restore_best) best_state = average ? average->state() : clone_state(model_);
    }
    context.stop_training = false;
    for (auto& cb : callbacks) cb->on_epoch_end(context, rec);
    if (dist) context.stop_training = dist->broadcast_bytes(context.stop_training ? "1" : "0") == "1";  // rank 0's call
    history.epochs.push_back(rec);
    if (context.stop_training) {
      history.stopped_early = true;
      log_info("a callback stopped training after epoch {}", epoch);
    }
    if (!options_.checkpoint_dir.empty() && (!dist || dist->is_main())) {
      TrainingCheckpoint ck;
      ck.history = history;
      ck.model = clone_state(model_);
      ck.best_model = best_state;
      if (average) {
        ck.average = average->state();
        ck.average_updates = average->updates();
      }
      ck.optimizer = serialize_optimizer(*optimizer_);
      ck.rng = rng_state();
      ck.fingerprint = print;
      save_checkpoint(options_.checkpoint_dir, ck);
    }
    if (history.stopped_early) break;
  }
  for (auto& cb : callbacks) cb->on_train_end(context);
  if (options_.restore_best && !best_state.empty() && history.best_epoch != static_cast<int>(history.epochs.size())) {
    models::load_state_dict(*model_, best_state);
    log_info("restored the {}weights of epoch {} (best validation AUC {:.4f})", average ? "averaged " : "",
             history.best_epoch, history.best_val_auc);
  } else if (average) {
    average->swap();  // the model ends with the average, the weights its validation measured
  }
  if (dist) dist->broadcast_module(*model_);  // rank 0's final weights (it alone kept a resumed best epoch)
  model_->eval();
  optimizer_.reset();
  history.fit_seconds = seconds_since(fit_start);
  return history;
}

}  // namespace histocnn::train
