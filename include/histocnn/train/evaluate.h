#pragma once
// Evaluates a saved model bundle on patches, with the preprocessing saved inside the bundle.
//
//   auto manifest = histocnn::data::Manifest::load_csv("runs/x/manifest.csv").subset("test");
//   auto result = histocnn::train::evaluate_bundle("runs/x/model", manifest);
//   std::cout << result.report;
#include "histocnn/data/manifest.h"
#include "histocnn/metrics/binary.h"
#include "histocnn/train/trainer.h"

#include <filesystem>
#include <string>

namespace histocnn::train {

struct EvaluationResult {
  metrics::BinaryMetrics metrics;
  std::string report;     ///< classification report and confusion matrix, as text
  Predictions predictions;
};

/// Text block with the classification report (the study's layout), the confusion matrix and AUC.
std::string format_evaluation(const std::vector<int>& labels, const std::vector<double>& p_positive, double threshold,
                              const std::vector<std::string>& class_names, const std::string& title);

/// threshold < 0 means the one recorded in model.json (0.5 when none). With stain_shift > 0 the
/// patches are restained per patient first (data::PatchDataset::with_stain_shift with `seed`; a
/// run's own robustness evaluation used its training seed).
EvaluationResult evaluate_bundle(const std::filesystem::path& model_dir, const data::Manifest& manifest,
                                 double threshold = -1, const std::string& device = "auto", int workers = 2,
                                 bool progress = true, double stain_shift = 0, uint64_t seed = 42);

}  // namespace histocnn::train
