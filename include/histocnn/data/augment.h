#pragma once
// Label-preserving augmentation of uint8 RGB patches, applied before resizing.
//
//   histocnn::data::AugmentOptions aug;                  // flips and 90-degree turns
//   std::mt19937_64 rng(seed);
//   cv::Mat out = histocnn::data::augment_patch(patch, aug, rng);
//
// Tissue has no up or down, so flips and quarter turns are always safe. Each sample draws from
// its own generator seeded by (seed, epoch, index), so results do not depend on thread timing.
#include <opencv2/core.hpp>

#include <cstdint>
#include <random>

namespace histocnn::data {

struct AugmentOptions {
  bool enabled = false;
  bool horizontal_flip = true;
  bool vertical_flip = true;
  bool rotate90 = true;
};

cv::Mat augment_patch(const cv::Mat& rgb, const AugmentOptions& options, std::mt19937_64& rng);

/// A per-sample seed mixing the run seed, the epoch and the sample index (splitmix64).
uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index);

}  // namespace histocnn::data
