// Plots: each function writes a valid PNG of the requested size with something drawn on it, and
// rejects bad input with std::invalid_argument naming the field, writing nothing.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <limits>
#include <opencv2/core.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "histocnn/io/atomic_file.h"
#include "histocnn/io/image.h"
#include "histocnn/metrics/plots.h"
#include "test_support.h"

namespace hm = histocnn::metrics;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct PixelStats {
  double non_white = 0.0;    // share of pixels that are not pure white
  double gray_stddev = 0.0;  // of the mean of the three channels
  int colourful = 0;         // pixels whose channels differ by more than 60 (curves, heatmaps)
};

// Reads the file back through the PNG decoder and checks the signature and size.
PixelStats check_png(const fs::path& path, int width, int height) {
  REQUIRE(fs::exists(path));
  const std::string bytes = histocnn::io::read_file(path);
  REQUIRE(bytes.size() > 8);
  CHECK(bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
  const cv::Mat rgb = histocnn::io::read_image_rgb(path);
  CHECK(rgb.cols == width);
  CHECK(rgb.rows == height);
  PixelStats s;
  int64_t non_white = 0;
  double sum = 0.0, sum2 = 0.0;
  for (int r = 0; r < rgb.rows; ++r) {
    for (int c = 0; c < rgb.cols; ++c) {
      const cv::Vec3b p = rgb.at<cv::Vec3b>(r, c);
      non_white += p != cv::Vec3b(255, 255, 255);
      const double g = (p[0] + p[1] + p[2]) / 3.0;
      sum += g;
      sum2 += g * g;
      const int spread = std::max({p[0], p[1], p[2]}) - std::min({p[0], p[1], p[2]});
      s.colourful += spread > 60;
    }
  }
  const double n = static_cast<double>(rgb.total());
  s.non_white = static_cast<double>(non_white) / n;
  s.gray_stddev = std::sqrt(std::max(0.0, sum2 / n - (sum / n) * (sum / n)));
  // The corners are background: white, as asked for.
  CHECK(rgb.at<cv::Vec3b>(0, 0) == cv::Vec3b(255, 255, 255));
  CHECK(rgb.at<cv::Vec3b>(rgb.rows - 1, rgb.cols - 1) == cv::Vec3b(255, 255, 255));
  return s;
}

void check_drawn(const PixelStats& s) {
  CHECK(s.non_white > 0.02);  // axes, text and data are there
  CHECK(s.non_white < 0.8);   // and the background is white
  CHECK(s.gray_stddev > 15.0);
  CHECK(s.colourful > 300);   // something in colour, not only black text
}

#define CHECK_INVALID(expr, text)                 \
  do {                                            \
    CHECK_THROWS_AS(expr, std::invalid_argument); \
    CHECK_THROWS_WITH(expr, Contains(text));      \
  } while (0)

}  // namespace

TEST_CASE("plot_roc_curve draws a PNG and rejects bad curves", "[metrics]") {
  histocnn::test::TempDir dir;
  const std::vector<int> y = {0, 0, 1, 1, 0, 1, 0, 1, 1, 0};
  const std::vector<double> p = {0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.7, 0.55, 0.3};
  const hm::RocCurve roc = hm::roc_curve(y, p);
  hm::plot_roc_curve(dir / "roc.png", roc.fpr, roc.tpr, hm::roc_auc(y, p));
  check_drawn(check_png(dir / "roc.png", 640, 480));

  hm::PlotOptions big;
  big.width = 1000;
  big.height = 800;
  big.title = "ROC, custom size";
  hm::plot_roc_curve(dir / "nested" / "roc_big.png", roc.fpr, roc.tpr, 0.84, big);  // folders are created
  check_drawn(check_png(dir / "nested" / "roc_big.png", 1000, 800));

  CHECK_INVALID(hm::plot_roc_curve(dir / "bad.png", {0.0, 0.5, 1.0}, {0.0, 1.0}, 0.5), "fpr has 3 values but tpr has 2");
  CHECK_INVALID(hm::plot_roc_curve(dir / "bad.png", {0.0, kNaN}, {0.0, 1.0}, 0.5), "fpr[1] = nan");
  CHECK_INVALID(hm::plot_roc_curve(dir / "bad.png", {0.0, 1.0}, {0.0, 1.5}, 0.5), "tpr[1] = 1.5");
  CHECK_INVALID(hm::plot_roc_curve(dir / "bad.png", {0.0, 1.0}, {0.0, 1.0}, kNaN), "auc = nan");
  CHECK_INVALID(hm::plot_roc_curve(dir / "bad.png", {}, {}, 0.5), "fpr is empty");
  hm::PlotOptions tiny;
  tiny.width = 10;
  CHECK_INVALID(hm::plot_roc_curve(dir / "bad.png", {0.0, 1.0}, {0.0, 1.0}, 0.5, tiny), "options.width");
  CHECK_FALSE(fs::exists(dir / "bad.png"));
}

