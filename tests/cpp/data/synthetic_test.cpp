#include <catch2/catch.hpp>

#include <opencv2/core.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "histocnn/data/filename.h"
#include "histocnn/data/manifest.h"
#include "histocnn/data/synthetic.h"
#include "histocnn/io/image.h"
#include "test_support.h"

namespace fs = std::filesystem;
using histocnn::data::generate_synthetic;
using histocnn::data::render_synthetic_patch;
using histocnn::data::SyntheticOptions;
using histocnn::test::TempDir;

namespace {

std::map<std::string, std::string> read_tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    out[e.path().lexically_relative(root).generic_string()] = ss.str();
  }
  return out;
}

// Mean of 255 - R over the patch: haematoxylin absorbs red strongly, eosin hardly, so this is a
// crude "how much purple nuclear stain" statistic, independent of the generator's internals.
double haematoxylin_like(const cv::Mat& rgb) {
  return 255.0 - cv::mean(rgb)[0];
}

// Mann-Whitney AUC: P(score of a positive > score of a negative), ties count half.
double auc(const std::vector<double>& neg, const std::vector<double>& pos) {
  double wins = 0;
  for (double p : pos)
    for (double n : neg) wins += p > n ? 1.0 : (p == n ? 0.5 : 0.0);
  return wins / (static_cast<double>(neg.size()) * static_cast<double>(pos.size()));
}

SyntheticOptions small_options() {
  SyntheticOptions o;
  o.patients = 3;
  o.patches_per_patient = 20;
  o.border_patches = 5;
  o.seed = 11;
  return o;
}

}  // namespace

TEST_CASE("generate_synthetic writes the Kaggle layout", "[data]") {
  TempDir tmp;
  const fs::path root = tmp / "new" / "synthetic";  // created, parents too
  const auto o = small_options();
  const auto summary = generate_synthetic(root, o);
  CHECK(summary.written == 65);
  CHECK(summary.patients == 3);
  CHECK(summary.positives + summary.negatives == summary.written);
  CHECK(summary.positives > 0);
  CHECK(summary.negatives > summary.positives);

  const auto files = read_tree(root);
  REQUIRE(static_cast<int64_t>(files.size()) == summary.written);
  int border = 0, positives = 0;
  std::map<std::string, int> per_patient;
  for (const auto& [rel, bytes] : files) {
    INFO(rel);
    const fs::path p(rel);
    const auto name = histocnn::data::parse_patch_filename(p.filename().string());
    REQUIRE(name.has_value());
    const auto parts = std::vector<fs::path>(p.begin(), p.end());
    REQUIRE(parts.size() == 3);
    CHECK(parts[0].string() == name->patient);
    CHECK(parts[1].string() == std::to_string(name->label));
    CHECK((name->x - 1) % 50 == 0);
    CHECK((name->y - 1) % 50 == 0);
    ++per_patient[name->patient];
    positives += name->label;
    const cv::Mat rgb = histocnn::io::decode_image_rgb(bytes, rel);
    CHECK(rgb.type() == CV_8UC3);
    CHECK(rgb.cols <= 50);
    CHECK(rgb.rows <= 50);
    if (rgb.cols < 50 || rgb.rows < 50) ++border;
  }
  CHECK(border == 5);
  CHECK(positives == summary.positives);
  CHECK(per_patient == std::map<std::string, int>{{"90001", 22}, {"90002", 22}, {"90003", 21}});

  // Positions are unique within a patient (the scan would otherwise hold duplicates).
  const auto m = histocnn::data::scan_directory(root).manifest;
  std::map<std::pair<std::string, std::pair<int, int>>, int> seen;
  for (const auto& r : m.rows()) CHECK(++seen[{r.patient, {r.x, r.y}}] == 1);
}

TEST_CASE("generate_synthetic is deterministic for a seed", "[data]") {
  TempDir tmp;
  auto o = small_options();
  generate_synthetic(tmp / "a", o);
  generate_synthetic(tmp / "b", o);
  const auto a = read_tree(tmp / "a");
  CHECK(a == read_tree(tmp / "b"));
  o.seed = 12;
  generate_synthetic(tmp / "c", o);
  const auto c = read_tree(tmp / "c");
  int same = 0;
  for (const auto& [rel, bytes] : c) {
    auto it = a.find(rel);
    same += it != a.end() && it->second == bytes;
  }
  CHECK(same == 0);

  const cv::Mat p1 = render_synthetic_patch(1, 5, SyntheticOptions{});
  const cv::Mat p2 = render_synthetic_patch(1, 5, SyntheticOptions{});
  CHECK(p1.type() == CV_8UC3);
  CHECK(p1.size() == cv::Size(50, 50));
  CHECK(cv::norm(p1, p2, cv::NORM_INF) == 0);
  CHECK(cv::norm(p1, render_synthetic_patch(1, 6, SyntheticOptions{}), cv::NORM_INF) > 0);
  SyntheticOptions big;
  big.patch_size = 96;
  CHECK(render_synthetic_patch(0, 5, big).size() == cv::Size(96, 96));
}

