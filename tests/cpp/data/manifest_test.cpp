#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <tuple>

#include "histocnn/data/manifest.h"
#include "histocnn/data/synthetic.h"
#include "test_support.h"

namespace fs = std::filesystem;
using histocnn::data::Manifest;
using histocnn::data::PatchRecord;
using histocnn::data::scan_directory;
using histocnn::test::TempDir;

namespace {

histocnn::data::SyntheticOptions small_options() {
  histocnn::data::SyntheticOptions o;
  o.patients = 3;
  o.patches_per_patient = 12;
  o.border_patches = 3;
  o.seed = 3;
  return o;
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

template <typename F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

auto key(const PatchRecord& r) { return std::tie(r.path, r.patient, r.label, r.x, r.y, r.split); }

// What a data folder's manifest.csv says it holds, read with a plain comma split (the file has no
// quoted fields) so that the library's CSV reader is not its own oracle.
struct ManifestCounts {
  int64_t rows = 0;
  std::set<std::string> patients;
  std::array<int64_t, 2> class_counts{0, 0};
  std::vector<std::string> malformed;  // lines this plain reader cannot take
};

std::vector<std::string> split_commas(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ',')) fields.push_back(field);
  if (!line.empty() && line.back() == ',') fields.emplace_back();
  return fields;
}

ManifestCounts count_manifest_csv(const fs::path& csv) {
  std::ifstream in(csv, std::ios::binary);
  REQUIRE(in.good());
  std::string line;
  REQUIRE(std::getline(in, line));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const auto header = split_commas(line);
  const auto column = [&](const std::string& name) {
    const auto it = std::find(header.begin(), header.end(), name);
    REQUIRE(it != header.end());
    return static_cast<size_t>(it - header.begin());
  };
  const size_t patient = column("patient_id"), label = column("label");
  ManifestCounts counts;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const auto fields = split_commas(line);
    if (line.find('"') != std::string::npos || fields.size() != header.size() ||
        (fields[label] != "0" && fields[label] != "1")) {
      counts.malformed.push_back(line);
      continue;
    }
    ++counts.rows;
    counts.patients.insert(fields[patient]);
    ++counts.class_counts[fields[label] == "1" ? 1 : 0];
  }
  return counts;
}

int64_t count_png_files(const fs::path& root) {
  int64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    n += e.is_regular_file() && e.path().extension() == ".png" ? 1 : 0;
  }
  return n;
}

}  // namespace

TEST_CASE("scan_directory reads a synthetic Kaggle tree and round-trips through CSV", "[data]") {
  TempDir tmp;
  const fs::path root = tmp / "tree";
  const auto summary = histocnn::data::generate_synthetic(root, small_options());
  const auto report = scan_directory(root);
  const Manifest& m = report.manifest;

  CHECK(report.rejected.empty());
  CHECK(report.label_mismatches.empty());
  REQUIRE(static_cast<int64_t>(m.size()) == summary.written);
  CHECK(m.patients() == std::vector<std::string>{"90001", "90002", "90003"});
  CHECK(m.class_counts()[0] == summary.negatives);
  CHECK(m.class_counts()[1] == summary.positives);
  CHECK(std::is_sorted(m.rows().begin(), m.rows().end(),
                       [](const PatchRecord& a, const PatchRecord& b) { return a.path < b.path; }));
  for (size_t i = 0; i < m.size(); ++i) {
    const auto& r = m.rows()[i];
    INFO(r.path);
    CHECK(fs::is_regular_file(m.absolute_path(i)));
    CHECK(r.path == r.patient + "/" + std::to_string(r.label) + "/" + fs::path(r.path).filename().string());
    CHECK(r.split.empty());
  }
  CHECK_THROWS_AS(m.absolute_path(m.size()), std::out_of_range);

  // Save next to the data: the root defaults to the CSV's folder.
  const fs::path csv = root / "manifest.csv";
  m.save_csv(csv);
  const Manifest back = Manifest::load_csv(csv);
  CHECK(back.root() == root);
  REQUIRE(back.size() == m.size());
  for (size_t i = 0; i < m.size(); ++i) CHECK(key(back.rows()[i]) == key(m.rows()[i]));
  CHECK(back.absolute_path(0) == m.absolute_path(0));

  // The CSV sitting in the tree is ignored by a new scan, not rejected.
  CHECK(scan_directory(root).rejected.empty());

  // Saved elsewhere (e.g. in a run folder), with splits set: paths become relative to the CSV's
  // folder, so the patches are found with the default root.
  std::vector<PatchRecord> rows = m.rows();
  for (size_t i = 0; i < rows.size(); ++i) rows[i].split = i % 3 == 0 ? "test" : "train";
  const Manifest with_splits(root, rows);
  const fs::path other = tmp / "runs" / "m.csv";
  with_splits.save_csv(other);
  const Manifest back2 = Manifest::load_csv(other);
  CHECK(back2.rows()[0].path == "../tree/" + rows[0].path);
  REQUIRE(back2.size() == rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    CHECK(back2.rows()[i].split == rows[i].split);
    CHECK(back2.rows()[i].label == rows[i].label);
    CHECK(fs::equivalent(back2.absolute_path(i), with_splits.absolute_path(i)));
  }
  CHECK(back2.subset("test").size() == (rows.size() + 2) / 3);
  CHECK(fs::is_regular_file(back2.absolute_path(0)));
}

