#pragma once
// Helpers shared by the Catch2 tests: temporary folders and the optional real data and weights.
#include "histocnn/data/dataset.h"
#include "histocnn/data/synthetic.h"

#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace histocnn::test {

/// A fresh folder under the system temp dir, removed when the object goes out of scope.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "histocnn-test");
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// The real patches (HISTOCNN_DATA_DIR), for test cases tagged [.real-data]. Those are hidden from
/// a plain run and registered with ctest (cpp_real_data) only when the data exists, so here its
/// absence is a failure that says so, never a silent pass.
std::filesystem::path real_data_dir();

/// HISTOCNN_WEIGHTS_DIR/<relative>, for test cases tagged [.weights] (ctest's cpp_weights, registered
/// only when the weights exist); fails naming the file when it is missing.
std::filesystem::path shared_weight(const std::string& relative);

/// The real slides (HISTOCNN_SLIDES_DIR), for test cases tagged [.slides] (ctest's cpp_slides,
/// registered only when the folder exists); fails saying so when it is missing.
std::filesystem::path slides_dir();

/// Synthetic-data options: `patients` patients with `per_patient` patches each, the rest default.
data::SyntheticOptions synthetic_options(int patients, int per_patient);
/// Synthetic patches written to <dir>/data (see data::generate_synthetic); returns that folder.
std::filesystem::path synthetic_folder(const TempDir& dir, data::SyntheticOptions options);
/// All patches of synthetic_folder(dir, options) as a dataset at `image_size` px.
data::PatchDataset synthetic_dataset(const TempDir& dir, data::SyntheticOptions options, int image_size);

/// Sets (a value) or unsets (nullptr) environment variables for one scope, restoring them after it.
class ScopedEnv {
 public:
  explicit ScopedEnv(const std::map<std::string, const char*>& vars);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::map<std::string, std::optional<std::string>> saved_;
};

/// Writes `bytes` to `path` (binary).
void write_bytes(const std::filesystem::path& path, const std::string& bytes);

}  // namespace histocnn::test