TEST_CASE("synthetic positives are darker and more purple, but not trivially separable", "[data]") {
  TempDir tmp;
  const auto summary = generate_synthetic(tmp / "default", SyntheticOptions{});  // 12 x 100
  REQUIRE(summary.written == 1200);
  const auto m = histocnn::data::scan_directory(tmp / "default").manifest;
  std::vector<double> neg, pos;
  double purple_neg = 0, purple_pos = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    const cv::Mat rgb = histocnn::io::read_image_rgb(m.absolute_path(i));
    const cv::Scalar mean = cv::mean(rgb);
    const double purple = mean[2] - mean[1];  // blue over green: haematoxylin's hue
    if (m.rows()[i].label == 1) {
      pos.push_back(haematoxylin_like(rgb));
      purple_pos += purple;
    } else {
      neg.push_back(haematoxylin_like(rgb));
      purple_neg += purple;
    }
  }
  double mean_neg = 0, mean_pos = 0;
  for (double v : neg) mean_neg += v / static_cast<double>(neg.size());
  for (double v : pos) mean_pos += v / static_cast<double>(pos.size());
  const double a = auc(neg, pos);
  INFO("mean 255-R: negatives " << mean_neg << ", positives " << mean_pos << "; AUC " << a);
  CHECK(mean_pos > mean_neg + 10);
  CHECK(purple_pos / static_cast<double>(pos.size()) > purple_neg / static_cast<double>(neg.size()));
  CHECK(a > 0.6);
  CHECK(a < 0.97);
}

TEST_CASE("synthetic difficulty controls the label overlap", "[data]") {
  auto auc_at = [](double difficulty) {
    SyntheticOptions o;
    o.difficulty = difficulty;
    std::vector<double> neg, pos;
    for (uint64_t s = 0; s < 150; ++s) {
      neg.push_back(haematoxylin_like(render_synthetic_patch(0, 1000 + s, o)));
      pos.push_back(haematoxylin_like(render_synthetic_patch(1, 5000 + s, o)));
    }
    return auc(neg, pos);
  };
  const double easy = auc_at(0.0), hard = auc_at(1.0);
  INFO("AUC easy " << easy << ", hard " << hard);
  CHECK(easy > hard + 0.08);
  CHECK(hard > 0.55);
}

TEST_CASE("generate_synthetic refuses folders with patches and bad options", "[data]") {
  TempDir tmp;
  const fs::path root = tmp / "data";
  fs::create_directories(root / "notes");
  histocnn::test::write_bytes(root / "notes" / "README.md", "ok");  // other content is fine
  auto o = small_options();
  o.patients = 1;
  o.patches_per_patient = 3;
  o.border_patches = 0;
  CHECK(generate_synthetic(root, o).written == 3);
  try {
    generate_synthetic(root, o);
    FAIL("expected std::invalid_argument");
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find(root.string()) != std::string::npos);
    CHECK(msg.find("empty or new folder") != std::string::npos);
  }
  histocnn::test::write_bytes(tmp / "file", "x");
  CHECK_THROWS_AS(generate_synthetic(tmp / "file", o), std::invalid_argument);

  auto bad = o;
  bad.positive_fraction = 1.5;
  CHECK_THROWS_AS(generate_synthetic(tmp / "bad", bad), std::invalid_argument);
  bad = o;
  bad.patients = 0;
  CHECK_THROWS_AS(generate_synthetic(tmp / "bad", bad), std::invalid_argument);
  bad = o;
  bad.difficulty = -0.1;
  CHECK_THROWS_AS(render_synthetic_patch(0, 1, bad), std::invalid_argument);
  CHECK_THROWS_AS(render_synthetic_patch(2, 1, o), std::invalid_argument);
  CHECK_FALSE(fs::exists(tmp / "bad"));
}
