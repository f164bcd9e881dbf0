#pragma once
// The study's CNN+LSTM head: the backbone's feature map read as a sequence of h*w positions of
// C channels by an LSTM, whose last hidden state feeds the dense head.
//
//   histocnn::models::LSTMHead head(histocnn::models::LSTMHeadOptions(1280).units(512));
//   torch::Tensor logits = head(sequence);     // sequence: [N, h*w, 1280] -> [N, 2]
#include "histocnn/models/dense_head.h"

#include <torch/nn/modules/rnn.h>

namespace histocnn::models {

struct LSTMHeadOptions {
  explicit LSTMHeadOptions(int64_t in_features = 0) : in_features_(in_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, units) = 512;
  TORCH_ARG(DenseHeadOptions, dense);
};

class LSTMHeadImpl : public torch::nn::Cloneable<LSTMHeadImpl> {
 public:
  explicit LSTMHeadImpl(LSTMHeadOptions options);
  void reset() override;
  /// sequence: [N, T, C] -> logits [N, num_classes]
  torch::Tensor forward(torch::Tensor sequence);

  LSTMHeadOptions options;
  torch::nn::LSTM lstm{nullptr};
  DenseHead dense{nullptr};
};
TORCH_MODULE(LSTMHead);

}  // namespace histocnn::models
