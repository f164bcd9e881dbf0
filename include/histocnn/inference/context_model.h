#pragma once
// Learned spatial context: a logistic regression over each patch's neighbourhood on its slide.
// Smoothing (slide_maps.h) averages a patch's probability with its neighbours' by a fixed rule;
// this head learns, from labelled predictions (a run's validation split), how much a patch's own
// probability, its neighbours' and the tissue edge each count.
//
//   namespace hi = histocnn::inference;
//   auto val = hi::load_predictions_csv("runs/x/predictions_validation.csv");
//   std::vector<int> labels;
//   for (const auto& r : val.manifest.rows()) labels.push_back(r.label);
//   auto head = hi::ContextModel::fit(val.manifest, val.p, labels);
//   head.save("runs/x/context_model.json");
//   auto p_context = head.predict(test_manifest, p_test);   // P(IDC) with context, per patch
//
// Features (context_features(), kContextFeatures = 8, in this order), from the patient's slide
// grid (slide_grids()); logits are of p clamped to [1e-4, 1 - 1e-4]:
//   0 own_logit               the patch's own logit
//   1 neighbour_mean_logit    mean logit of the patches present among the 8 neighbours (own logit when none)
//   2 neighbour_max_p         largest p among those neighbours (own p when none)
//   3 neighbour_min_p         smallest p among those neighbours (own p when none)
//   4 ring_mean_logit         mean logit of the patches present on the 16 outer places of the 5x5
//                             window (neighbour_mean_logit when none)
//   5 neighbour_presence      fraction of the 8 neighbouring places that hold a patch
//   6 ring_presence           fraction of the 16 outer places that hold a patch (tissue edge)
//   7 own_logit_x_presence    own_logit * neighbour_presence
//
// The model standardises each feature (mean and standard deviation of the fitting data), then
// fits P = sigmoid(b + w . z) by Newton's method (iteratively reweighted least squares), with the
// penalty l2 / 2 * |w|^2 on the weights (not on b) added to the summed log-loss. Weights are
// therefore per standard deviation of their feature and comparable with each other.
//
// JSON (context_model.json):
//   {"format": "histocnn.context_model", "version": 1, "features": [8 names], "mean": [8],
//    "scale": [8], "weights": [8], "intercept": b, "l2": 1.0, "threshold": t,
//    "threshold_method": "youden", "fitted_on": {"patches": n, "positives": k, "patients": m,
//    "iterations": i, "source": "..."}}
#include "histocnn/data/manifest.h"

#include <array>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::inference {

constexpr int kContextFeatures = 8;
using ContextFeatures = std::array<double, kContextFeatures>;

/// The feature names, in the order of ContextFeatures.
const std::array<std::string, kContextFeatures>& context_feature_names();

/// The mean over patches of the fraction of their 8 neighbouring places that hold a patch: about
/// 0.6 on complete Kaggle slides, far less on a sample of them (a class-balanced split).
double mean_neighbour_presence(const data::Manifest& manifest);

/// One row of features per manifest row. Throws std::invalid_argument when p does not hold one
/// finite probability in [0, 1] per patch, or two patches of a patient share a place.
std::vector<ContextFeatures> context_features(const data::Manifest& manifest, const std::vector<double>& p);

struct ContextFitOptions {
  double l2 = 1.0;  ///< penalty on the standardised weights (in units of the summed log-loss)
  /// How the decision threshold for P with context is chosen on the fitting data:
  /// "youden", "sensitivity" (with target_sensitivity; see metrics::choose_threshold) or "fixed".
  std::string threshold_method = "youden";
  double target_sensitivity = 0.9;
  double fixed_threshold = 0.5;  ///< the threshold when threshold_method is "fixed"
  int max_iterations = 100;
  std::string source;  ///< recorded in the JSON: where the fitting predictions came from
};

class ContextModel {
 public:
  /// The fewest patches a model is fitted on.
  static constexpr size_t kMinimumPatches = 50;

