#include "histocnn/models/classifier.h"

#include "histocnn/core/error.h"
#include "histocnn/core/version.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/bundle.h"
#include "histocnn/models/torchscript.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace histocnn::models {

std::string ClassifierOptions::to_json() const {
  nlohmann::json j = {{"backbone", backbone()},   {"tf_padding", tf_padding()}, {"freeze_backbone", freeze_backbone()},
                      {"train_bn", train_bn()},   {"hidden1", hidden1()},       {"hidden2", hidden2()},
                      {"dropout", dropout()},     {"batch_norm", batch_norm()}, {"num_classes", num_classes()},
                      {"head", head()},           {"lstm_units", lstm_units()},
                      {"unfreeze_last", unfreeze_last()}};
  return j.dump();
}

ClassifierOptions ClassifierOptions::from_json(const std::string& text) {
  ClassifierOptions o;
  try {
    auto j = nlohmann::json::parse(text);
    o.backbone(j.at("backbone").get<std::string>());
    o.tf_padding(j.value("tf_padding", o.tf_padding()));
    o.freeze_backbone(j.value("freeze_backbone", o.freeze_backbone()));
    o.unfreeze_last(j.value("unfreeze_last", o.unfreeze_last()));
    o.train_bn(j.value("train_bn", o.train_bn()));
    o.hidden1(j.value("hidden1", o.hidden1()));
    o.hidden2(j.value("hidden2", o.hidden2()));
    o.dropout(j.value("dropout", o.dropout()));
    o.batch_norm(j.value("batch_norm", o.batch_norm()));
    o.num_classes(j.value("num_classes", o.num_classes()));
    o.head(j.value("head", std::string("dense")));
    o.lstm_units(j.value("lstm_units", o.lstm_units()));
  } catch (const nlohmann::json::exception& e) {
    HISTOCNN_FAIL("classifier options are not valid: {}", e.what());
  }
  return o;
}

ClassifierImpl::ClassifierImpl(ClassifierOptions options) : options_(std::move(options)) {
  BackboneOptions bo;
  bo.tf_padding = options_.tf_padding();
  backbone_ = register_module("backbone", make_backbone(options_.backbone(), bo));
  const auto dense = DenseHeadOptions(backbone_->feature_channels())
                         .hidden1(options_.hidden1())
                         .hidden2(options_.hidden2())
                         .dropout(options_.dropout())
                         .batch_norm(options_.batch_norm())
                         .num_classes(options_.num_classes());
  if (options_.head() == "dense") {
    dense_head_ = register_module("head", DenseHead(dense));
    head_ = dense_head_.ptr();
  } else if (options_.head() == "lstm") {
    lstm_head_ = register_module(
        "head", LSTMHead(LSTMHeadOptions(backbone_->feature_channels()).units(options_.lstm_units()).dense(dense)));
    head_ = lstm_head_.ptr();
  } else {
    HISTOCNN_FAIL("unknown head '{}'; use 'dense' or 'lstm'", options_.head());
  }
  set_backbone_frozen(options_.freeze_backbone());
}

std::vector<std::shared_ptr<torch::nn::Module>> ClassifierImpl::backbone_blocks() const {
  for (const auto& child : backbone_->named_children()) {
    if (child.key() == "features") return child.value()->children();
  }
  return backbone_->children();
}

void ClassifierImpl::set_backbone_frozen(bool frozen) {
  options_.freeze_backbone(frozen);
  for (auto& p : backbone_->parameters()) p.set_requires_grad(!frozen);
  if (frozen && options_.unfreeze_last() > 0) {
    auto blocks = backbone_blocks();
    HISTOCNN_CHECK(options_.unfreeze_last() <= static_cast<int64_t>(blocks.size()),
                   "unfreeze_last is {} but backbone '{}' has {} blocks", options_.unfreeze_last(),
                   options_.backbone(), blocks.size());
    for (size_t i = blocks.size() - options_.unfreeze_last(); i < blocks.size(); ++i) {
      for (auto& p : blocks[i]->parameters()) p.set_requires_grad(true);
    }
  }
  train(is_training());
}

void ClassifierImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (!on) return;
  if (backbone_frozen()) {
    backbone_->eval();
    return;
  }
  // Frozen parts run in inference mode; BatchNorm layers too unless train_bn asks otherwise.
  for (auto& m : backbone_->modules(/*include_self=*/false)) {
    const bool is_bn = m->as<torch::nn::BatchNorm2d>() || m->as<torch::nn::BatchNorm1d>();
    bool trainable = false;
    for (const auto& p : m->parameters(/*recurse=*/false)) trainable = trainable || p.requires_grad();
    if ((is_bn && !options_.train_bn()) || (!trainable && !m->parameters(false).empty())) m->eval();
  }
}

