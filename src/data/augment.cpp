#include "histocnn/data/augment.h"

namespace histocnn::data {

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(index));
}

cv::Mat augment_patch(const cv::Mat& rgb, const AugmentOptions& options, std::mt19937_64& rng) {
  if (!options.enabled) return rgb;
  const uint64_t bits = rng();
  const bool hflip = options.horizontal_flip && (bits & 1);
  const bool vflip = options.vertical_flip && (bits & 2);
  const int turn = options.rotate90 ? static_cast<int>((bits >> 2) & 3) : 0;
  if (!hflip && !vflip && turn == 0) return rgb;
  // Never write into `rgb`: it may be the dataset's cached patch.
  cv::Mat out;
  if (hflip && vflip) {
    cv::flip(rgb, out, -1);
  } else if (hflip || vflip) {
    cv::flip(rgb, out, hflip ? 1 : 0);
  } else {
    out = rgb;
  }
  if (turn != 0) {
    static const cv::RotateFlags kTurns[] = {cv::ROTATE_90_CLOCKWISE, cv::ROTATE_180, cv::ROTATE_90_COUNTERCLOCKWISE};
    cv::Mat turned;
    cv::rotate(out, turned, kTurns[turn - 1]);
    out = turned;
  }
  return out;
}

}  // namespace histocnn::data
