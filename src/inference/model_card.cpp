#include "histocnn/inference/model_card.h"

#include "histocnn/core/error.h"
#include "histocnn/core/version.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace histocnn::inference {

namespace {

using json = nlohmann::json;

json counts_json(const SplitCounts& c) { return {{"train", c.train}, {"val", c.val}, {"test", c.test}}; }

SplitCounts counts_from(const json& j) {
  SplitCounts c;
  if (!j.is_object()) return c;
  c.train = j.value("train", int64_t{0});
  c.val = j.value("val", int64_t{0});
  c.test = j.value("test", int64_t{0});
  return c;
}

}  // namespace

const std::vector<std::string>& idc_class_names() {
  static const std::vector<std::string> names = {"IDC-negative", "IDC-positive"};
  return names;
}

void ModelCard::validate(const std::string& source) const {
  preprocessing.validate();
  HISTOCNN_CHECK(static_cast<int64_t>(class_names.size()) == classifier.num_classes(),
                 "{}: {} class names for a classifier of {} classes", source, class_names.size(),
                 classifier.num_classes());
  HISTOCNN_CHECK(std::isfinite(threshold) && threshold > 0 && threshold < 1,
                 "{}: threshold must be in (0, 1), got {}", source, threshold);
}

std::string ModelCard::to_json() const {
  validate();
  json metrics;
  try {
    metrics = json::parse(metrics_json);
  } catch (const std::exception& e) {
    HISTOCNN_FAIL("model card metrics are not valid JSON: {}", e.what());
  }
  json j = {
      {"format", "histocnn.model"},
      {"format_version", kModelCardFormatVersion},
      {"histocnn_version", version()},
      {"backbone", classifier.backbone()},
      {"classifier", json::parse(classifier.to_json())},
      {"preprocessing", json::parse(preprocessing.to_json())},
      {"class_names", class_names},
      {"threshold", threshold},
      {"provenance",
       {{"created", provenance.created},
        {"data", provenance.data},
        {"pretrained_weights", provenance.pretrained_weights},
        {"patches", counts_json(provenance.patches)},
        {"patients", counts_json(provenance.patients)},
        {"seed", provenance.seed},
        {"best_epoch", provenance.best_epoch},
        {"note", provenance.note}}},
      {"metrics", metrics},
  };
  return j.dump(2);
}

ModelCard ModelCard::from_json(const std::string& text, const std::string& source) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    HISTOCNN_FAIL("'{}' is not valid JSON ({}); the bundle is damaged, re-export the model", source, e.what());
  }
  HISTOCNN_CHECK(j.is_object() && j.value("format", "") == "histocnn.model",
                 "'{}' is not a histocnn model.json (no \"format\": \"histocnn.model\")", source);
  const int format_version = j.value("format_version", 0);
  HISTOCNN_CHECK(format_version >= 1 && format_version <= kModelCardFormatVersion,
                 "'{}' has format_version {}, this histocnn reads 1..{}; upgrade histocnn", source, format_version,
                 kModelCardFormatVersion);
  HISTOCNN_CHECK(j.contains("classifier"), "'{}' lacks the \"classifier\" options", source);
  HISTOCNN_CHECK(j.contains("preprocessing"),
                 "'{}' records no preprocessing; re-export the model with histocnn train", source);
  ModelCard card;
  card.classifier = models::ClassifierOptions::from_json(j["classifier"].dump());
  card.preprocessing = data::Preprocessing::from_json(j["preprocessing"].dump());
  try {
    if (j.contains("class_names")) card.class_names = j["class_names"].get<std::vector<std::string>>();
    card.threshold = j.value("threshold", 0.5);
    card.histocnn_version = j.value("histocnn_version", "");
    if (j.contains("metrics")) card.metrics_json = j["metrics"].dump();
    const json p = j.value("provenance", json::object());
    card.provenance.created = p.value("created", "");
    card.provenance.data = p.value("data", "");
    card.provenance.pretrained_weights = p.value("pretrained_weights", "");
    card.provenance.patches = counts_from(p.value("patches", json()));
    card.provenance.patients = counts_from(p.value("patients", json()));
    card.provenance.seed = p.value("seed", uint64_t{0});
    card.provenance.best_epoch = p.value("best_epoch", -1);
    card.provenance.note = p.value("note", "");
  } catch (const json::exception& e) {
    HISTOCNN_FAIL("'{}' has a field of the wrong type ({})", source, e.what());
  }
  card.validate(source);
  return card;
}

std::optional<double> ModelCard::test_roc_auc() const {
  const auto j = json::parse(metrics_json);
  if (j.contains("test") && j["test"].contains("roc_auc") && j["test"]["roc_auc"].is_number()) {
    return j["test"]["roc_auc"].get<double>();
  }
  return std::nullopt;
}

}  // namespace histocnn::inference
