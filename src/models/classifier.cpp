#include "histocnn/models/classifier.h"

#include "histocnn/core/error.h"
#include "histocnn/models/summary.h"
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
  } else if (options_.head() == "lstm" || options_.head() == "lstm_pooled") {
    lstm_head_ = register_module("head", LSTMHead(LSTMHeadOptions(backbone_->feature_channels())
                                                      .units(options_.lstm_units())
                                                      .pooled(options_.head() == "lstm_pooled")
                                                      .dense(dense)));
    head_ = lstm_head_.ptr();
  } else {
    HISTOCNN_FAIL("unknown head '{}'; use 'dense', 'lstm' or 'lstm_pooled'", options_.head());
  }
  set_backbone_frozen(options_.freeze_backbone());
}

void ClassifierImpl::set_backbone_frozen(bool frozen) {
  options_.freeze_backbone(frozen);
  for (auto& p : backbone_->parameters()) p.set_requires_grad(!frozen);
  if (frozen && options_.unfreeze_last() > 0) {
    // Keras' layers (models/summary.h), found once: the list does not change with the weights.
    if (backbone_layers_.empty()) backbone_layers_ = backbone_layers(*backbone_, kLayerTraceSize);
    const auto count = static_cast<int64_t>(backbone_layers_.size());
    HISTOCNN_CHECK(options_.unfreeze_last() <= count,
                   "unfreeze_last is {} but backbone '{}' has {} layers as Keras counts them (see `histocnn models "
                   "summary --backbone {}`)",
                   options_.unfreeze_last(), options_.backbone(), count, options_.backbone());
    auto params = backbone_->named_parameters();
    for (int64_t i = count - options_.unfreeze_last(); i < count; ++i) {
      for (const auto& name : backbone_layers_[i].weights) {
        if (auto* p = params.find(name)) p->set_requires_grad(true);
      }
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

torch::Tensor ClassifierImpl::feature_map_to_head_input(const torch::Tensor& maps) const {
  if (dense_head_ || lstm_head_->options.pooled()) return maps.mean({2, 3});  // as Backbone::forward pools
  // [N, C, h, w] -> [N, h*w, C]: positions in row-major order, as Keras' Reshape reads them.
  return maps.flatten(2).transpose(1, 2).contiguous();
}

torch::Tensor ClassifierImpl::backbone_features(torch::Tensor x) {
  if (dense_head_ || lstm_head_->options.pooled()) return backbone_->forward(x);
  return feature_map_to_head_input(backbone_->forward_features(x));
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

LoadReport ClassifierImpl::load_backbone_weights(const std::filesystem::path& file, bool strict) {
  LoadOptions lo;
  lo.strict = strict;
  lo.ignore_prefixes = backbone_->top_prefixes();
  lo.source = file.string();
  return load_weights(*backbone_, file, lo);
}

}  // namespace histocnn::models
