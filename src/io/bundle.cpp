#include "histocnn/io/bundle.h"

#include "histocnn/core/error.h"
#include "histocnn/io/atomic_file.h"

#include <algorithm>

namespace histocnn::io {

namespace fs = std::filesystem;

void write_bundle(const fs::path& version_dir, const TensorMap& weights, const std::string& json) {
  save_safetensors(version_dir / "model.safetensors", weights);
  write_file_atomic(version_dir / "model.json", json);
}

std::vector<int64_t> list_versions(const fs::path& model_dir) {
  std::vector<int64_t> versions;
  std::error_code ec;
  if (!fs::is_directory(model_dir, ec)) return versions;
  for (const auto& entry : fs::directory_iterator(model_dir, ec)) {
    const auto name = entry.path().filename().string();
    if (!entry.is_directory() || name.empty() || name.size() > 18 ||
        !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    if (fs::exists(entry.path() / "model.json") && fs::exists(entry.path() / "model.safetensors")) {
      versions.push_back(std::stoll(name));
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

fs::path resolve_bundle_dir(const fs::path& dir) {
  HISTOCNN_CHECK_FOUND(fs::exists(dir), "model folder '{}' does not exist; pass the folder that holds model.json "
                 "(or numbered version folders), e.g. runs/<name>/model", dir.string());
  if (fs::exists(dir / "model.json")) return dir;
  auto versions = list_versions(dir);
  HISTOCNN_CHECK(!versions.empty(), "'{}' holds neither model.json nor a numbered version folder with "
                 "model.json and model.safetensors; is this a histocnn model folder?", dir.string());
  return dir / std::to_string(versions.back());
}

BundleFiles read_bundle(const fs::path& dir) {
  BundleFiles out;
  out.directory = resolve_bundle_dir(dir);
  out.json = read_file(out.directory / "model.json");
  HISTOCNN_CHECK(fs::exists(out.directory / "model.safetensors"), "'{}' has model.json but no model.safetensors",
                 out.directory.string());
  out.weights = load_safetensors(out.directory / "model.safetensors").tensors;
  return out;
}

}  // namespace histocnn::io
