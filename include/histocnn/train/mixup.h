#pragma once
// Mixup (Zhang, Cisse, Dauphin and Lopez-Paz, "mixup: Beyond Empirical Risk Minimization", ICLR
// 2018): a batch trains on lambda * x + (1 - lambda) * x[perm], a blend of its inputs with a
// shuffled copy of them, against the same blend of the two labels' losses, lambda ~ Beta(a, a)
// drawn per batch. With a frozen backbone and the feature cache the blended inputs are the cached
// features, the head's inputs. In a data-parallel job every rank draws the same lambda and blends
// within its own part of the batch, as mixup does under torch's DistributedDataParallel.
//
//   auto mixed = histocnn::train::mixup_batch(x, y, 0.2, seed);
//   auto loss = histocnn::train::weighted_cross_entropy(model(mixed.input), y, {}, mixed.other, mixed.lambda);
//   (loss.sum / loss.weight_sum).backward();
#include <torch/types.h>

#include <cstdint>

namespace histocnn::train {

struct Mixup {
  torch::Tensor input;  ///< lambda * input + (1 - lambda) * input[perm]
  torch::Tensor other;  ///< labels[perm]
  double lambda = 1.0;  ///< in [0.5, 1]: the larger of the drawn lambda and 1 - lambda
};

/// Blends a batch with a permutation of itself; lambda and the permutation are drawn from `seed`
/// alone, so that a resumed run, and every rank of a data-parallel one, draws the same. alpha > 0.
/// Keeping lambda >= 0.5 (the draw or its complement, the same Beta distribution folded) makes the
/// batch's own labels the larger part, the ones accuracy is counted against.
Mixup mixup_batch(const torch::Tensor& input, const torch::Tensor& labels, double alpha, uint64_t seed);

struct WeightedLoss {
  torch::Tensor sum;        ///< sum over the samples of class weight x cross-entropy (a scalar)
  double weight_sum = 0.0;  ///< sum of the samples' class weights (their count without class weights)
};

/// The class-weighted cross-entropy of `logits` (N x classes) against `labels`, summed; with
/// `other` defined, lambda of it against `labels` and 1 - lambda against `other` (mixup's target).
/// sum / weight_sum is torch's mean cross-entropy with these class weights.
WeightedLoss weighted_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels,
                                    const torch::Tensor& class_weights, const torch::Tensor& other = {},
                                    double lambda = 1.0);

}  // namespace histocnn::train
