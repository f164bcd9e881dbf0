// The study's figures: bar charts and image grids (metrics/plots.h), the error gallery and the
// class distribution (train/figures.h), and the comparison's best run and figures (train/compare.h).
// Each test checks what is drawn, not only that a file appeared: bar heights against the values,
// gallery tiles against the patches, listed errors against an independent selection.
#include "histocnn/data/balance.h"
#include "histocnn/data/manifest.h"
#include "histocnn/data/split.h"
#include "histocnn/inference/predict.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/image.h"
#include "histocnn/metrics/plots.h"
#include "histocnn/train/compare.h"
#include "histocnn/train/figures.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <random>

using namespace histocnn;
namespace fs = std::filesystem;

namespace {

const cv::Vec3b kBlue(31, 119, 180), kOrange(255, 127, 14);

// The height in pixels of the bar of `colour` crossing column x: its lowest run of that colour,
// found from the bottom of the image up (labels below the axis are not in a bar's colour).
int bar_height(const cv::Mat& rgb, int x, const cv::Vec3b& colour) {
  int y = rgb.rows - 1;
  while (y >= 0 && rgb.at<cv::Vec3b>(y, x) != colour) --y;
  int h = 0;
  while (y >= 0 && rgb.at<cv::Vec3b>(y, x) == colour) {
    ++h;
    --y;
  }
  return h;
}

int count_colour(const cv::Mat& rgb, const cv::Vec3b& colour) {
  int n = 0;
  for (int r = 0; r < rgb.rows; ++r) {
    for (int c = 0; c < rgb.cols; ++c) n += rgb.at<cv::Vec3b>(r, c) == colour;
  }
  return n;
}

// The pixel column through the middle of bar `s` of `ns` in group `i` of `n`, in a chart `width`
// pixels wide with the default margins (74 left, 20 right) at a scale of 1.
int bar_column(int width, size_t n, size_t i, size_t s, size_t ns) {
  const double group = (width - 94.0) / static_cast<double>(n);
  const double bar = 0.8 / static_cast<double>(ns);
  return static_cast<int>(std::lround(74 + (i + 0.1 + (s + 0.5) * bar) * group));
}

}  // namespace

TEST_CASE("plot_bar_chart draws bars in proportion to their values, and rejects bad charts", "[figures]") {
  test::TempDir dir;
  metrics::BarChart chart;
  chart.categories = {"a", "b with a long name that wraps onto more lines", "c"};
  chart.series = {"accuracy"};
  chart.values = {{0.2, 0.4, 0.8}};
  metrics::PlotOptions o;
  o.width = 700;
  o.height = 500;
  metrics::plot_bar_chart(dir / "bars.png", chart, o);
  cv::Mat img = io::read_image_rgb(dir / "bars.png");
  CHECK(img.cols == 700);
  CHECK(img.rows == 500);
  std::vector<int> h;
  for (size_t i = 0; i < 3; ++i) h.push_back(bar_height(img, bar_column(700, 3, i, 0, 1), kBlue));
  // Each height is rounded to a pixel: compared with the tallest bar, within 2 px.
  REQUIRE(h[2] > 100);
  CHECK(h[0] == Approx(h[2] / 4.0).margin(2));
  CHECK(h[1] == Approx(h[2] / 2.0).margin(2));
  CHECK(count_colour(img, kOrange) == 0);

  // Two series side by side (the class distribution), whole numbers, a legend.
  metrics::BarChart counts;
  counts.categories = {"train", "val", "test"};
  counts.series = {"negative", "positive"};
  counts.values = {{300, 100, 90}, {150, 50, 60}};
  metrics::plot_bar_chart(dir / "counts.png", counts);
  img = io::read_image_rgb(dir / "counts.png");
  CHECK(img.cols == 640);
  const int h0 = bar_height(img, bar_column(640, 3, 0, 0, 2), kBlue);
  REQUIRE(h0 > 100);
  for (size_t i = 0; i < 3; ++i) {
    for (size_t s = 0; s < 2; ++s) {
      const int got = bar_height(img, bar_column(640, 3, i, s, 2), s == 0 ? kBlue : kOrange);
      CHECK(got == Approx(h0 * counts.values[s][i] / 300.0).margin(2));
    }
  }

  // The highlighted category is orange, the others stay blue (the legend this adds takes room
  // above the bars, so the scale changes).
  chart.highlight = 1;
  chart.highlight_label = "best run";
  metrics::plot_bar_chart(dir / "best.png", chart, o);
  img = io::read_image_rgb(dir / "best.png");
  const int tallest = bar_height(img, bar_column(700, 3, 2, 0, 1), kBlue);
  REQUIRE(tallest > 100);
  CHECK(bar_height(img, bar_column(700, 3, 1, 0, 1), kOrange) == Approx(tallest / 2.0).margin(2));
  CHECK(bar_height(img, bar_column(700, 3, 1, 0, 1), kBlue) == 0);
  CHECK(bar_height(img, bar_column(700, 3, 0, 0, 1), kBlue) == Approx(tallest / 4.0).margin(2));

  metrics::BarChart bad = chart;
  bad.values = {{0.2, 0.4}};
  CHECK_THROWS_WITH(metrics::plot_bar_chart(dir / "bad.png", bad), Catch::Contains("chart.values[0] has 2 values"));
  bad = chart;
  bad.values = {{0.2, std::nan(""), 0.1}};
  CHECK_THROWS_WITH(metrics::plot_bar_chart(dir / "bad.png", bad), Catch::Contains("chart.values[0][1] = nan"));
  bad = chart;
  bad.highlight = 3;
  CHECK_THROWS_WITH(metrics::plot_bar_chart(dir / "bad.png", bad), Catch::Contains("chart.highlight = 3"));
  bad = counts;
  bad.highlight = 0;
  CHECK_THROWS_WITH(metrics::plot_bar_chart(dir / "bad.png", bad), Catch::Contains("needs a single series"));
  bad = chart;
  bad.lower = {{0.1, 0.3, 0.9}};
  bad.upper = {{0.3, 0.5, 0.7}};
  CHECK_THROWS_WITH(metrics::plot_bar_chart(dir / "bad.png", bad), Catch::Contains("are not an interval"));
  CHECK_FALSE(fs::exists(dir / "bad.png"));
}