TEST_CASE("scan_directory reports rejected files and folder/label mismatches", "[data]") {
  TempDir tmp;
  const fs::path root = tmp / "tree";
  const auto summary = histocnn::data::generate_synthetic(root, small_options());
  const auto good = scan_directory(root).manifest;

  write_text(root / "README.md", "notes");                         // ignored
  write_text(root / "90001" / ".DS_Store", "x");                  // hidden: ignored
  write_text(root / ".cache" / "8863_idx5_x1_y1_class0.png", "");  // hidden folder: ignored
  write_text(root / "90001" / "0" / "bad_name.png", "x");
  write_text(root / "90001" / "0" / "90001_idx5_x1_y1_class0.jpg", "x");
  // A class-0 file in the class-1 folder, and a patient-90002 file in patient 90001's folder.
  const PatchRecord& neg = *std::find_if(good.rows().begin(), good.rows().end(),
                                         [](const PatchRecord& r) { return r.label == 0 && r.patient == "90001"; });
  const std::string neg_name = fs::path(neg.path).filename().string();
  fs::copy_file(root / neg.path, root / "90001" / "1" / neg_name);
  const PatchRecord& other = *std::find_if(good.rows().begin(), good.rows().end(),
                                           [](const PatchRecord& r) { return r.label == 0 && r.patient == "90002"; });
  const std::string other_name = fs::path(other.path).filename().string();
  fs::copy_file(root / other.path, root / "90001" / "0" / other_name);

  const auto report = scan_directory(root);
  CHECK(static_cast<int64_t>(report.manifest.size()) == summary.written);
  REQUIRE(report.label_mismatches.size() == 2);
  REQUIRE(report.rejected.size() == 4);
  auto rejected_has = [&](const std::string& s) {
    return std::any_of(report.rejected.begin(), report.rejected.end(),
                       [&](const std::string& r) { return contains(r, s); });
  };
  CHECK(rejected_has("90001/0/bad_name.png"));
  CHECK(rejected_has("90001/0/90001_idx5_x1_y1_class0.jpg"));
  CHECK(rejected_has("90001/1/" + neg_name));
  CHECK(rejected_has("90001/0/" + other_name));
  CHECK(contains(report.label_mismatches[0] + report.label_mismatches[1], "folder label 1"));
  CHECK(contains(report.label_mismatches[0] + report.label_mismatches[1], "patient folder 90001"));
  for (const auto& r : report.manifest.rows()) {
    CHECK(r.path != "90001/1/" + neg_name);
    CHECK(r.path != "90001/0/" + other_name);
  }
}

