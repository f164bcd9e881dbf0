#pragma once
// Evaluates a saved model bundle on labelled patches, with the preprocessing saved in the bundle.
//
//   auto manifest = histocnn::data::Manifest::load_csv("runs/x/manifest.csv").subset("test");
//   histocnn::inference::EvaluateOptions options;
//   options.stain_shift = 0.1;                      // each patient restained one way
//   auto result = histocnn::inference::evaluate_bundle("runs/x/model", manifest, options);
//   std::cout << result.report;
#include "histocnn/data/manifest.h"
#include "histocnn/inference/predict.h"
#include "histocnn/metrics/binary.h"

#include <filesystem>
#include <optional>
#include <string>

namespace histocnn::inference {

struct EvaluationResult {
  metrics::BinaryMetrics metrics;
  std::string report;     ///< classification report and confusion matrix, as text
  Predictions predictions;
  double threshold = 0.5;  ///< the decision threshold the metrics used
  std::string model_directory;  ///< the version folder evaluated
};

struct EvaluateOptions {
  std::optional<double> threshold;  ///< default: the one recorded in the model card
  std::string device = "auto";
  int workers = 2;
  bool progress = true;
  /// > 0: each patient restained one way first (data::PatchDataset::with_stain_shift with `seed`;
  /// a run's own robustness evaluation used its training seed).
  double stain_shift = 0;
  uint64_t seed = 42;
  bool tta = false;  ///< test-time augmentation (class_probabilities)
  /// For a model that normalises stains: fit the source statistics per patch or per patient
  /// (data::StainFit) instead of as the bundle records. Ignored by models without normalisation.
  std::optional<data::StainFit> stain_fit;
};

/// Text block with the classification report (the study's layout), the confusion matrix and AUC.
std::string format_evaluation(const std::vector<int>& labels, const std::vector<double>& p_positive, double threshold,
                              const std::vector<std::string>& class_names, const std::string& title);

EvaluationResult evaluate_bundle(const std::filesystem::path& model_dir, const data::Manifest& manifest,
                                 const EvaluateOptions& options = {});

/// The machine-readable form of a result (metrics, threshold, model, patches): `evaluate --output`.
std::string to_json(const EvaluationResult& result);

}  // namespace histocnn::inference
