#pragma once
// The on-disk model bundle: <model>/<version>/model.safetensors + model.json.
//
//   histocnn::io::write_bundle("models/idc/3", weights, json_text);
//   auto dir = histocnn::io::resolve_bundle_dir("models/idc");    // -> models/idc/3 (newest)
//   auto bundle = histocnn::io::read_bundle(dir);
//
// model.json is written last, so a version folder without it is incomplete (a crash mid-write)
// and is skipped when looking for the newest version. Both files are written atomically.
#include "histocnn/io/safetensors.h"

#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::io {

constexpr int kBundleFormatVersion = 1;

struct BundleFiles {
  TensorMap weights;
  std::string json;
  std::filesystem::path directory;
};

void write_bundle(const std::filesystem::path& version_dir, const TensorMap& weights, const std::string& json);
BundleFiles read_bundle(const std::filesystem::path& dir);

/// Numeric version folders of a model folder that hold a complete bundle, ascending.
std::vector<int64_t> list_versions(const std::filesystem::path& model_dir);
/// `dir` itself when it holds model.json, else its newest complete numeric version.
/// Throws std::invalid_argument naming the folder when neither exists.
std::filesystem::path resolve_bundle_dir(const std::filesystem::path& dir);

}  // namespace histocnn::io
