#pragma once
// The comparison loop: a grid of runs (backbones x heads x freezing x hyper-parameters) and the
// study's incremental ablation, summarised in one table.
//
//   auto config = histocnn::train::load_compare_config("compare.json");
//   auto rows = histocnn::train::run_compare(config);     // runs already done are read, not redone
//   std::cout << histocnn::train::compare_table_markdown(rows);
//   std::cout << histocnn::train::best_run_summary(rows);  // highest test AUC
//
// compare.json:
//   {"data_dir": "patches/", "output_dir": "compare",
//    "base": {"weights": "imagenet", "image_size": 96, "epochs": 10},
//    "grid": {"backbone": ["mobilenet_v2", "simple_cnn"], "freeze_backbone": [true, false]},
//    "ablation": false}
// Option names are those of set_run_option (train/options.h). With "ablation": true the base run
// is followed by the study's cumulative steps: 20 epochs, + batch norm, + augmentation,
// dropout 0.5, Adam, last 4 layers unfrozen.
#include "histocnn/train/run.h"

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace histocnn::train {

struct CompareStep {
  std::string label;  ///< e.g. "backbone=simple_cnn freeze_backbone=false" or "+ batch norm"
  RunOptions options;
};

struct CompareConfig {
  std::vector<CompareStep> steps;
  std::filesystem::path output_dir = "compare";
  bool ablation = false;
};

struct CompareRow {
  std::string label, run_name, backbone, head;
  int64_t parameters = 0;
  double size_mb = 0;
  double train_accuracy = 0, val_accuracy = 0, val_auc = 0;
  double test_accuracy = 0, precision = 0, recall = 0, f1 = 0, auc = 0, auc_low = 0, auc_high = 0, test_loss = 0;
  double stain_shift_auc = 0;  ///< test AUC with the test patients restained (NaN when not evaluated)
  double seconds = 0, images_per_second = 0;
  bool reused = false;  ///< read from a run folder that was already complete
};

/// Reads a compare config (JSON); errors name the file and the offending key.
CompareConfig load_compare_config(const std::filesystem::path& file);
/// Runs every step (or reads it when its run folder already holds metrics.json), writes the
/// results (write_compare_results) after each one, and returns the rows in step order.
std::vector<CompareRow> run_compare(const CompareConfig& config);
/// Writes <output_dir>/results.csv, results.md (the table, the best run, the ablation steps when
/// `ablation`, links to the figures) and the figures (write_compare_figures).
void write_compare_results(const std::filesystem::path& output_dir, const std::vector<CompareRow>& rows,
                           bool ablation = false);
/// The row of a finished run folder.
CompareRow read_run_row(const std::filesystem::path& run_dir);

/// The best run: the highest test AUC; ties go to the higher test accuracy, then to the earlier
/// row. Rows without a test AUC (NaN) are not candidates; -1 when no row has one.
int best_run_index(const std::vector<CompareRow>& rows);
/// One line naming the best run, the rule that chose it, and its test AUC, accuracy and size.
std::string best_run_summary(const std::vector<CompareRow>& rows);

/// The study's figures, written into `output_dir`: one bar chart per test metric across runs
/// (test_accuracy.png, test_precision.png, test_recall.png, test_f1.png, test_auc.png with the
/// 95 % intervals as whiskers, test_loss.png), the runs sorted by parameter count (smallest first)
/// and the best run in orange; and size_vs_accuracy.png (test accuracy against parameters). Each
/// figure is 520 px high and max(640, 120 + 140 x runs) px wide (at most 8000). A run without
/// a value for a metric (no test split) is left out of that chart, and a chart without any value
/// is not drawn. Returns the paths written.
std::vector<std::filesystem::path> write_compare_figures(const std::filesystem::path& output_dir,
                                                         const std::vector<CompareRow>& rows);

std::string compare_table_csv(const std::vector<CompareRow>& rows);
std::string compare_table_markdown(const std::vector<CompareRow>& rows);
/// For the ablation: each step's change in test AUC and accuracy from the step before.
std::string ablation_summary(const std::vector<CompareRow>& rows);

}  // namespace histocnn::train
