#pragma once
// A classifier on disk: <dir>/model.safetensors + model.json (the model card), and backbone.pt for
// a TorchScript backbone. Written atomically, model.json last, so a folder without model.json is
// incomplete and a server never sees half a model.
//
//   histocnn::inference::save_model(model, card, "models/idc/3");
//   auto saved = histocnn::inference::load_model("models/idc");   // newest complete version
//   saved.model->forward(x); saved.card.threshold; saved.directory;   // -> models/idc/3
#include "histocnn/inference/model_card.h"
#include "histocnn/models/classifier.h"

#include <filesystem>

namespace histocnn::inference {

struct SavedModel {
  models::Classifier model{nullptr};  ///< in eval mode, on the requested device
  ModelCard card;
  std::filesystem::path directory;    ///< the version folder it was read from
};

/// Writes a bundle into `version_dir`; the card's classifier options are taken from the model.
void save_model(const models::Classifier& model, ModelCard card, const std::filesystem::path& version_dir);
/// Reads a bundle: `dir` is a version folder or a model folder whose newest complete version is
/// read. Errors name the file and say what to do.
SavedModel load_model(const std::filesystem::path& dir, const torch::Device& device = torch::kCPU);
/// Only the card of a bundle (no weights read): for listings and status pages.
ModelCard read_model_card(const std::filesystem::path& dir);

}  // namespace histocnn::inference