TEST_CASE("scan_directory errors name the path and the expected layout", "[data]") {
  TempDir tmp;
  const fs::path missing = tmp / "no-such-folder";
  std::string msg = message_of([&] { scan_directory(missing); });
  CHECK(contains(msg, missing.string()));
  CHECK(contains(msg, "does not exist"));
  CHECK_THROWS_AS(scan_directory(missing), std::runtime_error);

  const fs::path file = tmp / "a-file.png";
  write_text(file, "x");
  msg = message_of([&] { scan_directory(file); });
  CHECK(contains(msg, file.string()));
  CHECK(contains(msg, "not a folder"));

  const fs::path empty = tmp / "empty";
  fs::create_directories(empty);
  msg = message_of([&] { scan_directory(empty); });
  CHECK(contains(msg, empty.string()));
  CHECK(contains(msg, "_idx5_x<X>_y<Y>_class<C>.png"));
  CHECK_THROWS_AS(scan_directory(empty), std::runtime_error);

  const fs::path wrong = tmp / "wrong";
  write_text(wrong / "images" / "cat.jpg", "x");
  write_text(wrong / "images" / "8863_class1.png", "x");
  msg = message_of([&] { scan_directory(wrong); });
  CHECK(contains(msg, wrong.string()));
  CHECK(contains(msg, "2 file(s) were rejected"));
  CHECK(contains(msg, "images/cat.jpg"));
  CHECK(contains(msg, "images/8863_class1.png"));
}

TEST_CASE("Manifest accessors, subset and filter", "[data]") {
  std::vector<PatchRecord> rows = {
      {"b/0/b_idx5_x1_y1_class0.png", "b", 0, 1, 1, "train"},
      {"a/1/a_idx5_x1_y1_class1.png", "a", 1, 1, 1, "val"},
      {"a/0/a_idx5_x51_y1_class0.png", "a", 0, 51, 1, "train"},
      {"c/1/c_idx5_x1_y51_class1.png", "c", 1, 1, 51, ""},
  };
  const Manifest m("root", rows);
  CHECK(m.size() == 4);
  CHECK(m.patients() == std::vector<std::string>{"a", "b", "c"});
  CHECK(m.class_counts() == std::array<int64_t, 2>{2, 2});
  CHECK(m.subset("train").size() == 2);
  CHECK(m.subset("train").rows()[0].patient == "b");  // order kept
  CHECK(m.subset("val").size() == 1);
  CHECK(m.subset("test").size() == 0);
  CHECK(m.subset("").size() == 1);
  CHECK(m.subset("train").root() == m.root());
  CHECK_THROWS_AS(m.subset("training"), std::invalid_argument);
  CHECK(m.filter([](const PatchRecord& r) { return r.label == 1; }).patients() ==
        std::vector<std::string>{"a", "c"});
  CHECK(m.absolute_path(1) == fs::path("root") / "a/1/a_idx5_x1_y1_class1.png");

  rows[0].label = 2;
  CHECK_THROWS_AS(Manifest("root", rows), std::invalid_argument);
  rows[0].label = 0;
  rows[0].split = "holdout";
  CHECK_THROWS_AS(Manifest("root", rows), std::invalid_argument);
}

