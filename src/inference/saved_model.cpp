#include "histocnn/inference/saved_model.h"

#include "histocnn/core/error.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/bundle.h"
#include "histocnn/models/torchscript.h"
#include "histocnn/models/weights.h"

#include <torch/torch.h>

namespace histocnn::inference {

namespace fs = std::filesystem;

void save_model(const models::Classifier& model, ModelCard card, const fs::path& version_dir) {
  card.classifier = model->options();
  if (models::is_torchscript_backbone(card.classifier.backbone())) {
    // The module file travels inside the bundle (written before model.json, which marks the bundle
    // complete), named relative to it, so the bundle can be moved or copied to a server.
    fs::create_directories(version_dir);
    io::write_file_atomic(version_dir / models::kBundleTorchScriptFile,
                          io::read_file(models::torchscript_file(card.classifier.backbone())));
    card.classifier.backbone(std::string(models::kTorchScriptPrefix) + models::kBundleTorchScriptFile);
  }
  const std::string json = card.to_json();
  io::TensorMap cpu;
  for (const auto& kv : models::state_dict(*model)) cpu[kv.first] = kv.second.to(torch::kCPU).contiguous();
  io::write_bundle(version_dir, cpu, json);
}

namespace {

ModelCard card_of(const io::BundleFiles& files) {
  auto card = ModelCard::from_json(files.json, (files.directory / "model.json").string());
  const auto& backbone = card.classifier.backbone();
  if (models::is_torchscript_backbone(backbone) && models::torchscript_file(backbone).is_relative()) {
    card.classifier.backbone(models::kTorchScriptPrefix + (files.directory / models::torchscript_file(backbone)).string());
  }
  return card;
}

}  // namespace

ModelCard read_model_card(const fs::path& dir) {
  io::BundleFiles files;
  files.directory = io::resolve_bundle_dir(dir);
  files.json = io::read_file(files.directory / "model.json");
  return card_of(files);
}

SavedModel load_model(const fs::path& dir, const torch::Device& device) {
  auto files = io::read_bundle(dir);
  SavedModel out;
  out.card = card_of(files);
  out.directory = files.directory;
  out.model = models::Classifier(out.card.classifier);
  models::LoadOptions lo;
  lo.source = (files.directory / "model.safetensors").string();
  models::load_state_dict(*out.model, files.weights, lo);
  out.model->to(device);
  out.model->eval();
  return out;
}

}  // namespace histocnn::inference
