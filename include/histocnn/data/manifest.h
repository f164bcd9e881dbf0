#pragma once
// The list of patches a run works on: one row per PNG file, with its patient, label, position and
// split, and the folder the paths are relative to.
//
//   auto report = histocnn::data::scan_directory("data/idc");     // <patient>/<C>/<file>.png
//   const auto& m = report.manifest;
//   fmt::print("{} patches, {} patients, {} positive\n", m.size(), m.patients().size(),
//              m.class_counts()[1]);
//   m.save_csv("runs/1/manifest.csv");
//   auto again = histocnn::data::Manifest::load_csv("runs/1/manifest.csv", "data/idc");
//   auto train = again.subset("train");
//
// CSV format (written): a header `path,patient,label,x,y,split`, one row per patch, '/' separated
// paths relative to the root. Reading finds columns by header name, so the dataset's own
// `manifest.csv` (path,patient_id,label,x,y,width,height,...) loads too; extra columns are
// ignored. When the patient, x or y columns are absent they are taken from the file name.
#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::data {

struct PatchRecord {
  std::string path;     // relative to the manifest root, '/' separated
  std::string patient;
  int label = 0;        // 0 = IDC-negative, 1 = IDC-positive
  int x = 0;
  int y = 0;
  std::string split;    // "", "train", "val" or "test"
};

class Manifest {
 public:
  Manifest() = default;
  /// Throws std::invalid_argument for a label other than 0/1 or an unknown split name.
  Manifest(std::filesystem::path root, std::vector<PatchRecord> rows);

  const std::filesystem::path& root() const { return root_; }
  const std::vector<PatchRecord>& rows() const { return rows_; }
  size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }

  /// root / rows()[i].path. Throws std::out_of_range for a bad index.
  std::filesystem::path absolute_path(size_t i) const;
  /// Sorted unique patient ids.
  std::vector<std::string> patients() const;
  /// {negatives, positives}.
  std::array<int64_t, 2> class_counts() const;
  /// The rows whose split equals `split` ("" selects unassigned rows), in their order.
  Manifest subset(const std::string& split) const;
  /// Whether every row, no row or only some rows have a split assigned.
  enum class SplitState { none, complete, partial };
  SplitState split_state() const;
  /// The rows of one split for scoring a model: "all" takes every row; "train", "val" or "test"
  /// need every row assigned (a manifest without splits would mix training patients into a test
  /// score, and a partly assigned one is ambiguous): otherwise std::invalid_argument says what to do.
  Manifest select_split(const std::string& split) const;
  /// The rows for which `keep` is true, in their order.
  Manifest filter(const std::function<bool(const PatchRecord&)>& keep) const;

  /// Writes `path,patient,label,x,y,split` atomically (temporary file + rename).
  void save_csv(const std::filesystem::path& csv) const;
  /// Reads a manifest CSV. `root` defaults to the CSV's folder. Throws std::runtime_error when the
  /// file cannot be read and std::invalid_argument, naming file, line and column, for bad content.
  static Manifest load_csv(const std::filesystem::path& csv,
                           std::optional<std::filesystem::path> root = {});

 private:
  std::filesystem::path root_;
  std::vector<PatchRecord> rows_;
};

struct ScanReport {
  Manifest manifest;
  /// "relative/path: reason" for every file that was not taken (hidden files and *.csv, *.md,
  /// *.txt, *.json are ignored, not rejected).
  std::vector<std::string> rejected;
  /// "relative/path: reason" for files whose Kaggle folders (<patient>/<C>/) disagree with the
  /// file name; these files are also in `rejected` and not in the manifest.
  std::vector<std::string> label_mismatches;
  /// "relative/path: same bytes as relative/other" for each file dropped because an earlier file
  /// (in sorted order) has the same content: downloads that merge two copies of the dataset hold
  /// every patch twice. Copies whose names disagree on patient or label are all rejected instead.
  std::vector<std::string> duplicates;
};

/// Walks `root` recursively in sorted order and takes every file whose name parses as a patch
/// (see filename.h). In the Kaggle layout `<patient>/<C>/<file>` the folder label (a folder named
/// 0 or 1) and the patient folder (an all-digit folder name above it) must agree with the file
/// name, otherwise the file is rejected and listed in label_mismatches. Rejections are logged as a
/// warning. Files with the same bytes as an earlier one are dropped and listed in `duplicates`.
/// Throws NotFoundError when `root` is missing, std::runtime_error when it is not a folder or holds
/// no patches.
ScanReport scan_directory(const std::filesystem::path& root);

/// Joins manifests of several folders into one whose root is their deepest common folder (paths
/// are re-rooted, e.g. `idc_real/10253/0/...`). A patient id found in two of them is an error that
/// names the patient and both folders: the split is by patient, and one patient in two folders
/// would be split as one while its patches might be copies.
Manifest join_manifests(const std::vector<Manifest>& parts);

}  // namespace histocnn::data
