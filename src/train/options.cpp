#include "histocnn/train/options.h"

#include "histocnn/core/error.h"

#include <nlohmann/json.hpp>

#include <functional>
#include <map>

namespace histocnn::train {

namespace {

using Setter = std::function<void(RunOptions&, const nlohmann::json&)>;

template <typename T>
T as(const nlohmann::json& v) {
  return v.get<T>();
}

const std::map<std::string, Setter>& setters() {
  static const std::map<std::string, Setter> table = {
      // model
      {"backbone", [](RunOptions& o, const nlohmann::json& v) { o.model.backbone(as<std::string>(v)); }},
      {"head", [](RunOptions& o, const nlohmann::json& v) { o.model.head(as<std::string>(v)); }},
      {"lstm_units", [](RunOptions& o, const nlohmann::json& v) { o.model.lstm_units(as<int64_t>(v)); }},
      {"tf_padding", [](RunOptions& o, const nlohmann::json& v) { o.model.tf_padding(as<bool>(v)); }},
      {"freeze_backbone", [](RunOptions& o, const nlohmann::json& v) { o.model.freeze_backbone(as<bool>(v)); }},
      {"unfreeze_last", [](RunOptions& o, const nlohmann::json& v) { o.model.unfreeze_last(as<int64_t>(v)); }},
      {"train_bn", [](RunOptions& o, const nlohmann::json& v) { o.model.train_bn(as<bool>(v)); }},
      {"hidden1", [](RunOptions& o, const nlohmann::json& v) { o.model.hidden1(as<int64_t>(v)); }},
      {"hidden2", [](RunOptions& o, const nlohmann::json& v) { o.model.hidden2(as<int64_t>(v)); }},
      {"dropout", [](RunOptions& o, const nlohmann::json& v) { o.model.dropout(as<double>(v)); }},
      {"batch_norm", [](RunOptions& o, const nlohmann::json& v) { o.model.batch_norm(as<bool>(v)); }},
      {"num_classes", [](RunOptions& o, const nlohmann::json& v) { o.model.num_classes(as<int64_t>(v)); }},
      // trainer
      {"epochs", [](RunOptions& o, const nlohmann::json& v) { o.trainer.epochs = as<int>(v); }},
      {"batch_size", [](RunOptions& o, const nlohmann::json& v) { o.trainer.batch_size = as<int64_t>(v); }},
      {"optimizer", [](RunOptions& o, const nlohmann::json& v) { o.trainer.optimizer = as<std::string>(v); }},
      {"learning_rate", [](RunOptions& o, const nlohmann::json& v) { o.trainer.learning_rate = as<double>(v); }},
      {"weight_decay", [](RunOptions& o, const nlohmann::json& v) { o.trainer.weight_decay = as<double>(v); }},
      {"momentum", [](RunOptions& o, const nlohmann::json& v) { o.trainer.momentum = as<double>(v); }},
      {"schedule", [](RunOptions& o, const nlohmann::json& v) { o.trainer.schedule = as<std::string>(v); }},
      {"warmup_epochs", [](RunOptions& o, const nlohmann::json& v) { o.trainer.warmup_epochs = as<int>(v); }},
      {"reduce_lr_patience", [](RunOptions& o, const nlohmann::json& v) { o.trainer.reduce_lr_patience = as<int>(v); }},
      {"reduce_lr_factor", [](RunOptions& o, const nlohmann::json& v) { o.trainer.reduce_lr_factor = as<double>(v); }},
      {"min_lr", [](RunOptions& o, const nlohmann::json& v) { o.trainer.min_lr = as<double>(v); }},
      {"early_stopping_patience",
       [](RunOptions& o, const nlohmann::json& v) { o.trainer.early_stopping_patience = as<int>(v); }},
      {"class_weight", [](RunOptions& o, const nlohmann::json& v) { o.trainer.class_weight = as<std::string>(v); }},
      {"sampler", [](RunOptions& o, const nlohmann::json& v) { o.trainer.sampler = as<std::string>(v); }},
      {"seed", [](RunOptions& o, const nlohmann::json& v) { o.trainer.seed = o.split.seed = as<uint64_t>(v); }},
      {"workers", [](RunOptions& o, const nlohmann::json& v) { o.trainer.workers = as<int>(v); }},
      {"threads", [](RunOptions& o, const nlohmann::json& v) { o.trainer.threads = as<int>(v); }},
      {"device", [](RunOptions& o, const nlohmann::json& v) { o.trainer.device = as<std::string>(v); }},
      {"augment",
       [](RunOptions& o, const nlohmann::json& v) { o.trainer.augment = data::AugmentOptions::preset(as<std::string>(v)); }},
      {"cache_features", [](RunOptions& o, const nlohmann::json& v) { o.trainer.cache_features = as<bool>(v); }},
      {"restore_best", [](RunOptions& o, const nlohmann::json& v) { o.trainer.restore_best = as<bool>(v); }},
      {"checkpoint_dir", [](RunOptions& o, const nlohmann::json& v) { o.trainer.checkpoint_dir = as<std::string>(v); }},
      {"progress", [](RunOptions& o, const nlohmann::json& v) { o.trainer.progress = as<bool>(v); }},
      // run
      {"data_dir", [](RunOptions& o, const nlohmann::json& v) { o.data_dir = as<std::string>(v); }},
      {"manifest", [](RunOptions& o, const nlohmann::json& v) { o.manifest = as<std::string>(v); }},
      {"output_dir", [](RunOptions& o, const nlohmann::json& v) { o.output_dir = as<std::string>(v); }},
      {"name", [](RunOptions& o, const nlohmann::json& v) { o.name = as<std::string>(v); }},
      {"weights", [](RunOptions& o, const nlohmann::json& v) { o.weights = v.is_null() ? "" : as<std::string>(v); }},
      {"image_size", [](RunOptions& o, const nlohmann::json& v) { o.image_size = as<int>(v); }},
      {"normalisation", [](RunOptions& o, const nlohmann::json& v) { o.normalisation = as<std::string>(v); }},
      {"balance_per_class", [](RunOptions& o, const nlohmann::json& v) { o.balance_per_class = as<int64_t>(v); }},
      {"threshold", [](RunOptions& o, const nlohmann::json& v) { o.threshold = as<double>(v); }},
      {"threshold_method", [](RunOptions& o, const nlohmann::json& v) { o.threshold_method = as<std::string>(v); }},
      {"target_sensitivity", [](RunOptions& o, const nlohmann::json& v) { o.target_sensitivity = as<double>(v); }},
      {"tensorboard", [](RunOptions& o, const nlohmann::json& v) { o.tensorboard = as<bool>(v); }},
      // split
      {"train_fraction", [](RunOptions& o, const nlohmann::json& v) { o.split.train = as<double>(v); }},
      {"val_fraction", [](RunOptions& o, const nlohmann::json& v) { o.split.val = as<double>(v); }},
      {"test_fraction", [](RunOptions& o, const nlohmann::json& v) { o.split.test = as<double>(v); }},
      {"split_by_patch", [](RunOptions& o, const nlohmann::json& v) { o.split.by_patch = as<bool>(v); }},
  };
  return table;
}

}  // namespace

void set_run_option(RunOptions& options, const std::string& name, const std::string& json_value) {
  const auto& table = setters();
  auto it = table.find(name);
  if (it == table.end()) {
    std::string known;
    for (const auto& n : run_option_names()) known += (known.empty() ? "" : ", ") + n;
    HISTOCNN_FAIL("unknown option '{}'; known options: {}", name, known);
  }
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(json_value);
  } catch (const std::exception&) {
    HISTOCNN_FAIL("option '{}': '{}' is not a JSON value", name, json_value);
  }
  try {
    it->second(options, value);
  } catch (const nlohmann::json::exception&) {
    HISTOCNN_FAIL("option '{}' got {} of the wrong type", name, value.dump());
  }
}

std::vector<std::string> run_option_names() {
  std::vector<std::string> names;
  for (const auto& kv : setters()) names.push_back(kv.first);
  return names;
}

}  // namespace histocnn::train