  /// Fits on `labels` (0/1, one per manifest row) and the model's probabilities `p`. Throws
  /// std::invalid_argument naming what is wrong when the sizes differ, the labels hold one class
  /// only, there are fewer than kMinimumPatches patches, or the options are out of range.
  static ContextModel fit(const data::Manifest& manifest, const std::vector<double>& p, const std::vector<int>& labels,
                          const ContextFitOptions& options = {});

  /// P(IDC) with context, one per manifest row.
  std::vector<double> predict(const data::Manifest& manifest, const std::vector<double>& p) const;

  std::string to_json() const;
  /// Throws std::invalid_argument naming the field for malformed JSON, another format or version,
  /// features other than this build's, or non-finite numbers.
  static ContextModel from_json(const std::string& text);
  /// Atomic write (io::write_file_atomic).
  void save(const std::filesystem::path& file) const;
  /// Throws NotFoundError / std::runtime_error when the file cannot be read, std::invalid_argument
  /// (naming the file) when its content is not a context model.
  static ContextModel load(const std::filesystem::path& file);

  /// Weights on the standardised features, in context_feature_names() order.
  const ContextFeatures& weights() const { return weights_; }
  double intercept() const { return intercept_; }
  const ContextFeatures& mean() const { return mean_; }
  const ContextFeatures& scale() const { return scale_; }
  double l2() const { return l2_; }
  /// Decision threshold for predict()'s output, chosen on the fitting data.
  double threshold() const { return threshold_; }
  const std::string& threshold_method() const { return threshold_method_; }
  int64_t fitted_patches() const { return patches_; }
  int64_t fitted_positives() const { return positives_; }
  int64_t fitted_patients() const { return patients_; }
  int iterations() const { return iterations_; }
  const std::string& source() const { return source_; }
  /// mean_neighbour_presence() of the patches it was fitted on.
  double fitted_neighbour_presence() const { return mean_[5]; }
  /// One line: what the head was fitted on and its threshold.
  std::string summary() const;
  /// A warning when `manifest`'s slides are far more or less complete around each patch than the
  /// fitting slides were (mean_neighbour_presence off by a factor of 1.5 or more): the weights and
  /// the threshold then describe other neighbourhoods. Empty when they are alike.
  std::string neighbourhood_warning(const data::Manifest& manifest) const;

 private:
  ContextFeatures mean_{}, scale_{}, weights_{};
  double intercept_ = 0, l2_ = 1, threshold_ = 0.5;
  std::string threshold_method_ = "youden", source_;
  int64_t patches_ = 0, positives_ = 0, patients_ = 0;
  int iterations_ = 0;
};

/// A predictions CSV as a run writes it (predictions_<split>.csv: path,patient,label,p_positive);
/// x and y come from the Kaggle file names. Paths stay relative to `root` (default: the CSV's folder).
struct PatchPredictions {
  data::Manifest manifest;
  std::vector<double> p;
};
PatchPredictions load_predictions_csv(const std::filesystem::path& csv,
                                      std::optional<std::filesystem::path> root = {});

/// Fits a ContextModel on a run's validation predictions: <run_dir>/predictions_validation_slides.csv
/// (the validation patients' complete slides, which a class-balanced run predicts beside its split)
/// when it exists, else <run_dir>/predictions_validation.csv.
ContextModel fit_context_model(const std::filesystem::path& run_dir, ContextFitOptions options = {});

/// <run>/context_model.json for a model folder given as <run>/model or <run>/model/<version>, when
/// that file exists.
std::optional<std::filesystem::path> context_model_beside(const std::filesystem::path& model_dir);

/// The context model to map a model's slides with, as --context-model chooses it: "none" (none),
/// a context_model.json file, or "" for the one beside the model (context_model_beside) when there
/// is one. A file that is missing or not a context model is an error that says what to give.
std::optional<ContextModel> context_model_for(const std::filesystem::path& model_dir, const std::string& choice = "");

}  // namespace histocnn::inference
