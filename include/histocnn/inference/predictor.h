#pragma once
// A saved model ready to classify patches: the bundle's weights, its preprocessing, its class
// names and decision threshold, in one object shared by evaluation, serving and Python.
//
//   histocnn::inference::Predictor predictor("runs/x/model");        // newest version
//   std::vector<double> p = predictor.predict_files({"a.png", "b.png"});  // P(IDC-positive)
//   auto probs = predictor.predict_proba(images);                     // [N, classes]
#include "histocnn/data/preprocessing.h"
#include "histocnn/models/classifier.h"

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

  /// Class probabilities [N, classes] for RGB uint8 patches of any size (padded and resized as in
  /// training). Throws std::invalid_argument naming the index of a patch that is not RGB uint8.
  torch::Tensor predict_proba(const std::vector<cv::Mat>& rgb, int64_t batch_size = 64);
  /// P(class 1) per patch.
  std::vector<double> predict(const std::vector<cv::Mat>& rgb, int64_t batch_size = 64);
  /// Decodes the files (errors name the file) and predicts.
  std::vector<double> predict_files(const std::vector<std::filesystem::path>& files, int64_t batch_size = 64);
  /// What the head reads (pooled backbone features for the dense head), [N, ...].
  torch::Tensor features(const std::vector<cv::Mat>& rgb, int64_t batch_size = 64);

  const data::Preprocessing& preprocessing() const { return preprocessing_; }
  const std::vector<std::string>& class_names() const { return class_names_; }
  double threshold() const { return threshold_; }
  const std::string& model_json() const { return model_json_; }
  const std::filesystem::path& directory() const { return directory_; }
  models::Classifier& model() { return model_; }
  torch::Device device() const { return device_; }

 private:
  torch::Tensor batch_tensor(const std::vector<cv::Mat>& rgb, size_t begin, size_t end) const;
  models::Classifier model_{nullptr};
  data::Preprocessing preprocessing_;
  std::vector<std::string> class_names_;
  double threshold_ = 0.5;
  std::string model_json_;
  std::filesystem::path directory_;
  torch::Device device_;
};

}  // namespace histocnn::inference
