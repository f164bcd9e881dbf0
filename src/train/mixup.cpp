#include "histocnn/train/mixup.h"

#include "histocnn/core/error.h"

#include <torch/nn/functional/loss.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

namespace histocnn::train {

Mixup mixup_batch(const torch::Tensor& input, const torch::Tensor& labels, double alpha, uint64_t seed) {
  HISTOCNN_CHECK(alpha > 0 && std::isfinite(alpha), "mixup alpha must be positive, got {}", alpha);
  HISTOCNN_CHECK(input.size(0) == labels.size(0), "mixup: {} inputs but {} labels", input.size(0), labels.size(0));
  std::mt19937_64 rng(seed);
  std::gamma_distribution<double> gamma(alpha, 1.0);
  const double a = gamma(rng), b = gamma(rng);
  // Both draws can underflow to 0 for a tiny alpha: Beta(a, a) then sits at 0 or 1 alike.
  const double lambda = a + b > 0 ? a / (a + b) : 1.0;
  std::vector<int64_t> order(static_cast<size_t>(input.size(0)));
  std::iota(order.begin(), order.end(), int64_t{0});
  std::shuffle(order.begin(), order.end(), rng);
  const auto perm = torch::tensor(order).to(input.device());
  Mixup m;
  m.lambda = std::max(lambda, 1.0 - lambda);
  m.input = input * m.lambda + input.index_select(0, perm) * (1.0 - m.lambda);
  m.other = labels.index_select(0, perm);
  return m;
}

WeightedLoss weighted_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels,
                                    const torch::Tensor& class_weights, const torch::Tensor& other, double lambda) {
  auto options = torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum);
  if (class_weights.defined()) options.weight(class_weights);
  auto part = [&](const torch::Tensor& y) {
    return WeightedLoss{torch::nn::functional::cross_entropy(logits, y, options),
                        class_weights.defined() ? class_weights.index_select(0, y).sum().item<double>()
                                                : static_cast<double>(y.size(0))};
  };
  auto own = part(labels);
  if (!other.defined() || lambda >= 1.0) return own;
  auto mixed = part(other);
  return {own.sum * lambda + mixed.sum * (1.0 - lambda), own.weight_sum * lambda + mixed.weight_sum * (1.0 - lambda)};
}

}  // namespace histocnn::train
