#pragma once
// Batches from a PatchDataset, prepared on worker threads while the model computes.
//
//   histocnn::data::LoaderOptions opt;
//   opt.batch_size = 32; opt.shuffle = true; opt.augment.enabled = true;
//   histocnn::data::BatchLoader loader(train_set, opt);
//   loader.run_epoch(epoch, [&](histocnn::data::Batch& b) { step(b.images, b.labels); });
//
// Shuffling and augmentation are seeded per (seed, epoch, sample), so an epoch is the same
// whatever the thread count. Batches arrive in order; at most `prefetch` wait in memory.
#include "histocnn/data/augment.h"
#include "histocnn/data/dataset.h"

#include <torch/types.h>

#include <functional>
#include <utility>
#include <vector>

namespace histocnn::data {

struct Batch {
  torch::Tensor images;  ///< [B, 3, S, S] float32
  torch::Tensor labels;  ///< [B] int64
  std::vector<int64_t> indices;  ///< positions in the dataset
};

struct LoaderOptions {
  int64_t batch_size = 32;
  bool shuffle = false;
  /// With shuffle: draw each epoch's samples with replacement so both classes are equally likely
  /// (a weighted sampler), instead of a permutation.
  bool balanced = false;
  /// With shuffle (not balanced): at most this many patches of each patient per epoch, a fresh
  /// seeded draw each epoch, so that patients with thousands of patches do not drown those with
  /// dozens (0: every patch, every epoch).
  int64_t max_per_patient = 0;
  bool drop_last = false;
  int workers = 2;
  int prefetch = 4;
  uint64_t seed = 42;
  AugmentOptions augment;
  /// Data-parallel training: the epoch order and batch_size stay global (the same on every
  /// process), and each batch yields only part shard_index of shard_count of its samples
  /// (shard_range), so the parts of all processes together are the one-process batch. A part may
  /// be empty when the last batch is shorter than shard_count.
  int shard_count = 1;
  int shard_index = 0;
};

/// Part `index` of `count` near-equal contiguous parts of n items: [first, last) offsets in [0, n).
std::pair<int64_t, int64_t> shard_range(int64_t n, int index, int count);

class BatchLoader {
 public:
  BatchLoader(PatchDataset dataset, LoaderOptions options);

  /// Samples per epoch: the dataset's size, or fewer with max_per_patient.
  int64_t epoch_size() const { return epoch_size_; }
  int64_t num_batches() const;
  /// The sample order of an epoch (a seeded permutation when shuffling; a class-balanced draw with
  /// replacement when balanced; a permutation of each patient's capped draw with max_per_patient).
  std::vector<int64_t> epoch_order(int64_t epoch) const;
  /// Calls `fn` for each batch of the epoch, in order. Exceptions from workers (a file that fails
  /// to decode) and from `fn` stop the epoch and are rethrown here.
  void run_epoch(int64_t epoch, const std::function<void(Batch&)>& fn) const;

  const PatchDataset& dataset() const { return dataset_; }
  const LoaderOptions& options() const { return options_; }

 private:
  Batch make_batch(const std::vector<int64_t>& order, int64_t b, int64_t epoch) const;
  PatchDataset dataset_;
  LoaderOptions options_;
  std::vector<std::vector<int64_t>> patients_;  ///< sample indices by patient (max_per_patient only)
  int64_t epoch_size_ = 0;
};

}  // namespace histocnn::data