TEST_CASE("plot_image_grid shows each image enlarged, in rows, and survives an unreadable file", "[figures]") {
  test::TempDir dir;
  cv::Mat red(50, 50, CV_8UC3, cv::Scalar(200, 10, 10)), green(25, 50, CV_8UC3, cv::Scalar(10, 200, 10));
  io::write_png(dir / "red.png", red);
  io::write_png(dir / "green.png", green);
  metrics::ImageGridOptions o;
  o.columns = 3;
  metrics::plot_image_grid(dir / "grid.png",
                           {{"first row", {{dir / "red.png", {"red", "P = 0.9"}}, {dir / "missing.png", {"gone"}}}},
                            {"second row", {{dir / "green.png", {"green"}}}},
                            {"empty row", {}}},
                           o);
  const cv::Mat img = io::read_image_rgb(dir / "grid.png");
  CHECK(img.cols == 2 * 16 + 3 * 112 + 2 * 12);
  CHECK(count_colour(img, cv::Vec3b(200, 10, 10)) == 100 * 100);  // 50x50 enlarged twice
  CHECK(count_colour(img, cv::Vec3b(10, 200, 10)) == 50 * 100);    // 25x50 enlarged twice, aspect kept
  CHECK_THROWS_WITH(metrics::plot_image_grid(dir / "bad.png", {}), Catch::Contains("rows is empty"));
  o.tile = 8;
  CHECK_THROWS_WITH(metrics::plot_image_grid(dir / "bad.png", {{"r", {}}}, o), Catch::Contains("options.tile = 8"));
}