TEST_CASE("load_csv maps columns by name and reports malformed rows", "[data]") {
  TempDir tmp;
  const fs::path csv = tmp / "m.csv";

  SECTION("the dataset's own column names, extra columns, CRLF and quotes") {
    write_text(csv,
               "sha256,label,path,patient_id,x,y,width\r\n"
               "ab,1,\"p1/1/p1_idx5_x51_y1_class1.png\",p1,51,1,50\r\n"
               "cd,0,p1/0/p1_idx5_x1_y1_class0.png,\"p1\",1,1,42\r\n"
               "\r\n");
    const auto m = Manifest::load_csv(csv);
    REQUIRE(m.size() == 2);
    CHECK(m.root() == tmp.path());
    CHECK(m.rows()[0].path == "p1/1/p1_idx5_x51_y1_class1.png");
    CHECK(m.rows()[0].patient == "p1");
    CHECK(m.rows()[0].label == 1);
    CHECK(m.rows()[0].x == 51);
    CHECK(m.rows()[1].label == 0);
    CHECK(m.rows()[1].split.empty());
  }
  SECTION("patient and coordinates come from the file name when their columns are absent") {
    write_text(csv, "path,label\n9000/1/9000_idx5_x101_y151_class1.png,1\n");
    const auto m = Manifest::load_csv(csv, fs::path("elsewhere"));
    REQUIRE(m.size() == 1);
    CHECK(m.root() == fs::path("elsewhere"));
    CHECK(m.rows()[0].patient == "9000");
    CHECK(m.rows()[0].x == 101);
    CHECK(m.rows()[0].y == 151);
  }
  SECTION("a quoted path with a comma does not crash") {
    write_text(csv, "path,patient,label,x,y\n\"odd,name.png\",p,0,1,1\n");
    const auto m = Manifest::load_csv(csv);
    REQUIRE(m.size() == 1);
    CHECK(m.rows()[0].path == "odd,name.png");
  }
  SECTION("errors") {
    auto expect_error = [&](const std::string& text, std::initializer_list<const char*> parts) {
      write_text(csv, text);
      const std::string msg = message_of([&] { Manifest::load_csv(csv); });
      INFO(msg);
      CHECK(contains(msg, csv.string()));
      for (const char* p : parts) CHECK(contains(msg, p));
      CHECK_THROWS_AS(Manifest::load_csv(csv), std::invalid_argument);
    };
    expect_error("file,label\na.png,1\n", {"line 1", "'path'"});
    expect_error("path,patient,label,x,y\np/0/a.png,p,0,1,1\np/0/b.png,p\n", {"line 3", "column 'label'"});
    expect_error("path,patient,label,x,y\np/0/a.png,p,zero,1,1\n", {"line 2", "column 'label'", "integer", "zero"});
    expect_error("path,patient,label,x,y\np/0/a.png,p,2,1,1\n", {"line 2", "column 'label'", "0 or 1"});
    expect_error("path,patient,label,x,y\np/0/a.png,p,1,1.5,1\n", {"line 2", "column 'x'", "integer"});
    expect_error("path,patient,label,x,y,split\np/0/a.png,p,1,1,1,holdout\n", {"line 2", "column 'split'"});
    expect_error("path,label\nnot-a-patch.png,1\n", {"line 2", "patient"});
    expect_error("path,patient,label,x,y\n\"p/0/a.png,p,1,1,1\n", {"line 2", "quote"});
    expect_error("", {"empty"});
    CHECK_THROWS_AS(Manifest::load_csv(tmp / "missing.csv"), std::runtime_error);
    CHECK(contains(message_of([&] { Manifest::load_csv(tmp / "missing.csv"); }), "missing.csv"));
  }
}

TEST_CASE("scan_directory and load_csv on the real IDC data", "[data][.real-data]") {
  const auto dir = histocnn::test::real_data_dir();
  const auto report = scan_directory(dir);
  const Manifest& m = report.manifest;
  // The expected numbers come from the folder's own manifest.csv, read here without the library.
  const ManifestCounts expected = count_manifest_csv(dir / "manifest.csv");
  REQUIRE(expected.malformed.empty());
  REQUIRE(expected.rows > 0);
  // ... and that file lists what is on disk: one row per PNG file, no more, no fewer.
  CHECK(count_png_files(dir) == expected.rows);
  CHECK(static_cast<int64_t>(m.size()) == expected.rows);
  CHECK(m.patients().size() == expected.patients.size());
  CHECK(m.patients() == std::vector<std::string>(expected.patients.begin(), expected.patients.end()));
  CHECK(m.class_counts() == expected.class_counts);
  CHECK(report.rejected.empty());
  CHECK(report.label_mismatches.empty());

  const auto csv = Manifest::load_csv(dir / "manifest.csv");
  CHECK(csv.root() == dir);
  REQUIRE(csv.size() == m.size());
  std::vector<PatchRecord> a = m.rows(), b = csv.rows();
  auto by_path = [](const PatchRecord& x, const PatchRecord& y) { return x.path < y.path; };
  std::sort(a.begin(), a.end(), by_path);
  std::sort(b.begin(), b.end(), by_path);
  size_t differing = 0;
  for (size_t i = 0; i < a.size(); ++i) differing += key(a[i]) == key(b[i]) ? 0 : 1;
  CHECK(differing == 0);
}
