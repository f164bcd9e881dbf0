#pragma once
// Stain normalisation: make patches from another laboratory, scanner or staining batch look like
// the reference the model was trained on.
//
//   // The reference: the training set's stain (or one chosen image).
//   auto norm = histocnn::data::StainNormaliser::fit(histocnn::data::StainMethod::macenko, reference_patches);
//   cv::Mat a = norm.normalise(patch);                     // source statistics fitted on the patch itself
//   auto slide = norm.source_stats(patches_of_one_slide);  // or once over a slide / patient / request
//   cv::Mat b = norm.normalise(patch, slide);              // ... and applied to each of its patches
//
// Three methods:
// - Reinhard et al. 2001 (colour transfer): each CIE L*a*b* channel (OpenCV's cvtColor on float
//   RGB) is shifted and scaled so that its mean and standard deviation become the reference's.
// - Macenko et al. 2009: optical densities OD = -ln((I + 1) / 256) of the tissue pixels (|OD| >=
//   0.15) are projected on the plane of their two main singular directions; the
//   directions at the 1st and 99th percentile of the angle in that plane are the stain vectors
//   (haematoxylin: the one absorbing more red). Each pixel's H and E concentrations (least squares)
//   are scaled so that their 99th percentile becomes the reference's and recombined with the
//   reference's stain vectors. With white balance, the OD of each group's glass (per channel, its
//   1st percentile) is first subtracted from every pixel (the OD measured against the slide's own
//   light instead of pure white): an absorption the whole slide shares, such as a tinted
//   illumination or restaining's shift, cancels instead of being taken for stain.
// - White balance alone (von Kries): each channel's optical density is moved by the reference's
//   glass minus the source's, OD' = OD - glass_source + glass_target, i.e. every intensity is
//   divided by the source's light and multiplied by the reference's; the stains themselves are
//   left as they are. Meant for fits per slide, like Macenko's white balance.
//   Both white balances need a source to show its glass: a group with fewer non-white pixels than
//   eight 50-pixel patches (a request of one patch or a few, mostly tissue, whose 1st percentile is
//   pale tissue) is taken to have the reference's glass, so white balance alone leaves it as it is.
//
// Pure white pixels (255, 255, 255: background glass, and the padding of border patches) count in
// no statistic and stay white, so a patch gives the same result padded or not. A source with too
// little tissue to fit passes through unchanged (StainStats::fitted() is false); a Macenko source
// whose stains cannot be told apart (a patch of one stain only) keeps the reference's stain vectors
// and scales the concentrations alone. Vahadane's sparse non-negative factorisation is not
// implemented: it costs a dictionary fit per source, and on these data Macenko per slide gained
// 0.01-0.02 AUC on unseen patients while losing more under restaining unless white-balanced
// (docs/results.md).
#include "histocnn/data/manifest.h"

#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::data {

enum class StainMethod { reinhard, macenko, white_balance };
/// Where the source statistics come from: each patch by itself, or every patch of its slide
/// (patient, request) together.
enum class StainFit { patch, slide };

/// The optical density of each 8-bit intensity v, -ln((v + 1) / 256): the Macenko fit and the
/// H&E jitter of augmentation both work in it.
const std::array<double, 256>& optical_density_table();
/// Back from optical density: the 8-bit intensity 256 exp(-od) - 1, saturated to [0, 255].
uint8_t intensity_from_optical_density(double od);

/// Ruifrok & Johnston's H&E stain matrix: rows haematoxylin, eosin and the residual (their cross
/// product), each a unit optical-density vector over R, G, B; a pixel's stain concentrations are
/// c[k] = sum_i od[i] * inverse[i][k]. The H&E jitter of augmentation and restaining, and the
/// haematoxylin input of preprocessing, work in it.
struct StainMatrix {
  std::array<std::array<double, 3>, 3> stains{}, inverse{};
};
const StainMatrix& ruifrok_stain_matrix();

/// The haematoxylin channel of colour deconvolution (Ruifrok & Johnston) rendered as a grey image:
/// each pixel's haematoxylin concentration c_H becomes the intensity 256 exp(-c_H) - 1 on all three
/// channels, as the patch would look stained with haematoxylin alone and seen through a grey
/// filter. Eosin and residual are dropped; white stays white. RGB uint8 in and out.
cv::Mat haematoxylin_image(const cv::Mat& rgb);

