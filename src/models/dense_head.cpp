#include "histocnn/models/dense_head.h"

#include "histocnn/core/error.h"

#include <torch/torch.h>

namespace histocnn::models {

DenseHeadImpl::DenseHeadImpl(DenseHeadOptions options_) : options(std::move(options_)) { reset(); }

void DenseHeadImpl::reset() {
  HISTOCNN_CHECK(options.in_features() > 0, "dense head in_features must be positive, got {}", options.in_features());
  HISTOCNN_CHECK(options.hidden1() > 0 && options.hidden2() > 0, "dense head hidden sizes must be positive, got {} and {}",
                 options.hidden1(), options.hidden2());
  HISTOCNN_CHECK(options.dropout() >= 0 && options.dropout() < 1, "dropout must be in [0, 1), got {}", options.dropout());
  HISTOCNN_CHECK(options.num_classes() >= 2, "num_classes must be at least 2, got {}", options.num_classes());
  fc1 = register_module("fc1", torch::nn::Linear(options.in_features(), options.hidden1()));
  dropout1 = register_module("dropout1", torch::nn::Dropout(options.dropout()));
  fc2 = register_module("fc2", torch::nn::Linear(options.hidden1(), options.hidden2()));
  dropout2 = register_module("dropout2", torch::nn::Dropout(options.dropout()));
  if (options.batch_norm()) {
    bn = register_module("bn", torch::nn::BatchNorm1d(options.hidden2()));
  } else {
    bn = nullptr;
  }
  logits = register_module("logits", torch::nn::Linear(options.hidden2(), options.num_classes()));
}

torch::Tensor DenseHeadImpl::forward(torch::Tensor x) {
  x = dropout1(torch::relu(fc1(x)));
  x = dropout2(torch::relu(fc2(x)));
  if (bn) x = bn(x);
  return logits(x);
}

}  // namespace histocnn::models
