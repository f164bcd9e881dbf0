#pragma once
// Figures of a run and of a split, beyond the evaluation plots: the gallery of the most confident
// errors on the test split, and the class distribution before and after balancing.
//
//   namespace ht = histocnn::train;
//   auto gallery = ht::most_confident_errors(test_manifest, pred.labels, pred.p_positive, 0.5);
//   ht::plot_error_gallery("runs/1/plots/test_errors.png", gallery);
//   std::cout << gallery.to_text();
//   // or both at once, as run_training does: report += ht::write_error_gallery(png, test, pred, t);
//
//   auto counts = ht::plot_class_distribution("patches/split_distribution.png", input, split, true);
//
// An error is a patch whose predicted class (P(IDC-positive) >= threshold) differs from its label.
// The most confident false positives have the highest P(IDC-positive), the most confident false
// negatives the lowest; ties keep the manifest's order.
#include "histocnn/data/manifest.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::inference {
struct Predictions;  // inference/predict.h
}  // namespace histocnn::inference

namespace histocnn::train {

struct GalleryPatch {
  size_t index = 0;                  ///< row of the manifest (and of the predictions)
  std::filesystem::path image;       ///< the patch file
  std::string path;                  ///< as the manifest writes it
  std::string patient;
  int label = 0;
  double p_positive = 0;             ///< P(IDC-positive)
};

struct ErrorGallery {
  double threshold = 0.5;
  size_t per_kind = 8;  ///< at most this many of each kind are shown (the gallery's columns)
  int64_t false_positive_count = 0, false_negative_count = 0;  ///< all errors, not only those shown
  std::vector<GalleryPatch> false_positives;  ///< highest P(IDC-positive) first
  std::vector<GalleryPatch> false_negatives;  ///< lowest P(IDC-positive) first
  /// The lists as report text: rank, P(IDC-positive), patient, path; ends with a blank line.
  std::string to_text() const;
};

/// The `per_kind` most confident false positives and false negatives of `m`'s rows given their
/// labels and P(IDC-positive) (one per row, in the manifest's order). Throws std::invalid_argument
/// when the lengths differ, a probability is not in [0, 1], a label is not 0/1, or the threshold
/// is not in (0, 1).
ErrorGallery most_confident_errors(const data::Manifest& m, const std::vector<int>& labels,
                                   const std::vector<double>& p_positive, double threshold, size_t per_kind = 8);

/// The gallery as a PNG: a row of false positives above a row of false negatives, `per_kind`
/// columns of 112 px tiles, each patch captioned with its patient id and P(IDC-positive).
void plot_error_gallery(const std::filesystem::path& path, const ErrorGallery& gallery);

/// The step of a run's report: selects the errors of the test split (`test`, in the order of
/// `predictions`), draws them to `png` and returns their lists for report.txt, naming the file.
std::string write_error_gallery(const std::filesystem::path& png, const data::Manifest& test,
                                const inference::Predictions& predictions, double threshold, size_t per_kind = 8);

/// Class counts of one group of patches in the class distribution.
struct ClassCounts {
  std::string group;  ///< "before balancing", "after balancing", "all patches", "train", "val", "test"
  int64_t patients = 0, negatives = 0, positives = 0;
};

/// Draws the class distribution of `split` (the manifest `data split` writes) as a grouped bar
/// chart, IDC-negative and IDC-positive side by side: first the patches of `input` (before
/// balancing) and, when `balanced`, of `split` as a whole (after balancing), then each split.
/// Returns the counts drawn, in that order.
std::vector<ClassCounts> plot_class_distribution(const std::filesystem::path& path, const data::Manifest& input,
                                                 const data::Manifest& split, bool balanced);

}  // namespace histocnn::train
