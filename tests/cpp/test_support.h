#pragma once
// Helpers shared by the Catch2 tests: temporary folders and the optional real data and weights.
#include <filesystem>
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

/// The folder named by the environment variable, if set and present.
std::optional<std::filesystem::path> env_dir(const char* variable);

/// HISTOCNN_WEIGHTS_DIR/<relative>, if it exists.
std::optional<std::filesystem::path> shared_weight(const std::string& relative);

/// Writes `bytes` to `path` (binary).
void write_bytes(const std::filesystem::path& path, const std::string& bytes);

}  // namespace histocnn::test