TEST_CASE("plot_pr_curve draws a PNG and rejects bad curves", "[metrics]") {
  histocnn::test::TempDir dir;
  const std::vector<int> y = {0, 0, 1, 1, 0, 1, 0, 1, 1, 0};
  const std::vector<double> p = {0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.7, 0.55, 0.3};
  const hm::PrecisionRecallCurve pr = hm::precision_recall_curve(y, p);
  hm::plot_pr_curve(dir / "pr.png", pr.recall, pr.precision, hm::average_precision(y, p), 0.5);
  check_drawn(check_png(dir / "pr.png", 640, 480));

  CHECK_INVALID(hm::plot_pr_curve(dir / "bad.png", {1.0, 0.0}, {0.5}, 0.5, 0.5), "recall has 2 values but precision has 1");
  CHECK_INVALID(hm::plot_pr_curve(dir / "bad.png", {1.0, 0.0}, {0.5, kNaN}, 0.5, 0.5), "precision[1] = nan");
  CHECK_INVALID(hm::plot_pr_curve(dir / "bad.png", {1.0, 0.0}, {0.5, 1.0}, kNaN, 0.5), "average_precision = nan");
  CHECK_INVALID(hm::plot_pr_curve(dir / "bad.png", {1.0, 0.0}, {0.5, 1.0}, 0.5, -0.1), "positive_rate = -0.1");
  CHECK_FALSE(fs::exists(dir / "bad.png"));
}

TEST_CASE("plot_confusion_matrix draws a PNG and rejects bad matrices", "[metrics]") {
  histocnn::test::TempDir dir;
  hm::ConfusionMatrix cm;
  cm.tn = 2178;
  cm.fp = 392;
  cm.fn = 156;
  cm.tp = 874;
  hm::plot_confusion_matrix(dir / "cm.png", cm);
  check_drawn(check_png(dir / "cm.png", 640, 480));
  hm::ConfusionMatrix empty_row;  // no positives at all: still drawn
  empty_row.tn = 5;
  empty_row.fp = 1;
  hm::plot_confusion_matrix(dir / "cm_empty_row.png", empty_row, {"neg", "pos"});
  check_png(dir / "cm_empty_row.png", 640, 480);

  hm::ConfusionMatrix negative;
  negative.tp = -1;
  CHECK_INVALID(hm::plot_confusion_matrix(dir / "bad.png", negative), "cm counts must be non-negative");
  CHECK_INVALID(hm::plot_confusion_matrix(dir / "bad.png", cm, {"one"}), "class_names");
  CHECK_FALSE(fs::exists(dir / "bad.png"));
}

TEST_CASE("plot_reliability_diagram draws a PNG and rejects bad bins", "[metrics]") {
  histocnn::test::TempDir dir;
  const std::vector<int> y = {0, 0, 1, 1, 0, 1, 0, 1, 1, 0, 1, 0};
  const std::vector<double> p = {0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.7, 0.55, 0.3, 0.95, 0.05};
  const hm::CalibrationReport c = hm::calibration_report(y, p);
  hm::plot_reliability_diagram(dir / "rel.png", c.bins, c.ece);
  check_drawn(check_png(dir / "rel.png", 640, 480));

  std::vector<hm::ReliabilityBin> bad = c.bins;
  bad[3].positive_rate = kNaN;
  REQUIRE(bad[3].count > 0);
  CHECK_INVALID(hm::plot_reliability_diagram(dir / "bad.png", bad, c.ece), "bins[3].positive_rate = nan");
  bad = c.bins;
  bad[2].mean_confidence = 1.5;
  CHECK_INVALID(hm::plot_reliability_diagram(dir / "bad.png", bad, c.ece), "bins[2].mean_confidence = 1.5");
  CHECK_INVALID(hm::plot_reliability_diagram(dir / "bad.png", c.bins, kNaN), "ece = nan");
  CHECK_INVALID(hm::plot_reliability_diagram(dir / "bad.png", {}, 0.1), "bins is empty");
  std::vector<hm::ReliabilityBin> empty(2);
  empty[0].upper = 0.5;
  empty[1].lower = 0.5;
  empty[1].upper = 1.0;
  CHECK_INVALID(hm::plot_reliability_diagram(dir / "bad.png", empty, 0.0), "every bin is empty");
  CHECK_FALSE(fs::exists(dir / "bad.png"));
}

