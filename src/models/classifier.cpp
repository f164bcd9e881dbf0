#include "histocnn/models/classifier.h"

#include "histocnn/core/error.h"
#include "histocnn/core/version.h"
#include "histocnn/io/bundle.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace histocnn::models {

std::string ClassifierOptions::to_json() const {
  nlohmann::json j = {{"backbone", backbone()},   {"tf_padding", tf_padding()}, {"freeze_backbone", freeze_backbone()},
                      {"train_bn", train_bn()},   {"hidden1", hidden1()},       {"hidden2", hidden2()},
                      {"dropout", dropout()},     {"batch_norm", batch_norm()}, {"num_classes", num_classes()},
                      {"head", "dense"}};
  return j.dump();
}

ClassifierOptions ClassifierOptions::from_json(const std::string& text) {
  ClassifierOptions o;
  try {
    auto j = nlohmann::json::parse(text);
    o.backbone(j.at("backbone").get<std::string>());
    o.tf_padding(j.value("tf_padding", o.tf_padding()));
    o.freeze_backbone(j.value("freeze_backbone", o.freeze_backbone()));
    o.train_bn(j.value("train_bn", o.train_bn()));
    o.hidden1(j.value("hidden1", o.hidden1()));
    o.hidden2(j.value("hidden2", o.hidden2()));
    o.dropout(j.value("dropout", o.dropout()));
    o.batch_norm(j.value("batch_norm", o.batch_norm()));
    o.num_classes(j.value("num_classes", o.num_classes()));
    const auto head = j.value("head", std::string("dense"));
    HISTOCNN_CHECK(head == "dense", "classifier head '{}' is not supported by this version; known heads: dense", head);
  } catch (const nlohmann::json::exception& e) {
    HISTOCNN_FAIL("classifier options are not valid: {}", e.what());
  }
  return o;
}

ClassifierImpl::ClassifierImpl(ClassifierOptions options) : options_(std::move(options)) {
  BackboneOptions bo;
  bo.tf_padding = options_.tf_padding();
  backbone_ = register_module("backbone", make_backbone(options_.backbone(), bo));
  head_ = register_module("head", DenseHead(DenseHeadOptions(backbone_->feature_channels())
                                                .hidden1(options_.hidden1())
                                                .hidden2(options_.hidden2())
                                                .dropout(options_.dropout())
                                                .batch_norm(options_.batch_norm())
                                                .num_classes(options_.num_classes())));
  set_backbone_frozen(options_.freeze_backbone());
}

void ClassifierImpl::set_backbone_frozen(bool frozen) {
  options_.freeze_backbone(frozen);
  for (auto& p : backbone_->parameters()) p.set_requires_grad(!frozen);
  train(is_training());
}

void ClassifierImpl::train(bool on) {
  torch::nn::Module::train(on);
  if (!on) return;
  if (options_.freeze_backbone()) {
    backbone_->eval();
  } else if (!options_.train_bn()) {
    for (auto& m : backbone_->modules(/*include_self=*/false)) {
      if (m->as<torch::nn::BatchNorm2d>() || m->as<torch::nn::BatchNorm1d>()) m->eval();
    }
  }
}

torch::Tensor ClassifierImpl::features(torch::Tensor x) {
  if (options_.freeze_backbone()) {
    torch::NoGradGuard no_grad;
    return backbone_->forward(x);
  }
  return backbone_->forward(x);
}

torch::Tensor ClassifierImpl::head_forward(torch::Tensor f) { return head_->forward(f); }

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
  out.model = Classifier(ClassifierOptions::from_json(j["classifier"].dump()));
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