torch::Tensor ClassifierImpl::backbone_features(torch::Tensor x) {
  if (dense_head_) return backbone_->forward(x);
  // [N, C, h, w] -> [N, h*w, C]: positions in row-major order, as Keras' Reshape reads them.
  auto maps = backbone_->forward_features(x);
  return maps.flatten(2).transpose(1, 2).contiguous();
}

torch::Tensor ClassifierImpl::features(torch::Tensor x) {
  if (backbone_frozen()) {
    torch::NoGradGuard no_grad;
    return backbone_features(x);
  }
  return backbone_features(x);
}

torch::Tensor ClassifierImpl::head_forward(torch::Tensor f) {
  return dense_head_ ? dense_head_->forward(f) : lstm_head_->forward(f);
}

torch::Tensor ClassifierImpl::forward(torch::Tensor x) { return head_forward(features(x)); }

torch::Tensor ClassifierImpl::predict_proba(torch::Tensor x) {
  const bool was_training = is_training();
  eval();
  torch::NoGradGuard no_grad;
  auto p = torch::softmax(forward(x), 1);
  if (was_training) train(true);
  return p;
}

LoadReport ClassifierImpl::load_backbone_weights(const std::filesystem::path& file, bool strict) {
  LoadOptions lo;
  lo.strict = strict;
  lo.ignore_prefixes = backbone_->top_prefixes();
  lo.source = file.string();
  return load_weights(*backbone_, file, lo);
}

void save_classifier(const Classifier& model, const std::filesystem::path& dir, const std::string& extra_json) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(extra_json);
  } catch (const std::exception& e) {
    HISTOCNN_FAIL("extra model.json fields are not valid JSON: {}", e.what());
  }
  HISTOCNN_CHECK(j.is_object(), "extra model.json fields must be a JSON object");
  j["format"] = "histocnn.model";
  j["format_version"] = io::kBundleFormatVersion;
  j["histocnn_version"] = version();
  j["backbone"] = model->options().backbone();
  j["classifier"] = nlohmann::json::parse(model->options().to_json());
  if (is_torchscript_backbone(model->options().backbone())) {
    // The module file travels inside the bundle (written before model.json, which marks the bundle
    // complete), named relative to it, so the bundle can be moved or copied to a server.
    std::filesystem::create_directories(dir);
    io::write_file_atomic(dir / kBundleTorchScriptFile, io::read_file(torchscript_file(model->options().backbone())));
    j["backbone"] = j["classifier"]["backbone"] = std::string(kTorchScriptPrefix) + kBundleTorchScriptFile;
  }
  if (!j.contains("class_names")) j["class_names"] = {"IDC-negative", "IDC-positive"};
  io::TensorMap cpu;
  for (const auto& kv : state_dict(*model)) cpu[kv.first] = kv.second.to(torch::kCPU).contiguous();
  io::write_bundle(dir, cpu, j.dump(2));
}

LoadedClassifier load_classifier(const std::filesystem::path& dir, const torch::Device& device) {
  auto files = io::read_bundle(dir);
  const auto json_path = (files.directory / "model.json").string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(files.json);
  } catch (const std::exception& e) {
    HISTOCNN_FAIL("'{}' is not valid JSON ({}); the bundle is damaged, re-export the model", json_path, e.what());
  }
  HISTOCNN_CHECK(j.value("format", "") == "histocnn.model", "'{}' is not a histocnn model.json (no \"format\": "
                 "\"histocnn.model\")", json_path);
  const int version = j.value("format_version", 0);
  HISTOCNN_CHECK(version >= 1 && version <= io::kBundleFormatVersion,
                 "'{}' has format_version {}, this histocnn reads 1..{}; upgrade histocnn", json_path, version,
                 io::kBundleFormatVersion);
  HISTOCNN_CHECK(j.contains("classifier"), "'{}' lacks the \"classifier\" options", json_path);
  LoadedClassifier out;
  auto options = ClassifierOptions::from_json(j["classifier"].dump());
  if (is_torchscript_backbone(options.backbone()) && torchscript_file(options.backbone()).is_relative()) {
    options.backbone(kTorchScriptPrefix + (files.directory / torchscript_file(options.backbone())).string());
  }
  out.model = Classifier(options);
  LoadOptions lo;
  lo.source = (files.directory / "model.safetensors").string();
  load_state_dict(*out.model, files.weights, lo);
  out.model->to(device);
  out.model->eval();
  out.model_json = files.json;
  out.directory = files.directory;
  return out;
}

}  // namespace histocnn::models
