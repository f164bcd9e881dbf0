#include "histocnn/models/lstm_head.h"

#include "histocnn/core/error.h"

#include <torch/torch.h>

namespace histocnn::models {

LSTMHeadImpl::LSTMHeadImpl(LSTMHeadOptions options_) : options(std::move(options_)) { reset(); }

void LSTMHeadImpl::reset() {
  HISTOCNN_CHECK(options.in_features() > 0, "lstm head in_features must be positive, got {}", options.in_features());
  HISTOCNN_CHECK(options.units() > 0, "lstm_units must be positive, got {}", options.units());
  const int64_t step_features = options.pooled() ? options.units() : options.in_features();
  if (options.pooled()) {
    embedding = register_module("embedding", torch::nn::Linear(options.in_features(), options.units()));
  }
  lstm = register_module("lstm",
                         torch::nn::LSTM(torch::nn::LSTMOptions(step_features, options.units()).batch_first(true)));
  auto dense_options = options.dense();
  dense_options.in_features(options.units());
  dense = register_module("dense", DenseHead(dense_options));
}

torch::Tensor LSTMHeadImpl::forward(torch::Tensor sequence) {
  if (options.pooled()) {
    HISTOCNN_CHECK(sequence.dim() == 2, "the lstm_pooled head expects pooled features [N, C], got {} dimensions",
                   sequence.dim());
    sequence = torch::relu(embedding->forward(sequence)).unsqueeze(1);  // [N, 1, units]
  }
  HISTOCNN_CHECK(sequence.dim() == 3, "the lstm head expects [N, T, C] sequences, got {} dimensions", sequence.dim());
  auto out = std::get<0>(lstm->forward(sequence));  // [N, T, units]
  return dense->forward(out.select(1, out.size(1) - 1));
}

}  // namespace histocnn::models
