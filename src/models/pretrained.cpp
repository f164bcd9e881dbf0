#include "histocnn/models/pretrained.h"

#include "histocnn/models/keras_weights.h"

#include "histocnn/core/error.h"

#include <cstdlib>

namespace histocnn::models {

namespace fs = std::filesystem;

const std::vector<KnownWeights>& known_weights() {
  static const std::vector<KnownWeights> known = {
      {"mobilenet_v2", "mobilenet_v2_1.0_224_quant/mobilenet_v2_1.0_224.torchvision.safetensors", "inception",
       "MobileNetV2 1.0/224 ImageNet (TF-slim, quantisation-aware; the TF Lite hosted model "
       "mobilenet_v2_1.0_224_quant, Apache-2.0), dequantised to float32 with torchvision names, BatchNorm folded"},
      {"squeezenet1_1", "squeezenet1_1_notop/squeezenet1_1_features.torchvision.safetensors", "caffe",
       "SqueezeNet 1.1 ImageNet feature extractor (DeepScale's Caffe model via the MIT-licensed Keras port "
       "rcmalli/keras-squeezenet, file squeezenet_weights_tf_dim_ordering_tf_kernels_notop.h5), converted to "
       "torchvision names with RGB input; Caffe preprocessing (0..255 minus the mean pixel)"},
  };
  return known;
}

std::vector<fs::path> weight_search_dirs() {
  std::vector<fs::path> dirs;
  if (const char* env = std::getenv("HISTOCNN_WEIGHTS_DIR"); env && *env) dirs.emplace_back(env);
  if (const char* home = std::getenv("HOME"); home && *home) dirs.push_back(fs::path(home) / ".cache/histocnn/weights");
  return dirs;
}

PretrainedWeights resolve_weights(const std::string& spec, const std::string& backbone) {
  PretrainedWeights out;
  if (spec.empty() || spec == "none") return out;
  if (spec == "imagenet") {
    const KnownWeights* entry = nullptr;
    for (const auto& k : known_weights()) {
      if (k.backbone == backbone) entry = &k;
    }
    HISTOCNN_CHECK(entry, "no ImageNet weights are known for backbone '{}'; pass a safetensors file with "
                   "torchvision parameter names instead", backbone);
    std::string searched;
    for (const auto& dir : weight_search_dirs()) {
      for (const auto& candidate : {dir / entry->relative_path, dir / fs::path(entry->relative_path).filename()}) {
        if (fs::exists(candidate)) {
          out.path = candidate;
          out.normalisation = entry->normalisation;
          out.description = entry->description;
          return out;
        }
        searched += "\n  " + candidate.string();
      }
    }
    ::histocnn::throw_not_found(fmt::format("ImageNet weights for '{}' were not found. Looked for:{}\nPut the file '{}' ({}) in one of "
                  "those places, or set HISTOCNN_WEIGHTS_DIR to the folder that holds it.",
                  backbone, searched, fs::path(entry->relative_path).filename().string(), entry->description));
  }
  out.path = spec;
  HISTOCNN_CHECK_FOUND(fs::exists(out.path), "weights file '{}' does not exist; pass a safetensors file, 'imagenet' or "
                 "nothing (random initialisation)", spec);
  if (is_keras_h5(out.path)) out.normalisation = keras_h5_normalisation(backbone);
  for (const auto& k : known_weights()) {
    if (fs::path(k.relative_path).filename() == out.path.filename()) {
      out.normalisation = k.normalisation;
      out.description = k.description;
    }
  }
  return out;
}

}  // namespace histocnn::models
