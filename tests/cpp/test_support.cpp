#include "test_support.h"

#include <fmt/format.h>

#include <stdexcept>

#include "histocnn/data/manifest.h"

#include <cstdlib>
#include <fstream>
#include <random>

namespace histocnn::test {

TempDir::TempDir(const std::string& prefix) {
  std::random_device rd;
  auto base = std::filesystem::temp_directory_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = base / (prefix + "-" + std::to_string(rd()));
    if (std::filesystem::create_directory(candidate)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {

std::filesystem::path required_dir(const char* variable, const char* entry) {
  const char* value = std::getenv(variable);
  if (!value || !*value || !std::filesystem::exists(value)) {
    throw std::runtime_error(fmt::format("{} is not set or does not exist: this test runs through ctest's {} "
                                         "entry, which is registered only when the folder exists", variable, entry));
  }
  return value;
}

}  // namespace

std::filesystem::path real_data_dir() { return required_dir("HISTOCNN_DATA_DIR", "cpp_real_data"); }

std::filesystem::path slides_dir() { return required_dir("HISTOCNN_SLIDES_DIR", "cpp_slides"); }

std::filesystem::path shared_weight(const std::string& relative) {
  auto p = required_dir("HISTOCNN_WEIGHTS_DIR", "cpp_weights") / relative;
  if (!std::filesystem::exists(p)) {
    throw std::runtime_error(fmt::format("'{}' is missing from HISTOCNN_WEIGHTS_DIR", p.string()));
  }
  return p;
}

void write_bytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

data::SyntheticOptions synthetic_options(int patients, int per_patient) {
  data::SyntheticOptions o;
  o.patients = patients;
  o.patches_per_patient = per_patient;
  return o;
}

std::filesystem::path synthetic_folder(const TempDir& dir, data::SyntheticOptions options) {
  data::generate_synthetic(dir / "data", options);
  return dir / "data";
}

data::PatchDataset synthetic_dataset(const TempDir& dir, data::SyntheticOptions options, int image_size) {
  data::Preprocessing pre;
  pre.image_size = image_size;
  return data::PatchDataset(data::scan_directory(synthetic_folder(dir, options)).manifest, pre);
}

ScopedEnv::ScopedEnv(const std::map<std::string, const char*>& vars) {
  for (const auto& [k, v] : vars) {
    const char* old = std::getenv(k.c_str());
    saved_[k] = old ? std::optional<std::string>(old) : std::nullopt;
    if (v) ::setenv(k.c_str(), v, 1); else ::unsetenv(k.c_str());
  }
}

ScopedEnv::~ScopedEnv() {
  for (const auto& [k, v] : saved_) {
    if (v) ::setenv(k.c_str(), v->c_str(), 1); else ::unsetenv(k.c_str());
  }
}

}  // namespace histocnn::test
