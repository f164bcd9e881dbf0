#pragma once
// Leave-patients-out cross-validation: every patient is a test patient exactly once.
//
//   histocnn::train::CrossValidationOptions cv;
//   cv.run.data_dirs = {"data/idc_real", "data/idc_wide"};   // joined; a patient in one folder only
//   cv.run.model.set_backbone("mobilenet_v2");  ...          // the recipe, as for run_training
//   cv.folds = 5;
//   auto result = histocnn::train::cross_validate(cv);
//   std::cout << result.summary;                              // mean and spread over the folds
//
// The patients are dealt to `folds` folds (seeded shuffle, then each patient to the fold with the
// fewest patches so far, so folds hold about the same number of patches). Fold k tests on its own
// patients; the other patients are split by patient into training and validation in the ratio of
// run.split.train : run.split.val (validation picks the epoch and the decision threshold). Class
// balancing (run.balance_per_class) applies to the training and validation patches only: test
// patients are scored on all their patches. Each fold is an ordinary run folder
// (<output>/fold-<k>), so a killed cross-validation resumes where it stopped and each fold's
// model can be served.
//
// Each fold's test patients are scored as stained and restained per patient at every sigma of
// `stain_shifts` (the proxy for another laboratory), with the same bundle through the one
// inference path. When the data came from several folders, each folder's patients are also
// scored on their own (so a small complete cohort is not hidden by a large sampled one).
#include "histocnn/inference/slide_maps.h"
#include "histocnn/train/run.h"

#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::train {

struct CrossValidationOptions {
  RunOptions run;                     ///< data, recipe and output folder (fold runs go under it)
  int folds = 5;
  uint64_t fold_seed = 42;            ///< which patients share a fold
  std::vector<int> only_folds;        ///< run these folds (1-based) only; empty = all
  std::vector<double> stain_shifts = {0.1, 0.2};
  bool tta = false;                   ///< test-time augmentation in the test evaluations
  /// Spatial context: the test patients, as stained and at each restaining sigma, are also scored
  /// with each patch's P averaged over their test patches within this many places on the slide
  /// (as `histocnn maps --smooth`), apart from the patch-alone scores; 0: not.
  int context_radius = inference::kDefaultSmoothRadius;
  /// Folds finished before are scored again from their saved models with these options'
  /// stain_shifts, tta and context_radius (nothing retrains); false: their scores are read back.
  bool rescore = false;
  std::string name = "cv";            ///< folder under run.output_dir

  void validate() const;
};

/// One score of one fold: a sigma (0 = as stained) and a group ("all" or a data folder's name).
struct FoldScore {
  double stain_shift = 0;
  std::string group = "all";
  int64_t patches = 0;
  int64_t patients = 0;
  double roc_auc = 0;
  double balanced_accuracy = 0;
  double sensitivity = 0;
  double specificity = 0;
  double median_patient_auc = 0;  ///< over the group's patients with both classes (NaN if none)
};

struct FoldResult {
  int fold = 0;                    ///< 1-based
  std::filesystem::path run_dir;
  double threshold = 0.5;          ///< the run's (chosen on validation by the run's method)
  double seconds = 0;              ///< training plus every evaluation of this fold
  std::vector<FoldScore> scores;   ///< the patch alone, per sigma and group
  int context_radius = 0;          ///< of context_scores; 0 when the fold has none
  std::vector<FoldScore> context_scores;  ///< with context, per sigma (stain_shift) and group
};

struct CrossValidationResult {
  std::filesystem::path output_dir;  ///< holds folds.csv (the patient -> fold table), cv.json, cv.md
  std::vector<FoldResult> folds;
  std::string summary;               ///< mean +- sd per sigma and group, then the per-fold table
};

/// Patient -> fold (1-based), deterministic in (manifest, folds, seed). Throws std::invalid_argument
/// when there are fewer patients than folds.
std::vector<std::pair<std::string, int>> assign_patient_folds(const data::Manifest& m, int folds, uint64_t seed);

/// Runs (or resumes) every fold and writes cv.json and cv.md in the output folder.
CrossValidationResult cross_validate(const CrossValidationOptions& options);

}  // namespace histocnn::train
