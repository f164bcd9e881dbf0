#pragma once
// Label-preserving augmentation of uint8 RGB patches, applied before resizing.
//
//   auto aug = histocnn::data::AugmentOptions::preset("histology");  // flips, quarter turns, H&E jitter
//   auto aug = histocnn::data::AugmentOptions::preset("study");      // flips, rotation 20, zoom out 1.0-1.2
//   auto aug = histocnn::data::AugmentOptions::preset("hsv-strong"); // flips, quarter turns, any hue, contrast
//   std::mt19937_64 rng(seed);
//   cv::Mat out = histocnn::data::augment_patch(patch, aug, rng);
//
// Tissue has no up or down, so flips and quarter turns are always safe; staining varies between
// labs, which the haematoxylin-eosin jitter imitates (Tellez et al. 2018: scale and shift each
// stain's optical density after colour deconvolution), and so does HSV jitter (Tellez et al. 2019,
// 9 laboratories: HSV or H&E jitter did more for other labs' slides than stain normalisation).
// Each sample draws from its own generator seeded by (seed, epoch, index), so results do not
// depend on thread timing.
#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <random>
#include <string>

namespace histocnn::data {

struct AugmentOptions {
  bool enabled = false;
  bool horizontal_flip = true;
  bool vertical_flip = true;
  bool rotate90 = true;
  double rotation_degrees = 0;   ///< random rotation in [-r, r] (study: 20)
  double zoom_max = 1.0;         ///< random zoom factor in [1, zoom_max] (study: 1.2)
  /// Keras' zoom_range=[1, zoom_max]: a factor z shows z times the field of view (zooms out), drawn
  /// per axis. Otherwise one factor for both axes zooms in (crops).
  bool zoom_out = false;
  /// What fills pixels the rotation or zoom brings in from outside the patch: the nearest edge pixel
  /// (Keras' fill_mode="nearest") or a reflection of the patch (OpenCV's BORDER_REFLECT_101).
  bool fill_nearest = false;
  double stain_jitter = 0.0;     ///< H&E optical-density scale/shift sigma (0.05 is moderate)
  double brightness = 0.0;       ///< multiplicative brightness jitter sigma
  /// HSV jitter as Tellez et al. 2019 apply it (their HsbColorAugmenter and ContrastAugmenter),
  /// each factor drawn uniformly from [-r, r]: the hue turned by that fraction of the colour
  /// circle; saturation and value scaled down by (1 + f) for f < 0 or moved towards 1 by f for
  /// f > 0; contrast by stretching [f m, 255 - f (255 - m)] to [0, 255], m the patch's mean grey.
  double hue = 0.0;
  double saturation = 0.0;
  double value = 0.0;
  double contrast = 0.0;

  /// "none", "flips" (flips and quarter turns), "study" (the study's Keras ImageDataGenerator as
  /// Keras applies it: flips, rotation 20, zoom out by 1.0-1.2 per axis, nearest fill),
  /// "study-zoom-in" (flips, rotation 20, zoom in by 1.0-1.2, reflected border), "histology"
  /// (flips, quarter turns, H&E jitter 0.05,
  /// brightness 0.05), "histology:<sigma>" (the same with H&E jitter sigma, e.g. histology:0.1),
  /// "hsv-light" (flips, quarter turns, hue and saturation 0.1 as Tellez et al.'s HSV-light, value
  /// and contrast 0.1), "hsv-strong" (hue and saturation 1 as their HSV-strong, so any hue; value
  /// and contrast 0.25), "hsv:<r>" (hue and saturation r, value and contrast min(r, 0.25)).
  static AugmentOptions preset(const std::string& name);
  /// The preset these options equal, or "custom".
  std::string preset_name() const;
  void validate() const;
  std::string to_json() const;
};

cv::Mat augment_patch(const cv::Mat& rgb, const AugmentOptions& options, std::mt19937_64& rng);

/// Restaining: deconvolves RGB into haematoxylin, eosin and residual optical densities (Ruifrok &
/// Johnston's stain vectors), takes each concentration c to c * scale[k] + shift[k], and converts back.
cv::Mat restain(const cv::Mat& rgb, const std::array<double, 3>& scale, const std::array<double, 3>& shift);

/// Haematoxylin-eosin jitter alone: restain() with each scale 1 + N(0, sigma) and each shift
/// N(0, sigma), drawn from `rng` (scale then shift, stain by stain).
cv::Mat jitter_stains(const cv::Mat& rgb, double sigma, std::mt19937_64& rng);

/// HSV, brightness and contrast jitter alone (the hue, saturation, value and contrast fields of
/// `options`), one draw per patch.
cv::Mat jitter_hsv(const cv::Mat& rgb, const AugmentOptions& options, std::mt19937_64& rng);

/// A per-sample seed mixing the run seed, the epoch and the sample index (splitmix64).
uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index);

}  // namespace histocnn::data