TEST_CASE("The error gallery lists and draws exactly the most confident errors", "[figures]") {
  test::TempDir dir;
  const auto folder = test::synthetic_folder(dir, test::synthetic_options(6, 20));
  const auto m = data::scan_directory(folder).manifest;
  REQUIRE(m.size() == 120);
  inference::Predictions pred;
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (const auto& r : m.rows()) {
    pred.labels.push_back(r.label);
    // Rounded, so that equal probabilities occur and ties are exercised.
    pred.p_positive.push_back(std::round(uniform(rng) * 40) / 40);
  }
  const double threshold = 0.4;
  const size_t k = 8;

  // Independently: every error with its index, sorted by confidence, then by row.
  std::vector<std::pair<double, size_t>> fp, fn;
  for (size_t i = 0; i < m.size(); ++i) {
    const bool positive = pred.p_positive[i] >= threshold;
    if (pred.labels[i] == 0 && positive) fp.push_back({-pred.p_positive[i], i});
    if (pred.labels[i] == 1 && !positive) fn.push_back({pred.p_positive[i], i});
  }
  std::sort(fp.begin(), fp.end());
  std::sort(fn.begin(), fn.end());
  REQUIRE(fp.size() > k);
  REQUIRE(fn.size() >= 2);

  const auto g = train::most_confident_errors(m, pred.labels, pred.p_positive, threshold, k);
  CHECK(g.false_positive_count == static_cast<int64_t>(fp.size()));
  CHECK(g.false_negative_count == static_cast<int64_t>(fn.size()));
  REQUIRE(g.false_positives.size() == k);
  REQUIRE(g.false_negatives.size() == std::min(k, fn.size()));
  for (size_t j = 0; j < g.false_positives.size(); ++j) {
    CHECK(g.false_positives[j].index == fp[j].second);
    CHECK(g.false_positives[j].patient == m.rows()[fp[j].second].patient);
    CHECK(g.false_positives[j].p_positive == -fp[j].first);
    CHECK(g.false_positives[j].image == m.absolute_path(fp[j].second));
  }
  for (size_t j = 0; j < g.false_negatives.size(); ++j) CHECK(g.false_negatives[j].index == fn[j].second);

  // The report text lists them in that order, each with its patient and probability.
  const std::string text = train::write_error_gallery(dir / "run" / "plots" / "test_errors.png", m, pred, threshold, k);
  CHECK(text.find(fmt::format("{} shown of {}", k, fp.size())) != std::string::npos);
  CHECK(text.find("plots/test_errors.png") != std::string::npos);
  size_t at = 0;
  for (const auto& list : {g.false_positives, g.false_negatives}) {
    for (const auto& p : list) {
      const auto line = fmt::format("{:>15.4f}  {:<10}  {}", p.p_positive, p.patient, p.path);
      const size_t found = text.find(line, at);
      INFO(line);
      REQUIRE(found != std::string::npos);
      at = found;
    }
  }

  // The picture: the first tile of each row is that patch, enlarged twice (8 columns of 112 px
  // tiles, 12 px apart, 16 px margins; title 46 px, row titles 30 px, two caption lines of 16 px).
  const cv::Mat img = io::read_image_rgb(dir / "run" / "plots" / "test_errors.png");
  CHECK(img.cols == 2 * 16 + 8 * 112 + 7 * 12);
  auto tile_at = [&](int x, int y) { return img(cv::Rect(x, y, 100, 100)); };
  auto enlarged = [&](size_t index) {
    cv::Mat patch = io::read_image_rgb(m.absolute_path(index)), big;
    cv::resize(patch, big, {100, 100}, 0, 0, cv::INTER_NEAREST);
    return big;
  };
  const int cell = 112 + 6 + 2 * 16 + 12;
  CHECK(cv::norm(tile_at(16 + 6, 46 + 30 + 6), enlarged(fp[0].second), cv::NORM_INF) == 0);
  CHECK(cv::norm(tile_at(16 + 124 + 6, 46 + 30 + 6), enlarged(fp[1].second), cv::NORM_INF) == 0);
  CHECK(cv::norm(tile_at(16 + 6, 46 + 30 + cell + 30 + 6), enlarged(fn[0].second), cv::NORM_INF) == 0);

  auto wrong = pred.labels;
  wrong[0] = 1 - wrong[0];
  CHECK_THROWS_WITH(train::most_confident_errors(m, wrong, pred.p_positive, threshold),
                    Catch::Contains("not in the manifest's order"));
  CHECK_THROWS_WITH(train::most_confident_errors(m, pred.labels, {0.5}, threshold), Catch::Contains("120 rows"));
}

TEST_CASE("The class distribution draws the counts of split.csv, before and after balancing", "[figures]") {
  test::TempDir dir;
  const auto folder = test::synthetic_folder(dir, test::synthetic_options(8, 30));
  const auto input = data::scan_directory(folder).manifest;
  auto split = data::split_manifest(data::balance_classes(input, 50, 3), {});
  split.save_csv(dir / "split.csv");
  const auto counts = train::plot_class_distribution(dir / "split_distribution.png", input, split, true);

  // Counted again from what was written.
  const auto saved = data::Manifest::load_csv(dir / "split.csv");
  REQUIRE(counts.size() == 5);
  CHECK(counts[0].group == "before balancing");
  CHECK(counts[0].negatives == input.class_counts()[0]);
  CHECK(counts[0].positives == input.class_counts()[1]);
  CHECK(counts[1].group == "after balancing");
  CHECK(counts[1].negatives == 50);
  CHECK(counts[1].positives == 50);
  const std::vector<std::string> names = {"train", "val", "test"};
  for (size_t s = 0; s < 3; ++s) {
    const auto part = saved.subset(names[s]);
    CHECK(counts[2 + s].group == names[s]);
    CHECK(counts[2 + s].negatives == part.class_counts()[0]);
    CHECK(counts[2 + s].positives == part.class_counts()[1]);
    CHECK(counts[2 + s].patients == static_cast<int64_t>(part.patients().size()));
  }

  // And the bars have those heights.
  const cv::Mat img = io::read_image_rgb(dir / "split_distribution.png");
  CHECK(img.cols == 140 + 130 * 5);
  CHECK(img.rows == 480);
  const double per_patch = bar_height(img, bar_column(img.cols, 5, 0, 0, 2), kBlue) /
                           static_cast<double>(counts[0].negatives);  // the tallest bar
  REQUIRE(counts[0].negatives >= counts[0].positives);
  for (size_t i = 0; i < counts.size(); ++i) {
    CHECK(bar_height(img, bar_column(img.cols, 5, i, 0, 2), kBlue) == Approx(per_patch * counts[i].negatives).margin(2));
    CHECK(bar_height(img, bar_column(img.cols, 5, i, 1, 2), kOrange) ==
          Approx(per_patch * counts[i].positives).margin(2));
  }

  // Without balancing: one group of all patches, then the splits.
  const auto plain = train::plot_class_distribution(dir / "plain.png", input, data::split_manifest(input, {}), false);
  REQUIRE(plain.size() == 4);
  CHECK(plain[0].group == "all patches");
  CHECK(plain[0].negatives + plain[0].positives == static_cast<int64_t>(input.size()));
}

