#pragma once
// A saved model ready to classify patches: the bundle's weights, its model card (preprocessing,
// class names, decision threshold), in one object shared by evaluation, the command line, the
// server and Python. Every method predicts through inference::class_probabilities.
//
//   histocnn::inference::Predictor predictor("runs/x/model");        // newest version
//   std::vector<double> p = predictor.predict_files({"a.png", "b.png"});  // P(IDC-positive)
//   auto probs = predictor.predict_proba(images);                     // [N, classes]
//   auto pred = predictor.predict_dataset(test_set);                  // a labelled dataset
//
// Safe to call from several threads at once (the model is only read).
#include "histocnn/data/preprocessing.h"
#include "histocnn/inference/model_card.h"
#include "histocnn/inference/predict.h"
#include "histocnn/inference/saved_model.h"

#include <opencv2/core.hpp>
#include <torch/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::inference {

class Predictor {
 public:
  /// Loads a bundle (a version folder, or a model folder whose newest version is taken).
  explicit Predictor(const std::filesystem::path& model_dir, const std::string& device = "auto");
  /// A model already in memory (moved to `device`).
  Predictor(SavedModel saved, const std::string& device = "auto");

  /// Class probabilities [N, classes] for RGB uint8 patches of any size: padded to the card's
  /// pad_to with white, stain-normalised when the card says so, then resized (stretched, not
  /// cropped) to image_size x image_size, as in training. A card that fits stain statistics per
  /// slide fits them once over all of `rgb` (one request, one slide's tiles); per patch otherwise.
  /// Throws std::invalid_argument naming the index of a patch that is not RGB uint8.
  torch::Tensor predict_proba(const std::vector<cv::Mat>& rgb, int64_t batch_size = 64) const;
  /// The same with stain statistics fitted elsewhere (preprocessing().stain_source over a sample
  /// of a slide's tiles, say), used for every patch.
  torch::Tensor predict_proba(const std::vector<cv::Mat>& rgb, const data::StainStats& stain_source,
                              int64_t batch_size = 64) const;
  /// P(class 1) per patch.
  std::vector<double> predict(const std::vector<cv::Mat>& rgb, int64_t batch_size = 64) const;
  /// Decodes the files (errors name the file) and predicts.
  std::vector<double> predict_files(const std::vector<std::filesystem::path>& files, int64_t batch_size = 64) const;
  /// Every patch of a labelled dataset (decoded with its own preprocessing: pass this one's).
  Predictions predict_dataset(const data::PatchDataset& dataset, const PredictOptions& options = {}) const;
  /// Probabilities for a batch already prepared with preprocessing() ([N, 3, S, S]).
  torch::Tensor predict_batch(const torch::Tensor& batch) const;
  /// Prepares patches into one normalised batch [N, 3, S, S] on the CPU.
  torch::Tensor prepare(const std::vector<cv::Mat>& rgb) const;
  /// What the head reads (pooled backbone features for the dense head), [N, ...].
  torch::Tensor features(const std::vector<cv::Mat>& rgb, int64_t batch_size = 64) const;

  const ModelCard& card() const { return card_; }
  const data::Preprocessing& preprocessing() const { return card_.preprocessing; }
  const std::vector<std::string>& class_names() const { return card_.class_names; }
  double threshold() const { return card_.threshold; }
  /// The model card as model.json text.
  std::string model_json() const { return card_.to_json(); }
  const std::filesystem::path& directory() const { return directory_; }
  /// The model (shared with every caller: only read it, as predictions and explanations do).
  models::Classifier& model() const { return model_; }
  torch::Device device() const { return device_; }
  /// Test-time augmentation for every prediction of this Predictor (class_probabilities' tta).
  void set_tta(bool on) { tta_ = on; }
  bool tta() const { return tta_; }

 private:
  torch::Tensor prepare_range(const std::vector<cv::Mat>& rgb, size_t begin, size_t end,
                              const data::StainStats* stain_source) const;
  torch::Tensor predict_proba_with(const std::vector<cv::Mat>& rgb, int64_t batch_size,
                                   const data::StainStats* stain_source) const;
  // The model is only read; `mutable` because LibTorch's forward is not const.
  mutable models::Classifier model_{nullptr};
  ModelCard card_;
  std::filesystem::path directory_;
  torch::Device device_;
  bool tta_ = false;
};

/// One image file's answer: P(class 1), or why it could not be read.
struct FilePrediction {
  std::filesystem::path path;
  double p_positive = 0;
  std::string error;  ///< non-empty when the file was unreadable (and skipped)
};

/// Predicts image files in batches. An unreadable file throws (naming it) unless skip_unreadable,
/// when its entry carries the error instead.
std::vector<FilePrediction> predict_image_files(const Predictor& predictor,
                                                const std::vector<std::filesystem::path>& files,
                                                bool skip_unreadable = false, int64_t batch_size = 64,
                                                bool progress = false);

}  // namespace histocnn::inference
