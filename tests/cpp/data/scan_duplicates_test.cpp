#include "histocnn/data/duplicates.h"
#include "histocnn/data/manifest.h"
#include "histocnn/data/synthetic.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

using namespace histocnn;
namespace fs = std::filesystem;

TEST_CASE("scan_directory drops files with the same bytes as another, as the merged Kaggle download holds",
          "[data]") {
  test::TempDir tmp;
  const fs::path root = tmp / "tree";
  data::generate_synthetic(root, test::synthetic_options(3, 10));
  const auto original = data::scan_directory(root).manifest;
  REQUIRE(original.size() > 0);
  CHECK(data::scan_directory(root).duplicates.empty());  // distinct patches are all kept

  // The "amalgamated" download: every patient folder a second time under IDC_regular_ps50_idx5/.
  for (const auto& r : original.rows()) {
    const fs::path copy = root / "IDC_regular_ps50_idx5" / r.path;
    fs::create_directories(copy.parent_path());
    fs::copy_file(root / r.path, copy);
  }
  const auto report = data::scan_directory(root);
  CHECK(report.manifest.size() == original.size());
  REQUIRE(report.duplicates.size() == original.size());
  for (size_t i = 0; i < original.size(); ++i) {
    CHECK(report.manifest.rows()[i].path == original.rows()[i].path);  // the first in sorted order is kept
  }
  CHECK(report.duplicates.front() == "IDC_regular_ps50_idx5/" + original.rows().front().path + ": same bytes as " +
                                         original.rows().front().path);

  // The same image under another patient's name: which is right is unknown, so neither is taken.
  const auto& first = original.rows().front();
  const auto other = std::find_if(original.rows().begin(), original.rows().end(),
                                  [&](const data::PatchRecord& r) { return r.patient != first.patient; });
  REQUIRE(other != original.rows().end());
  const fs::path impostor = root / other->patient / std::to_string(first.label) /
                            fmt::format("{}_idx5_x9999_y9999_class{}.png", other->patient, first.label);
  fs::copy_file(root / first.path, impostor);
  const auto conflicted = data::scan_directory(root);
  CHECK(conflicted.manifest.size() == original.size() - 1);
  for (const auto& r : conflicted.manifest.rows()) CHECK(r.path != first.path);
  CHECK(std::any_of(conflicted.rejected.begin(), conflicted.rejected.end(), [&](const std::string& s) {
    return s.find("under another patient or label") != std::string::npos;
  }));
}

TEST_CASE("scan_directory follows symlinked folders, and a link loop ends instead of hanging", "[data]") {
  test::TempDir tmp;
  data::generate_synthetic(tmp / "store", test::synthetic_options(2, 6));
  const auto stored = data::scan_directory(tmp / "store").manifest;
  fs::create_directories(tmp / "linked");
  for (const auto& patient : stored.patients()) fs::create_directory_symlink(tmp / "store" / patient, tmp / "linked" / patient);
  const auto linked = data::scan_directory(tmp / "linked").manifest;
  CHECK(linked.size() == stored.size());
  CHECK(linked.patients() == stored.patients());

  // A loop ends where the system stops resolving links (ELOOP); what it found twice has the same
  // bytes, so it is dropped as a duplicate and the patients stay as they are.
  fs::create_directory_symlink(tmp / "linked", tmp / "linked" / "loop");
  const auto looped = data::scan_directory(tmp / "linked");
  CHECK(looped.manifest.size() == stored.size());
  CHECK_FALSE(looped.duplicates.empty());
}

TEST_CASE("drop_duplicate_files on a manifest: copies dropped, conflicting copies rejected, order kept, "
          "unreadable files kept or named", "[data]") {
  test::TempDir tmp;
  const fs::path root = tmp / "tree";
  data::generate_synthetic(root, test::synthetic_options(2, 6));
  const auto original = data::scan_directory(root).manifest;
  REQUIRE(original.size() >= 4);
  // Rows in reverse path order, with a copy of row 0 under its own patient (a duplicate), a copy
  // of row 1 under another label (a conflict: both go) and a file that does not exist.
  auto rows = original.rows();
  std::reverse(rows.begin(), rows.end());
  const auto& keep = original.rows()[0];
  const auto& clash = original.rows()[1];
  fs::create_directories(root / "copy");
  fs::copy_file(root / keep.path, root / "copy/a.png");
  fs::copy_file(root / clash.path, root / "copy/b.png");
  rows.push_back({"copy/a.png", keep.patient, keep.label, 0, 0, ""});
  rows.push_back({"copy/b.png", clash.patient, 1 - clash.label, 0, 0, ""});
  rows.push_back({"missing.png", keep.patient, 0, 0, 0, ""});
  const data::Manifest with_copies(root, rows);

  data::ScanReport report;
  const auto unique = data::drop_duplicate_files(with_copies, report, /*keep_unreadable=*/true);
  std::vector<std::string> expected;
  for (const auto& r : rows) {
    if (r.path != "copy/a.png" && r.path != "copy/b.png" && r.path != clash.path) expected.push_back(r.path);
  }
  std::vector<std::string> got;
  for (const auto& r : unique.rows()) got.push_back(r.path);
  CHECK(got == expected);  // the input's order, the missing file kept for its reader to report
  REQUIRE(report.duplicates.size() == 2);
  CHECK(std::any_of(report.duplicates.begin(), report.duplicates.end(),
                    [&](const std::string& s) { return s == "copy/a.png: same bytes as " + keep.path; }));
  REQUIRE(report.rejected.size() == 1);
  CHECK(report.rejected.front().find("copy/b.png: the same image as " + clash.path) == 0);

  data::ScanReport strict;
  CHECK_THROWS_WITH(data::drop_duplicate_files(with_copies, strict), Catch::Contains("missing.png"));
}
