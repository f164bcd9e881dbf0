#pragma once
// The CNN+LSTM heads. "lstm": the backbone's feature map read as a sequence of h*w positions of
// C channels by an LSTM, whose last hidden state feeds the dense head. "lstm_pooled", the study's
// drawing: globally pooled features -> a dense embedding -> an LSTM over that one step -> the
// dense head (512 -> 128 -> 2).
//
//   histocnn::models::LSTMHead head(histocnn::models::LSTMHeadOptions(1280).units(512));
//   torch::Tensor logits = head(sequence);     // sequence: [N, h*w, 1280] -> [N, 2]
//   histocnn::models::LSTMHead pooled(histocnn::models::LSTMHeadOptions(1280).pooled(true));
//   torch::Tensor logits2 = pooled(features);  // features: [N, 1280] -> [N, 2]
#include "histocnn/models/dense_head.h"

#include <torch/nn/modules/rnn.h>

namespace histocnn::models {

struct LSTMHeadOptions {
  explicit LSTMHeadOptions(int64_t in_features = 0) : in_features_(in_features) {}
  TORCH_ARG(int64_t, in_features);
  TORCH_ARG(int64_t, units) = 512;
  /// Reads pooled features [N, C] through an embedding (C -> units, ReLU) as a one-step sequence.
  TORCH_ARG(bool, pooled) = false;
  TORCH_ARG(DenseHeadOptions, dense);
};

class LSTMHeadImpl : public torch::nn::Cloneable<LSTMHeadImpl> {
 public:
  explicit LSTMHeadImpl(LSTMHeadOptions options);
  void reset() override;
  /// sequence: [N, T, C] (pooled: features [N, C]) -> logits [N, num_classes]
  torch::Tensor forward(torch::Tensor sequence);

  LSTMHeadOptions options;
  torch::nn::Linear embedding{nullptr};  ///< only when pooled
  torch::nn::LSTM lstm{nullptr};
  DenseHead dense{nullptr};
};
TORCH_MODULE(LSTMHead);

}  // namespace histocnn::models
