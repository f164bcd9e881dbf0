#pragma once
// What a model bundle says about itself: model.json as a typed struct, read and written here only.
//
//   histocnn::inference::ModelCard card;
//   card.classifier = model->options();
//   card.preprocessing = histocnn::data::preprocessing_for("imagenet", 96);
//   card.threshold = 0.42;                               // chosen on validation
//   std::string text = card.to_json();                   // model.json
//   auto back = histocnn::inference::ModelCard::from_json(text, "runs/x/model/1/model.json");
#include "histocnn/data/preprocessing.h"
#include "histocnn/models/classifier.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::inference {

/// The class names of the IDC task, in label order.
const std::vector<std::string>& idc_class_names();

struct SplitCounts {
  int64_t train = 0, val = 0, test = 0;
};

/// Where a model came from.
struct Provenance {
  std::string created;             ///< ISO 8601 UTC
  std::string data;                ///< the data folder or manifest it was trained on
  std::string pretrained_weights;  ///< the backbone weights it started from ("" = none)
  SplitCounts patches, patients;
  uint64_t seed = 0;
  int best_epoch = -1;             ///< the epoch whose weights were kept
  std::string note;                ///< free text, e.g. what a checkpoint monitored
};

struct ModelCard {
  models::ClassifierOptions classifier;  ///< backbone, head and their options
  data::Preprocessing preprocessing;
  std::vector<std::string> class_names = idc_class_names();
  double threshold = 0.5;                ///< decision threshold on P(class 1)
  std::string metrics_json = "{}";       ///< the run's metrics at export (metrics.json's content)
  Provenance provenance;
  std::string histocnn_version;          ///< set by to_json() to the writing library's version

  /// model.json text. Throws std::invalid_argument when a field is out of range.
  std::string to_json() const;
  /// Parses and validates model.json; `source` (a path) names the file in error messages.
  static ModelCard from_json(const std::string& text, const std::string& source = "model.json");

  /// The test ROC-AUC recorded at export, when there is one.
  std::optional<double> test_roc_auc() const;
  void validate(const std::string& source = "model card") const;
};

/// The model.json format this library writes (and the newest it reads).
constexpr int kModelCardFormatVersion = 1;

}  // namespace histocnn::inference