TEST_CASE("plot_training_curves draws a PNG and rejects mismatched or NaN series", "[metrics]") {
  histocnn::test::TempDir dir;
  hm::TrainingCurves c;
  c.train_loss = {0.62, 0.48, 0.41, 0.37, 0.35};
  c.val_loss = {0.58, 0.50, 0.47, 0.46, 0.47};
  c.train_accuracy = {0.68, 0.78, 0.82, 0.84, 0.85};
  c.val_accuracy = {0.71, 0.77, 0.79, 0.80, 0.80};
  c.val_auc = {0.78, 0.84, 0.86, 0.87, 0.87};
  hm::plot_training_curves(dir / "train.png", c);
  check_drawn(check_png(dir / "train.png", 640, 480));

  hm::TrainingCurves one_epoch;  // a single point per series, loss only
  one_epoch.train_loss = {0.7};
  hm::plot_training_curves(dir / "one.png", one_epoch);
  check_png(dir / "one.png", 640, 480);

  hm::TrainingCurves bad = c;
  bad.val_loss.pop_back();
  CHECK_INVALID(hm::plot_training_curves(dir / "bad.png", bad), "val_loss has 4 values but train_loss has 5");
  bad = c;
  bad.val_auc[2] = kNaN;
  CHECK_INVALID(hm::plot_training_curves(dir / "bad.png", bad), "val_auc[2] = nan");
  bad = c;
  bad.train_accuracy[0] = 1.2;
  CHECK_INVALID(hm::plot_training_curves(dir / "bad.png", bad), "train_accuracy[0] = 1.2");
  CHECK_INVALID(hm::plot_training_curves(dir / "bad.png", hm::TrainingCurves{}), "every series of curves is empty");
  CHECK_FALSE(fs::exists(dir / "bad.png"));
}

TEST_CASE("plot_accuracy_vs_size draws a PNG and rejects bad points", "[metrics]") {
  histocnn::test::TempDir dir;
  const std::vector<std::string> names = {"VGG16", "ResNet50V2", "ResNet152V2", "DenseNet201",
                                          "InceptionResNetV2", "NASNetMobile", "Xception"};
  const std::vector<double> sizes = {14.71, 23.56, 58.33, 18.32, 54.34, 4.27, 20.86};
  const std::vector<double> acc = {0.826, 0.79, 0.80, 0.81, 0.78, 0.76, 0.80};
  hm::plot_accuracy_vs_size(dir / "size.png", names, sizes, acc);
  check_drawn(check_png(dir / "size.png", 640, 480));
  hm::plot_accuracy_vs_size(dir / "one.png", {"only"}, {3.5}, {0.9});
  check_png(dir / "one.png", 640, 480);

  CHECK_INVALID(hm::plot_accuracy_vs_size(dir / "bad.png", {"a", "b"}, {1.0, 2.0}, {0.5}),
                "sizes has 2 values but accuracies has 1");
  CHECK_INVALID(hm::plot_accuracy_vs_size(dir / "bad.png", {"a"}, {1.0, 2.0}, {0.5, 0.6}), "labels has 1 names");
  CHECK_INVALID(hm::plot_accuracy_vs_size(dir / "bad.png", {"a", "b"}, {1.0, kNaN}, {0.5, 0.6}), "sizes[1] = nan");
  CHECK_INVALID(hm::plot_accuracy_vs_size(dir / "bad.png", {"a", "b"}, {1.0, 2.0}, {kNaN, 0.6}), "accuracies[0] = nan");
  CHECK_INVALID(hm::plot_accuracy_vs_size(dir / "bad.png", {"a"}, {-1.0}, {0.6}), "sizes[0] = -1");
  CHECK_FALSE(fs::exists(dir / "bad.png"));
}

TEST_CASE("write_evaluation_plots writes the four evaluation figures", "[metrics]") {
  histocnn::test::TempDir dir;
  std::vector<int> y;
  std::vector<double> p;
  std::vector<std::string> patients;
  for (int i = 0; i < 200; ++i) {
    y.push_back(i % 3 == 0 ? 1 : 0);
    p.push_back(std::fmod(0.37 * i + 0.3 * y.back(), 1.0));
    patients.push_back("P" + std::to_string(i % 7));
  }
  hm::EvaluationOptions opt;
  opt.n_boot = 20;
  const hm::EvaluationReport report = hm::evaluate_full(y, p, patients, opt);
  const std::vector<fs::path> written = hm::write_evaluation_plots(dir.path(), report, "test_");
  REQUIRE(written.size() == 4);
  CHECK(written[0] == dir / "test_roc.png");
  CHECK(written[1] == dir / "test_pr.png");
  CHECK(written[2] == dir / "test_confusion_matrix.png");
  CHECK(written[3] == dir / "test_reliability.png");
  for (const fs::path& f : written) check_drawn(check_png(f, 640, 480));

  // One class: no ROC or PR curve to draw, the rest is still written.
  const hm::EvaluationReport one = hm::evaluate_full({0, 0, 0}, {0.1, 0.5, 0.7}, {}, opt);
  const std::vector<fs::path> some = hm::write_evaluation_plots(dir / "one", one);
  REQUIRE(some.size() == 2);
  CHECK(some[0].filename() == "confusion_matrix.png");
  CHECK(some[1].filename() == "reliability.png");
}
