#pragma once
// A dataset of patches listed in a manifest: decodes, caches and preprocesses them.
//
//   auto manifest = histocnn::data::Manifest::load_csv("run/manifest.csv").subset("train");
//   histocnn::data::PatchDataset ds(manifest, histocnn::data::Preprocessing{});
//   ds.preload();                          // decode everything once, report every bad file
//   torch::Tensor x = ds.tensor(0);        // [3, 224, 224]
//
// Decoded patches are cached as padded uint8 images (7.5 kB for 50x50), so a 20,000-patch set
// costs about 150 MB, and resizing/normalising happens per batch. Copies share the cache.
#include "histocnn/data/manifest.h"
#include "histocnn/data/preprocessing.h"

#include <opencv2/core.hpp>
#include <torch/types.h>

#include <memory>
#include <vector>

namespace histocnn::data {

class PatchDataset {
 public:
  PatchDataset(Manifest manifest, Preprocessing preprocessing, bool cache = true);

  size_t size() const;
  const Manifest& manifest() const;
  const Preprocessing& preprocessing() const;
  int label(size_t i) const;
  std::vector<int> labels() const;

  /// The decoded, padded RGB uint8 patch i (from the cache when enabled).
  cv::Mat image(size_t i) const;
  /// Patch i preprocessed into a [3, S, S] float tensor.
  torch::Tensor tensor(size_t i) const;

  /// Decodes every patch on `workers` threads (<= 0: hardware threads) and fills the cache.
  /// Throws one std::invalid_argument listing every file that failed to decode (up to 20),
  /// so a bad file is found before training starts, not in epoch 7.
  void preload(int workers = 0, bool progress = false) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace histocnn::data