/// "reinhard" / "macenko" / "white-balance"; throws std::invalid_argument naming the allowed values.
StainMethod parse_stain_method(const std::string& name);
std::string stain_method_name(StainMethod method);
/// "patch" / "slide"; throws std::invalid_argument naming the allowed values.
StainFit parse_stain_fit(const std::string& name);
std::string stain_fit_name(StainFit fit);

/// The colour statistics of a group of pixels, as one method sees them.
struct StainStats {
  StainMethod method = StainMethod::reinhard;
  /// Reinhard: mean and standard deviation of L*, a*, b* (L* in [0, 100]).
  std::array<double, 3> lab_mean{}, lab_std{};
  /// Macenko: unit optical-density vectors of haematoxylin and eosin (R, G, B), and the 99th
  /// percentile of each stain's concentration.
  std::array<double, 3> haematoxylin{}, eosin{};
  std::array<double, 2> max_concentration{};
  /// Macenko: the stains could not be separated and these are the reference's vectors.
  bool borrowed_vectors = false;
  /// Macenko with white balance, and white balance alone: the optical density of the group's glass
  /// (per channel, the 1st percentile over its non-white pixels), subtracted from every pixel
  /// before fitting and normalising. Zero without white balance.
  std::array<double, 3> background{};
  /// Pixels the statistics came from (tissue pixels for Macenko, non-white pixels otherwise); 0:
  /// nothing to fit.
  int64_t pixels = 0;

  bool fitted() const { return pixels > 0; }
  std::string to_json() const;
  static StainStats from_json(const std::string& json);
};

/// Statistics over every (non-white) pixel of the images taken together. Images are RGB uint8.
/// Returns unfitted stats (pixels == 0) when there is too little tissue; never throws for that.
StainStats fit_stain_stats(StainMethod method, const std::vector<cv::Mat>& rgb);

class StainNormaliser {
 public:
  /// Throws std::invalid_argument when `target` is not fitted. `white_balance` (Macenko only): each
  /// source's glass is estimated and subtracted in optical density before its stains are fitted, so
  /// that a tint the whole slide shares (illumination, a scanner's white balance, an absorbing film)
  /// cancels; meant for fits per slide, whose patches show glass (a source too small to show it
  /// is taken to have the reference's). The target must have been fitted the same way.
  explicit StainNormaliser(StainStats target, StainFit fit = StainFit::patch, bool white_balance = false);
  /// The reference statistics of `reference` (one image or many, pooled). Throws
  /// std::invalid_argument when they hold too little tissue to fit.
  static StainNormaliser fit(StainMethod method, const std::vector<cv::Mat>& reference,
                             StainFit fit = StainFit::patch, bool white_balance = false);

  StainMethod method() const { return target_.method; }
  StainFit fit_mode() const { return fit_; }
  bool white_balance() const { return white_balance_; }
  void set_fit_mode(StainFit fit) { fit_ = fit; }
  const StainStats& target() const { return target_; }

  /// Source statistics over a group of patches (a slide, a patient, a request), for normalise().
  /// A Macenko group whose stains cannot be separated gets the reference's vectors.
  StainStats source_stats(const std::vector<cv::Mat>& rgb) const;
  /// The patch with its own statistics mapped onto the reference's.
  cv::Mat normalise(const cv::Mat& rgb) const;
  /// The patch with `source` (its group's statistics) mapped onto the reference's. An unfitted
  /// source returns the patch unchanged.
  cv::Mat normalise(const cv::Mat& rgb, const StainStats& source) const;
  /// Fits the source over all of `rgb`, then normalises each.
  std::vector<cv::Mat> normalise_group(const std::vector<cv::Mat>& rgb) const;

  std::string to_json() const;
  static StainNormaliser from_json(const std::string& json);

 private:
  StainStats target_;
  StainFit fit_;
  bool white_balance_ = false;
};

/// A training run's reference (StainNormaliser::fit with `method`, `fit` and `white_balance`):
/// fitted to the image `reference` when one is given, otherwise to up to `max_patches` patches of
/// `manifest` spread evenly over its rows (the training split, so the reference never sees a test
/// patient). Patches are decoded from the manifest's files.
StainNormaliser fit_stain_reference(StainMethod method, StainFit fit, bool white_balance, const Manifest& manifest,
                                    const std::filesystem::path& reference = {}, int max_patches = 512);

}  // namespace histocnn::data
