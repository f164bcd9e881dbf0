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

  /// The same patches (sharing the decode cache) restained the way a patient from another lab or
  /// scanner would look: each patient gets one haematoxylin-eosin jitter (jitter_stains with
  /// `sigma`), drawn from `seed` and the patient id, applied to all of its patches. A robustness
  /// check for evaluation, not augmentation: the same (sigma, seed) always gives the same pixels.
  /// sigma 0 gives the patches unchanged.
  PatchDataset with_stain_shift(double sigma, uint64_t seed) const;
  /// The sigma of with_stain_shift (0 for the patches as they are).
  double stain_shift() const { return stain_shift_; }

  /// When the preprocessing normalises stains per slide: the stain statistics of patch i's patient,
  /// fitted over (up to 256 of) its patches as this dataset gives them (restained ones, for a
  /// with_stain_shift view), once per patient on first use. nullptr otherwise: prepare() then fits
  /// each patch by itself.
  const StainStats* stain_source(size_t i) const;

 private:
  struct State;
  struct StainGroups;
  std::shared_ptr<State> state_;
  std::shared_ptr<StainGroups> stain_groups_;
  double stain_shift_ = 0;
  uint64_t stain_shift_seed_ = 0;
};

/// One patch of each of the first `patients` patients of `original`, as `original` gives it (top
/// row) and as `changed` gives the same patch (bottom row), each `tile` x `tile` pixels: a dataset
/// beside its with_stain_shift() view, say. An empty image when there are no patches.
cv::Mat paired_examples(const PatchDataset& original, const PatchDataset& changed, int patients = 8, int tile = 100);

}  // namespace histocnn::data
