#pragma once
// Where published backbone weights are found, and what input normalisation they expect.
//
//   auto w = histocnn::models::resolve_weights("imagenet", "mobilenet_v2");
//   model->load_backbone_weights(w.path);          // w.normalisation == "inception"
//
// "imagenet" looks, in order, in $HISTOCNN_WEIGHTS_DIR and in ~/.cache/histocnn/weights for the
// backbone's known file (either at its relative path or directly in the folder). When it is not
// there the error says which file to put where. Any other spec is taken as a file path.
#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::models {

struct PretrainedWeights {
  std::filesystem::path path;
  std::string normalisation;  ///< "imagenet", "inception", or "" when unknown (use the backbone's)
  std::string description;
};

struct KnownWeights {
  std::string backbone;
  std::string relative_path;  ///< inside a weights folder
  std::string normalisation;
  std::string description;    ///< what it is and where it is published
};

/// The weight files this version knows about.
const std::vector<KnownWeights>& known_weights();

/// The folders searched for "imagenet" weights, in order (existing or not).
std::vector<std::filesystem::path> weight_search_dirs();

/// "" -> empty result (random initialisation); "imagenet" -> the known file for the backbone;
/// otherwise a path, which must exist. Throws std::invalid_argument with instructions otherwise.
PretrainedWeights resolve_weights(const std::string& spec, const std::string& backbone);

}  // namespace histocnn::models
