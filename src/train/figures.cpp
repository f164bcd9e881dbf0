#include "histocnn/train/figures.h"

#include "histocnn/core/error.h"
#include "histocnn/data/split.h"
#include "histocnn/inference/predict.h"
#include "histocnn/metrics/plots.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace histocnn::train {

namespace fs = std::filesystem;

namespace {

std::string patch_table(const std::vector<GalleryPatch>& patches) {
  if (patches.empty()) return "  none\n";
  std::string s = "  rank  P(IDC-positive)  patient     path\n";
  for (size_t i = 0; i < patches.size(); ++i) {
    const auto& p = patches[i];
    s += fmt::format("  {:>4}  {:>15.4f}  {:<10}  {}\n", i + 1, p.p_positive, p.patient, p.path);
  }
  return s;
}

std::string p_caption(double p) { return fmt::format("P = {:.3f}", p); }

}  // namespace

std::string ErrorGallery::to_text() const {
  return fmt::format("Most confident errors on the test split (threshold {:.3f}; P = P(IDC-positive))\n", threshold) +
         fmt::format("False positives (IDC-negative, P >= threshold), highest P first: {} shown of {}\n",
                     false_positives.size(), false_positive_count) +
         patch_table(false_positives) +
         fmt::format("False negatives (IDC-positive, P < threshold), lowest P first: {} shown of {}\n",
                     false_negatives.size(), false_negative_count) +
         patch_table(false_negatives) + "\n";
}

ErrorGallery most_confident_errors(const data::Manifest& m, const std::vector<int>& labels,
                                   const std::vector<double>& p_positive, double threshold, size_t per_kind) {
  HISTOCNN_CHECK(std::isfinite(threshold) && threshold > 0 && threshold < 1, "threshold must be in (0, 1), got {}",
                 threshold);
  HISTOCNN_CHECK(per_kind >= 1 && per_kind <= 64, "per_kind must be in [1, 64], got {}", per_kind);
  HISTOCNN_CHECK(labels.size() == m.size() && p_positive.size() == m.size(),
                 "the manifest has {} rows but there are {} labels and {} probabilities; pass one per row, in the "
                 "manifest's order", m.size(), labels.size(), p_positive.size());
  const auto& rows = m.rows();
  std::vector<size_t> fp, fn;
  for (size_t i = 0; i < rows.size(); ++i) {
    const double p = p_positive[i];
    HISTOCNN_CHECK(std::isfinite(p) && p >= 0 && p <= 1, "p_positive[{}] = {} is not a probability", i, p);
    HISTOCNN_CHECK(labels[i] == 0 || labels[i] == 1, "labels[{}] = {} must be 0 or 1", i, labels[i]);
    HISTOCNN_CHECK(labels[i] == rows[i].label,
                   "labels[{}] = {} but the manifest row '{}' has label {}; the predictions are not in the "
                   "manifest's order", i, labels[i], rows[i].path, rows[i].label);
    const bool predicted_positive = p >= threshold;
    if (labels[i] == 0 && predicted_positive) fp.push_back(i);
    if (labels[i] == 1 && !predicted_positive) fn.push_back(i);
  }
  // Most confident first; ties keep the manifest's order.
  std::stable_sort(fp.begin(), fp.end(), [&](size_t a, size_t b) { return p_positive[a] > p_positive[b]; });
  std::stable_sort(fn.begin(), fn.end(), [&](size_t a, size_t b) { return p_positive[a] < p_positive[b]; });
  auto take = [&](const std::vector<size_t>& order) {
    std::vector<GalleryPatch> out;
    for (size_t k = 0; k < std::min(per_kind, order.size()); ++k) {
      const size_t i = order[k];
      out.push_back({i, m.absolute_path(i), rows[i].path, rows[i].patient, rows[i].label, p_positive[i]});
    }
    return out;
  };
  ErrorGallery g;
  g.threshold = threshold;
  g.per_kind = per_kind;
  g.false_positive_count = static_cast<int64_t>(fp.size());
  g.false_negative_count = static_cast<int64_t>(fn.size());
  g.false_positives = take(fp);
  g.false_negatives = take(fn);
  return g;
}

void plot_error_gallery(const fs::path& path, const ErrorGallery& gallery) {
  auto row = [](const std::string& title, const std::vector<GalleryPatch>& patches) {
    metrics::ImageRow r;
    r.title = title;
    for (const auto& p : patches) r.tiles.push_back({p.image, {"patient " + p.patient, p_caption(p.p_positive)}});
    return r;
  };
  metrics::ImageGridOptions options;
  options.title = fmt::format("Most confident errors on the test split (threshold {:.3f})", gallery.threshold);
  options.columns = static_cast<int>(std::clamp<size_t>(gallery.per_kind, 1, 64));
  metrics::plot_image_grid(
      path,
      {row(fmt::format("False positives: IDC-negative, highest P(IDC-positive) first ({} of {})",
                       gallery.false_positives.size(), gallery.false_positive_count),
           gallery.false_positives),
       row(fmt::format("False negatives: IDC-positive, lowest P(IDC-positive) first ({} of {})",
                       gallery.false_negatives.size(), gallery.false_negative_count),
           gallery.false_negatives)},
      options);
}

std::string write_error_gallery(const fs::path& png, const data::Manifest& test,
                                const inference::Predictions& predictions, double threshold, size_t per_kind) {
  const auto gallery = most_confident_errors(test, predictions.labels, predictions.p_positive, threshold, per_kind);
  plot_error_gallery(png, gallery);
  return gallery.to_text() + fmt::format("(drawn in {})\n\n", (png.parent_path().filename() / png.filename()).string());
}

std::vector<ClassCounts> plot_class_distribution(const fs::path& path, const data::Manifest& input,
                                                 const data::Manifest& split, bool balanced) {
  auto whole = [](const std::string& group, const data::Manifest& m) {
    const auto counts = m.class_counts();
    return ClassCounts{group, static_cast<int64_t>(m.patients().size()), counts[0], counts[1]};
  };
  std::vector<ClassCounts> groups = {whole(balanced ? "before balancing" : "all patches", input)};
  if (balanced) groups.push_back(whole("after balancing", split));
  for (const auto& s : data::summarize_splits(split)) {
    groups.push_back({s.split.empty() ? "unassigned" : s.split, s.patients, s.negatives, s.positives});
  }
  metrics::BarChart chart;
  chart.series = {"IDC-negative (class 0)", "IDC-positive (class 1)"};
  chart.values.assign(2, {});
  for (const auto& g : groups) {
    chart.categories.push_back(fmt::format("{}\n{} patient{}", g.group, g.patients, g.patients == 1 ? "" : "s"));
    chart.values[0].push_back(static_cast<double>(g.negatives));
    chart.values[1].push_back(static_cast<double>(g.positives));
  }
  metrics::PlotOptions options;
  options.width = std::max(640, 140 + 130 * static_cast<int>(groups.size()));
  options.y_label = "patches";
  options.title = balanced ? "Class distribution before and after balancing, and per split"
                           : "Class distribution, all patches and per split";
  metrics::plot_bar_chart(path, chart, options);
  return groups;
}

}  // namespace histocnn::train
