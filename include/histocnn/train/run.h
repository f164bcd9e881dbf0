#pragma once
// One training run from a data folder to a run folder: the job behind `histocnn train`,
// `histocnn demo` and `histocnn.Trainer(...).fit()`.
//
//   histocnn::train::RunOptions opt;
//   opt.data_dirs = {"data/idc"};              // Kaggle layout, scanned (several folders are joined)
//   opt.weights = "mobilenet_v2.safetensors";  // pretrained backbone ("" = from scratch)
//   opt.image_size = 96;
//   auto result = histocnn::train::run_training(opt);
//   // result.run_dir: options.json, manifest.csv (with splits), history.csv, metrics.json,
//   //                 report.txt, predictions_{validation,test}.csv, plots/*.png, maps/*.png, tensorboard/,
//   //                 checkpoint/ and model/1/{model.safetensors, model.json}
//
// The run folder's default name is derived from the options, so running the same command again
// finds the same folder and resumes from its checkpoint (or, when finished, only re-evaluates).
#include "histocnn/data/preprocessing.h"
#include "histocnn/data/split.h"
#include "histocnn/inference/predict.h"
#include "histocnn/metrics/binary.h"
#include "histocnn/models/classifier.h"
#include "histocnn/train/callbacks.h"
#include "histocnn/train/trainer.h"

#include <memory>
#include <optional>
#include <vector>

#include <filesystem>
#include <string>

namespace histocnn::train {

struct RunOptions {
  /// Folders in the Kaggle layout, scanned and joined (a patient id may appear in only one), or
  std::vector<std::filesystem::path> data_dirs;
  std::filesystem::path manifest;   ///< a manifest CSV (its split column is used when filled)
  std::filesystem::path output_dir = "runs";
  std::string name;                 ///< run folder name; default <backbone>-<head>-<hash of the options>
  models::ClassifierOptions model;
  std::string weights;              ///< pretrained backbone weights (safetensors); "" = random init
  int image_size = 224;
  std::string normalisation;        ///< "" = what the backbone's weights expect
  data::SplitOptions split;
  int64_t balance_per_class = 0;    ///< down-sample each class to this many patches (0 = keep all)
  TrainerOptions trainer;
  double threshold = 0.5;           ///< decision threshold when threshold_method is "fixed"
  /// "fixed", or chosen on the validation split: "youden" (max sensitivity + specificity) or
  /// "sensitivity" (the highest threshold reaching target_sensitivity).
  /// Youden by default: at 0.5 a model trained on balanced classes is mis-calibrated for unseen
  /// patients (it found fewer than half of their positive patches while missing few negatives).
  std::string threshold_method = "youden";
  double target_sensitivity = 0.9;
  /// Robustness: the test split is evaluated a second time restained per patient with this
  /// haematoxylin-eosin jitter sigma (data::PatchDataset::with_stain_shift), as patients from other
  /// labs would look. 0.1 is about Tellez et al.'s "HED-strong" range; 0 turns it off.
  double stain_shift = 0.1;
  /// Stain normalisation stored in the bundle's preprocessing: "none", "reinhard", "macenko" or
  /// "white-balance" (the glass alone), fitted to stain_reference (an image) or, when that is empty,
  /// to patches of the training split.
  std::string stain_normalise = "none";
  std::string stain_fit = "patch";  ///< source statistics per "patch" or per "slide" (patient)
  std::filesystem::path stain_reference;
  /// Macenko: white-balance each source (and the reference) to its glass before fitting its stains
  /// (data::StainNormaliser); meant for stain_fit "slide".
  bool stain_white_balance = false;
  /// What of the colour the model sees, stored in the bundle's preprocessing: "rgb", "grey" or
  /// "haematoxylin" (data::Colour).
  std::string colour = "rgb";
  bool tensorboard = true;          ///< write TensorBoard scalars to <run>/tensorboard
  bool wait_for_lock = false;       ///< another process writing the run folder: wait (else stop, naming it)
  std::vector<std::shared_ptr<Callback>> callbacks;  ///< extra callbacks (not part of the options)

  std::string to_json() const;
  /// Every check that needs no data: ranges, choices and contradictions (e.g. a cosine schedule
  /// with ReduceLROnPlateau). run_training calls it before scanning anything.
  void validate() const;
};

struct RunResult {
  History history;
  metrics::BinaryMetrics validation;
  metrics::BinaryMetrics test;
  metrics::BinaryMetrics test_stain_shift;  ///< the test split restained (RunOptions::stain_shift)
  inference::Predictions test_predictions;  ///< the test split as stained, in manifest order (empty: none)
  std::string test_report;  ///< the classification report on the test split
  std::filesystem::path run_dir;
  std::filesystem::path model_dir;
  double seconds = 0;
};

/// The steps, in order: validate the options, prepare_run_data, build_run_model, lock and fill the
/// run folder, train (resuming), choose the threshold on validation, evaluate the test split as
/// stained and restained, plot, export the bundle, write metrics.json last.
RunResult run_training(const RunOptions& options);

/// A run's data: the manifest (balanced, split by patient) and its three splits.
struct RunData {
  data::Manifest manifest, train, val, test;
};
/// Scans the folder or reads the manifest, balances, and splits by patient (a manifest's own
/// complete split column is kept; a partly filled one is refused).
RunData prepare_run_data(const RunOptions& options);

/// A run's classifier with its pretrained backbone weights loaded, and the preprocessing they expect.
struct RunModel {
  models::Classifier model{nullptr};
  data::Preprocessing preprocessing;
  std::filesystem::path weights;  ///< the resolved weight file ("" = random initialisation)
};
RunModel build_run_model(const RunOptions& options);
/// The stain normaliser the options ask for (none: nullopt), its reference fitted to
/// RunOptions::stain_reference or to the training split, so no validation or test patient shapes it.
std::optional<data::StainNormaliser> fit_run_stain_reference(const RunOptions& options, const data::Manifest& train);

/// The run folder name used when RunOptions::name is empty: <backbone>-<head>-<8 hex digits>.
std::string default_run_name(const RunOptions& options);

/// Loads a data folder or manifest CSV as RunOptions describes; scanning reports rejected files.
data::Manifest load_patch_manifest(const std::vector<std::filesystem::path>& data_dirs,
                                   const std::filesystem::path& manifest);
/// One folder (or none: "").
data::Manifest load_patch_manifest(const std::filesystem::path& data_dir, const std::filesystem::path& manifest);

}  // namespace histocnn::train
