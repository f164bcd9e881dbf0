#include "histocnn/train/options.h"

#include "histocnn/core/error.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>

namespace histocnn::train {

namespace {

using json = nlohmann::json;

struct Entry {
  std::function<void(RunOptions&, const json&)> set;
  std::function<json(const RunOptions&)> get;
};

// An option that is one field: `access` is a generic lambda returning a reference to it, so the
// same lambda reads a const RunOptions and writes a mutable one.
template <typename T, typename Access>
Entry field(Access access) {
  return {[access](RunOptions& o, const json& v) { access(o) = v.get<T>(); },
          [access](const RunOptions& o) { return json(static_cast<T>(access(o))); }};
}

template <typename Access>
Entry path_field(Access access) {
  return {[access](RunOptions& o, const json& v) { access(o) = v.get<std::string>(); },
          [access](const RunOptions& o) { return json(access(o).string()); }};
}

#define HISTOCNN_FIELD(type, expr) field<type>([](auto& o) -> auto& { return expr; })

const std::map<std::string, Entry>& table() {
  static const std::map<std::string, Entry> entries = {
      // model
      {"backbone", HISTOCNN_FIELD(std::string, o.model.backbone())},
      {"head", HISTOCNN_FIELD(std::string, o.model.head())},
      {"lstm_units", HISTOCNN_FIELD(int64_t, o.model.lstm_units())},
      {"tf_padding", HISTOCNN_FIELD(bool, o.model.tf_padding())},
      {"freeze_backbone", HISTOCNN_FIELD(bool, o.model.freeze_backbone())},
      {"unfreeze_last", HISTOCNN_FIELD(int64_t, o.model.unfreeze_last())},
      {"train_bn", HISTOCNN_FIELD(bool, o.model.train_bn())},
      {"hidden1", HISTOCNN_FIELD(int64_t, o.model.hidden1())},
      {"hidden2", HISTOCNN_FIELD(int64_t, o.model.hidden2())},
      {"dropout", HISTOCNN_FIELD(double, o.model.dropout())},
      {"batch_norm", HISTOCNN_FIELD(bool, o.model.batch_norm())},
      {"num_classes", HISTOCNN_FIELD(int64_t, o.model.num_classes())},
      // trainer
      {"epochs", HISTOCNN_FIELD(int, o.trainer.epochs)},
      {"batch_size", HISTOCNN_FIELD(int64_t, o.trainer.batch_size)},
      {"optimizer", HISTOCNN_FIELD(std::string, o.trainer.optimizer)},
      {"learning_rate", HISTOCNN_FIELD(double, o.trainer.learning_rate)},
      {"backbone_lr_multiplier", HISTOCNN_FIELD(double, o.trainer.backbone_lr_multiplier)},
      {"weight_decay", HISTOCNN_FIELD(double, o.trainer.weight_decay)},
      {"momentum", HISTOCNN_FIELD(double, o.trainer.momentum)},
      {"schedule", HISTOCNN_FIELD(std::string, o.trainer.schedule)},
      {"warmup_epochs", HISTOCNN_FIELD(int, o.trainer.warmup_epochs)},
      {"reduce_lr_patience", HISTOCNN_FIELD(int, o.trainer.reduce_lr_patience)},
      {"reduce_lr_factor", HISTOCNN_FIELD(double, o.trainer.reduce_lr_factor)},
      {"min_lr", HISTOCNN_FIELD(double, o.trainer.min_lr)},
      {"early_stopping_patience", HISTOCNN_FIELD(int, o.trainer.early_stopping_patience)},
      {"class_weight", HISTOCNN_FIELD(std::string, o.trainer.class_weight)},
      {"sampler", HISTOCNN_FIELD(std::string, o.trainer.sampler)},
      // One seed for the split, the initialisation and the shuffling.
      {"seed", {[](RunOptions& o, const json& v) { o.trainer.seed = o.split.seed = v.get<uint64_t>(); },
                [](const RunOptions& o) { return json(o.trainer.seed); }}},
      {"workers", HISTOCNN_FIELD(int, o.trainer.workers)},
      {"threads", HISTOCNN_FIELD(int, o.trainer.threads)},
      {"device", HISTOCNN_FIELD(std::string, o.trainer.device)},
      {"mixed_precision", HISTOCNN_FIELD(std::string, o.trainer.mixed_precision)},
      {"augment", {[](RunOptions& o, const json& v) { o.trainer.augment = data::AugmentOptions::preset(v.get<std::string>()); },
                   [](const RunOptions& o) { return json(o.trainer.augment.preset_name()); }}},
      {"cache_features", HISTOCNN_FIELD(bool, o.trainer.cache_features)},
      {"restore_best", HISTOCNN_FIELD(bool, o.trainer.restore_best)},
      {"checkpoint_dir", HISTOCNN_FIELD(std::string, o.trainer.checkpoint_dir)},
      {"progress", HISTOCNN_FIELD(bool, o.trainer.progress)},
      // run
      {"data_dir", path_field([](auto& o) -> auto& { return o.data_dir; })},
      {"manifest", path_field([](auto& o) -> auto& { return o.manifest; })},
      {"output_dir", path_field([](auto& o) -> auto& { return o.output_dir; })},
      {"name", HISTOCNN_FIELD(std::string, o.name)},
      {"weights", {[](RunOptions& o, const json& v) { o.weights = v.is_null() ? "" : v.get<std::string>(); },
                   [](const RunOptions& o) { return json(o.weights); }}},
      {"image_size", HISTOCNN_FIELD(int, o.image_size)},
      {"normalisation", HISTOCNN_FIELD(std::string, o.normalisation)},
      {"balance_per_class", HISTOCNN_FIELD(int64_t, o.balance_per_class)},
      {"threshold", HISTOCNN_FIELD(double, o.threshold)},
      {"threshold_method", HISTOCNN_FIELD(std::string, o.threshold_method)},
      {"target_sensitivity", HISTOCNN_FIELD(double, o.target_sensitivity)},
      {"stain_shift", HISTOCNN_FIELD(double, o.stain_shift)},
      {"tensorboard", HISTOCNN_FIELD(bool, o.tensorboard)},
      // split
      {"train_fraction", HISTOCNN_FIELD(double, o.split.train)},
      {"val_fraction", HISTOCNN_FIELD(double, o.split.val)},
      {"test_fraction", HISTOCNN_FIELD(double, o.split.test)},
      {"split_by_patch", HISTOCNN_FIELD(bool, o.split.by_patch)},
  };
  return entries;
}

#undef HISTOCNN_FIELD

const Entry& entry(const std::string& name) {
  const auto& entries = table();
  auto it = entries.find(name);
  if (it == entries.end()) {
    std::string known;
    for (const auto& n : run_option_names()) known += (known.empty() ? "" : ", ") + n;
    HISTOCNN_FAIL("unknown option '{}'; known options: {}", name, known);
  }
  return it->second;
}

}  // namespace

void set_run_option(RunOptions& options, const std::string& name, const std::string& json_value) {
  const Entry& e = entry(name);
  json value;
  try {
    value = json::parse(json_value);
  } catch (const std::exception&) {
    HISTOCNN_FAIL("option '{}': '{}' is not a JSON value", name, json_value);
  }
  try {
    e.set(options, value);
  } catch (const json::exception&) {
    HISTOCNN_FAIL("option '{}' got {} of the wrong type", name, value.dump());
  }
}

std::string get_run_option(const RunOptions& options, const std::string& name) {
  return entry(name).get(options).dump();
}

std::string run_option_values(const RunOptions& options) {
  json j = json::object();
  for (const auto& [name, e] : table()) j[name] = e.get(options);
  return j.dump();
}

std::vector<std::string> run_option_names() {
  std::vector<std::string> names;
  for (const auto& kv : table()) names.push_back(kv.first);
  return names;
}

}  // namespace histocnn::train