TEST_CASE("The comparison names the best run by test AUC and draws one bar chart per metric", "[figures]") {
  test::TempDir dir;
  auto row = [](std::string label, int64_t parameters, double accuracy, double auc) {
    train::CompareRow r;
    r.label = label;
    r.run_name = label + "-run";
    r.parameters = parameters;
    r.test_accuracy = accuracy;
    r.precision = accuracy - 0.05;
    r.recall = accuracy + 0.05;
    r.f1 = accuracy;
    r.auc = auc;
    r.auc_low = auc - 0.04;
    r.auc_high = std::min(1.0, auc + 0.03);
    r.test_loss = 1.0 - accuracy;
    r.stain_shift_auc = std::nan("");
    return r;
  };
  // In step order; by size: small (0.8), large (0.7), medium (0.9), huge (no test split).
  std::vector<train::CompareRow> rows = {row("large", 3000000, 0.70, 0.80), row("small", 20000, 0.80, 0.85),
                                         row("medium", 500000, 0.90, 0.85),
                                         row("huge", 9000000, std::nan(""), std::nan(""))};
  // Equal AUC: the higher accuracy wins.
  CHECK(train::best_run_index(rows) == 2);
  rows[1].test_accuracy = 0.95;
  CHECK(train::best_run_index(rows) == 1);
  rows[1].test_accuracy = 0.80;
  CHECK(train::best_run_index({rows[3]}) == -1);
  CHECK(train::best_run_summary({rows[3]}).find("none") != std::string::npos);

  train::write_compare_results(dir / "out", rows);
  const auto md = io::read_file(dir / "out" / "results.md");
  CHECK(md.find("Best run (highest test AUC; ties: higher test accuracy, then the earlier run): medium (medium-run), "
                "test AUC 0.850") != std::string::npos);
  CHECK(md.find("![test_auc.png](test_auc.png)") != std::string::npos);
  CHECK(io::read_file(dir / "out" / "results.csv").find("\"medium\"") != std::string::npos);

  for (const char* name : {"test_accuracy.png", "test_precision.png", "test_recall.png", "test_f1.png",
                           "test_auc.png", "test_loss.png", "size_vs_accuracy.png"}) {
    INFO(name);
    CHECK(fs::exists(dir / "out" / name));
  }
  // Three runs have a test accuracy: small, medium, large from left to right, medium (the best) in
  // orange, heights in proportion to the accuracies.
  const cv::Mat img = io::read_image_rgb(dir / "out" / "test_accuracy.png");
  CHECK(img.cols == 640);
  CHECK(img.rows == 520);
  const int small = bar_height(img, bar_column(640, 3, 0, 0, 1), kBlue);
  const int medium = bar_height(img, bar_column(640, 3, 1, 0, 1), kOrange);
  const int large = bar_height(img, bar_column(640, 3, 2, 0, 1), kBlue);
  REQUIRE(medium > 100);
  CHECK(small == Approx(medium * 0.8 / 0.9).margin(2));
  CHECK(large == Approx(medium * 0.7 / 0.9).margin(2));

  // More runs make wider charts.
  std::vector<train::CompareRow> many;
  for (int i = 0; i < 6; ++i) {
    many.push_back(row(fmt::format("run {}", i), 1000 * (6 - i), 0.5 + 0.05 * i, 0.6 + 0.05 * i));
  }
  const auto written = train::write_compare_figures(dir / "many", many);
  CHECK(written.size() == 7);
  const cv::Mat wide = io::read_image_rgb(dir / "many" / "test_auc.png");
  CHECK(wide.cols == 120 + 140 * 6);
  // Sorted by size, the last run (the smallest, with the highest AUC) comes first, in orange.
  CHECK(bar_height(wide, bar_column(wide.cols, 6, 0, 0, 1), kOrange) > 0);
  CHECK(bar_height(wide, bar_column(wide.cols, 6, 0, 0, 1), kBlue) == 0);
}
