#pragma once
// The study's dense head: Dense(512) -> Dropout -> Dense(128) -> Dropout -> [BatchNorm] -> Dense(2).
//
//   histocnn::models::DenseHead head(histocnn::models::DenseHeadOptions(1280).dropout(0.5).batch_norm(true));
//   torch::Tensor logits = head(features);   // [N, 2]; softmax gives the class probabilities
//
// It returns logits (softmax is applied by the loss and by predict), which is numerically safer
// than Keras' softmax output followed by a log.
#include <torch/nn/cloneable.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace histocnn::models {

struct DenseHeadOptions {
  explicit DenseHeadOptions(int64_t in_features = 0) : in_features_(in_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, hidden1) = 512;
  TORCH_ARG(int64_t, hidden2) = 128;
  TORCH_ARG(double, dropout) = 0.2;
  TORCH_ARG(bool, batch_norm) = false;
  TORCH_ARG(int64_t, num_classes) = 2;
};

class DenseHeadImpl : public torch::nn::Cloneable<DenseHeadImpl> {
 public:
  explicit DenseHeadImpl(DenseHeadOptions options);
  void reset() override;
  torch::Tensor forward(torch::Tensor features);

  DenseHeadOptions options;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, logits{nullptr};
  torch::nn::Dropout dropout1{nullptr}, dropout2{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};
TORCH_MODULE(DenseHead);

}  // namespace histocnn::models
