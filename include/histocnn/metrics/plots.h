#pragma once
// PNG plots of an evaluation and of training, drawn with OpenCV: no Python, no matplotlib, so a
// C++ run folder gets its figures too.
//
//   namespace hm = histocnn::metrics;
//   auto roc = hm::roc_curve(y, p);
//   hm::plot_roc_curve("runs/1/roc.png", roc.fpr, roc.tpr, hm::roc_auc(y, p));
//   hm::TrainingCurves curves;
//   curves.train_loss = {0.61, 0.45, 0.39}; curves.val_loss = {0.58, 0.50, 0.49};
//   curves.train_accuracy = {0.70, 0.80, 0.84}; curves.val_accuracy = {0.72, 0.77, 0.78};
//   hm::plot_training_curves("runs/1/training.png", curves);
//   hm::plot_accuracy_vs_size("runs/sizes.png", {"VGG16", "MobileNetV2"}, {14.7, 2.2}, {0.83, 0.86});
//   hm::write_evaluation_plots("runs/1", report, "test_");   // roc, pr, confusion, reliability
//   hm::BarChart bars;
//   bars.categories = {"simple_cnn", "mobilenet_v2"};
//   bars.series = {"test AUC"};
//   bars.values = {{0.84, 0.91}};
//   hm::plot_bar_chart("compare/test_auc.png", bars);
//
// Every plot is white with axes, ticks, axis labels, a title and a legend where there are several
// lines; 640x480 by default (PlotOptions). Files are written atomically (io::write_png); missing
// folders are created. Bad input (mismatched lengths, NaN or infinite values, rates outside [0, 1],
// an image size outside [200, 8000] x [150, 8000]) throws std::invalid_argument naming the field;
// a failed write throws std::runtime_error naming the file. Text is drawn with OpenCV's Hershey
// font, which has ASCII only: other characters are drawn as '?'.
#include <filesystem>
#include <string>
#include <vector>

#include "histocnn/metrics/binary.h"
#include "histocnn/metrics/calibration.h"
#include "histocnn/metrics/report.h"

namespace histocnn::metrics {

struct PlotOptions {
  int width = 640;
  int height = 480;
  std::string title;    ///< "" = the plot's own title
  std::string x_label;  ///< "" = the plot's own axis label
  std::string y_label;  ///< "" = the plot's own axis label
};

/// ROC curve (fpr, tpr as from roc_curve()), the chance diagonal and "AUC = ..." in the legend.
void plot_roc_curve(const std::filesystem::path& path, const std::vector<double>& fpr,
                    const std::vector<double>& tpr, double auc, const PlotOptions& options = {});

/// Precision-recall curve as a step function (recall, precision as from precision_recall_curve()),
/// "AP = ..." in the legend and the chance level `positive_rate` (share of positives) as a line.
void plot_pr_curve(const std::filesystem::path& path, const std::vector<double>& recall,
                   const std::vector<double>& precision, double average_precision, double positive_rate,
                   const PlotOptions& options = {});

/// 2x2 heatmap, rows the true class: each cell shows its count and its share of the true class;
/// the colour is that share, so that a rare class is as visible as a common one.
void plot_confusion_matrix(const std::filesystem::path& path, const ConfusionMatrix& cm,
                           const std::vector<std::string>& class_names = {"IDC-negative", "IDC-positive"},
                           const PlotOptions& options = {});

/// Reliability diagram: the observed positive rate per bin (bars, with the bins' mean predicted
/// probability marked) against the diagonal of perfect calibration, "ECE = ..." in the title and
/// a histogram of the bin counts below. `bins` as from reliability_table(); empty bins are skipped.
void plot_reliability_diagram(const std::filesystem::path& path, const std::vector<ReliabilityBin>& bins,
                              double ece, const PlotOptions& options = {});

/// Per-epoch values; any series may be empty (not drawn), the others must have one value per
/// epoch, all the same length. Loss on the left panel, accuracy and AUC on the right.
struct TrainingCurves {
  std::vector<double> train_loss, val_loss;
  std::vector<double> train_accuracy, val_accuracy;
  std::vector<double> train_auc, val_auc;
};

void plot_training_curves(const std::filesystem::path& path, const TrainingCurves& curves,
                          const PlotOptions& options = {});

/// Scatter of accuracy (or any score, set y_label) against model size (default axis label
/// "parameters (millions)"), each point labelled with its model name.
void plot_accuracy_vs_size(const std::filesystem::path& path, const std::vector<std::string>& labels,
                           const std::vector<double>& sizes, const std::vector<double>& accuracies,
                           const PlotOptions& options = {});

/// A grouped bar chart: one group of bars per category along the x axis, one bar per series in
/// each group (with a legend when there are several), each bar labelled with its value; the y axis
/// starts at 0. Category labels may hold '\n' and are wrapped at spaces to fit their group.
struct BarChart {
  std::vector<std::string> categories;
  std::vector<std::string> series;          ///< one name per row of `values`
  std::vector<std::vector<double>> values;  ///< values[series][category]: finite and >= 0
  /// Optional whiskers (e.g. a 95 % interval), the shape of `values`; NaN leaves a bar without one.
  std::vector<std::vector<double>> lower, upper;
  int decimals = -1;            ///< digits of the value labels; -1: none for whole numbers, else 3
  int highlight = -1;           ///< one series only: this category's bar is drawn in orange
  std::string highlight_label;  ///< the legend entry of the highlighted bar, e.g. "best run"
};

void plot_bar_chart(const std::filesystem::path& path, const BarChart& chart, const PlotOptions& options = {});

/// A grid of images in titled rows, each image with caption lines under it (e.g. a gallery of
/// misclassified patches). Images are read from their files and scaled to fit `tile` pixels, the
/// aspect kept (enlarged by pixel replication, so that a 50x50 patch shows its pixels); an image
/// that cannot be read is drawn as a grey tile that says so. A row longer than `columns` wraps; an
/// empty row says "none". The figure's size follows from the content: `columns` tiles wide.
struct ImageTile {
  std::filesystem::path image;
  std::vector<std::string> caption;  ///< lines under the image
};
struct ImageRow {
  std::string title;
  std::vector<ImageTile> tiles;
};
struct ImageGridOptions {
  std::string title;
  int tile = 112;    ///< pixels, [32, 1024]
  int columns = 8;   ///< [1, 64]
};

void plot_image_grid(const std::filesystem::path& path, const std::vector<ImageRow>& rows,
                     const ImageGridOptions& options = {});

/// Writes <prefix>roc.png, <prefix>pr.png, <prefix>confusion_matrix.png and
/// <prefix>reliability.png into `folder` (ROC and PR only when the report has both classes) and
/// returns the paths written.
std::vector<std::filesystem::path> write_evaluation_plots(const std::filesystem::path& folder,
                                                          const EvaluationReport& report,
                                                          const std::string& prefix = "",
                                                          const PlotOptions& options = {});

}  // namespace histocnn::metrics
