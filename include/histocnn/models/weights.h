#pragma once
// Moving weights between modules and safetensors files, by parameter name.
//
//   auto report = histocnn::models::load_weights(*backbone, "mobilenet_v2.safetensors");
//   std::cout << report.summary();
//   histocnn::models::save_weights(*model, "model.safetensors");
//
// Strict loading (the default) throws std::invalid_argument listing every missing key,
// unexpected key and shape mismatch; strict = false loads what matches and reports the rest.
#include "histocnn/io/safetensors.h"

#include <torch/nn/module.h>

#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::models {

/// Parameters and buffers by their dotted names (detached, on their current device).
io::TensorMap state_dict(const torch::nn::Module& module);

struct LoadReport {
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     ///< in the module, not in the file
  std::vector<std::string> unexpected;  ///< in the file, not in the module
  std::vector<std::string> mismatched;  ///< same name, different shape ("name: file [..] vs model [..]")
  std::vector<std::string> ignored;     ///< in the file, deliberately skipped (e.g. an ImageNet top)
  bool complete() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary() const;
};

struct LoadOptions {
  bool strict = true;
  /// Keys in the file starting with one of these are skipped (and listed in `ignored`).
  std::vector<std::string> ignore_prefixes;
  /// Name used in messages (usually the file path).
  std::string source = "weights";
};

/// Copies matching tensors into the module's parameters and buffers (dtype converted, device kept).
LoadReport load_state_dict(torch::nn::Module& module, const io::TensorMap& tensors, const LoadOptions& options = {});
/// Reads a safetensors file and loads it; a Keras .h5 file loads into a backbone through
/// load_keras_weights (keras_weights.h).
LoadReport load_weights(torch::nn::Module& module, const std::filesystem::path& file, LoadOptions options = {});
/// Writes the module's state dict to a safetensors file (atomically).
void save_weights(const torch::nn::Module& module, const std::filesystem::path& file,
                  const std::map<std::string, std::string>& metadata = {});

}  // namespace histocnn::models
