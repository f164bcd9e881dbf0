#include "histocnn/inference/slide_maps.h"

#include "histocnn/core/error.h"
#include "histocnn/data/csv.h"
#include "histocnn/inference/context_model.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/image.h"
#include "histocnn/metrics/binary.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <climits>
#include <map>
#include <numeric>

namespace histocnn::inference {

namespace {

void check_lengths(const data::Manifest& m, const std::vector<double>& p) {
  HISTOCNN_CHECK(p.size() == m.size(), "{} probabilities for a manifest of {} patches; give one per patch", p.size(),
                 m.size());
}

}  // namespace

// Every smoothing passes here: a window of (2 r + 1)^2 places per patch is bounded, so a radius
// typed wrong cannot make a map run for hours.
void check_smooth_radius(int radius, const std::string& option) {
  HISTOCNN_CHECK(radius >= 0 && radius <= kMaxSmoothRadius, "the smoothing radius{} must be in [0, {}], got {}",
                 option.empty() ? "" : " (" + option + ")", kMaxSmoothRadius, radius);
}

cv::Vec3b jet(double value) {
  static const cv::Mat lut = [] {
    cv::Mat ramp(1, 256, CV_8U), colour;
    for (int i = 0; i < 256; ++i) ramp.at<uint8_t>(0, i) = static_cast<uint8_t>(i);
    cv::applyColorMap(ramp, colour, cv::COLORMAP_JET);
    cv::cvtColor(colour, colour, cv::COLOR_BGR2RGB);
    return colour;
  }();
  return lut.at<cv::Vec3b>(0, static_cast<int>(std::clamp(value, 0.0, 1.0) * 255 + 0.5));
}

std::vector<SlideGrid> slide_grids(const data::Manifest& manifest) {
  HISTOCNN_CHECK(manifest.size() > 0, "slide maps need at least one patch");
  const auto& rows = manifest.rows();
  std::vector<std::string> order;
  std::map<std::string, std::vector<int64_t>> by_patient;
  for (size_t i = 0; i < rows.size(); ++i) {
    auto& list = by_patient[rows[i].patient];
    if (list.empty()) order.push_back(rows[i].patient);
    list.push_back(static_cast<int64_t>(i));
  }
  std::vector<SlideGrid> grids;
  for (const auto& patient : order) {
    const auto& idx = by_patient[patient];
    SlideGrid g;
    g.patient = patient;
    int x0 = INT_MAX, y0 = INT_MAX, x1 = INT_MIN, y1 = INT_MIN, step = INT_MAX;
    std::vector<int> xs, ys;
    for (int64_t i : idx) {
      x0 = std::min(x0, rows[i].x), y0 = std::min(y0, rows[i].y);
      x1 = std::max(x1, rows[i].x), y1 = std::max(y1, rows[i].y);
      xs.push_back(rows[i].x), ys.push_back(rows[i].y);
    }
    for (auto* v : {&xs, &ys}) {
      std::sort(v->begin(), v->end());
      for (size_t k = 1; k < v->size(); ++k) {
        if ((*v)[k] > (*v)[k - 1]) step = std::min(step, (*v)[k] - (*v)[k - 1]);
      }
    }
    g.step = step == INT_MAX ? 50 : step;
    g.x0 = x0, g.y0 = y0;
    g.cols = (x1 - x0) / g.step + 1, g.rows = (y1 - y0) / g.step + 1;
    g.cells.assign(static_cast<size_t>(g.cols) * g.rows, -1);
    for (int64_t i : idx) {
      const int c = (rows[i].x - x0) / g.step, r = (rows[i].y - y0) / g.step;
      auto& cell = g.cells[static_cast<size_t>(r) * g.cols + c];
      HISTOCNN_CHECK(cell < 0, "patient {}: '{}' and '{}' are at the same place on the slide (x {}, y {}); remove "
                     "the duplicate", patient, rows[cell].path, rows[i].path, rows[i].x, rows[i].y);
      cell = i;
    }
    grids.push_back(std::move(g));
  }
  return grids;
}

std::string slide_grid_problem(const data::Manifest& manifest) {
  try {
    slide_grids(manifest);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

std::vector<double> smooth_over_neighbours(const data::Manifest& manifest, const std::vector<double>& p, int radius) {
  check_lengths(manifest, p);
  check_smooth_radius(radius);
  if (radius == 0) return p;
  std::vector<double> out(p.size());
  for (const auto& g : slide_grids(manifest)) smooth_on_grid(g, p, radius, out);
  return out;
}

void smooth_on_grid(const SlideGrid& g, const std::vector<double>& p, int radius, std::vector<double>& out) {
  check_smooth_radius(radius);
  HISTOCNN_CHECK(out.size() == p.size(), "smooth_on_grid: {} outputs for {} probabilities", out.size(), p.size());
  for (int r = 0; r < g.rows; ++r) {
    for (int c = 0; c < g.cols; ++c) {
      const int64_t i = g.at(c, r);
      if (i < 0) continue;
      double sum = 0;
      int n = 0;
      for (int dr = -radius; dr <= radius; ++dr) {
        for (int dc = -radius; dc <= radius; ++dc) {
          const int rr = r + dr, cc = c + dc;
          if (rr < 0 || cc < 0 || rr >= g.rows || cc >= g.cols) continue;
          const int64_t j = g.at(cc, rr);
          if (j < 0) continue;
          sum += p[static_cast<size_t>(j)];
          ++n;
        }
      }
      out[static_cast<size_t>(i)] = sum / n;
    }
  }
}

std::vector<PatientBurden> tumour_burden(const data::Manifest& manifest, const std::vector<double>& p,
                                         double threshold) {
  check_lengths(manifest, p);
  // Patients in order of first appearance, as slide_grids lists them.
  std::vector<PatientBurden> out;
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < p.size(); ++i) {
    const auto& row = manifest.rows()[i];
    const auto [it, added] = index.emplace(row.patient, out.size());
    if (added) out.push_back({row.patient});
    auto& b = out[it->second];
    ++b.patches;
    b.true_burden += row.label == 1;
    b.predicted_burden += p[i] >= threshold;
  }
  for (auto& b : out) {
    b.true_burden /= b.patches;
    b.predicted_burden /= b.patches;
  }
  return out;
}

cv::Mat draw_patient_map(const SlideGrid& g, const data::Manifest& manifest, const std::vector<double>& p,
                         double threshold, int tile) {
  check_lengths(manifest, p);
  HISTOCNN_CHECK(tile >= 2 && tile <= 64, "tile must be in [2, 64] pixels per patch, got {}", tile);
  const int w = g.cols * tile, h = g.rows * tile, gap = 12, title = 22;
  cv::Mat out(h + title, 4 * w + 3 * gap, CV_8UC3, cv::Scalar(255, 255, 255));
  const char* titles[] = {"tissue", "true IDC", "P(IDC)", "errors"};
  for (int k = 0; k < 4; ++k) {
    cv::putText(out, titles[k], cv::Point(k * (w + gap), 16), cv::FONT_HERSHEY_SIMPLEX, 0.5, cv::Scalar(0, 0, 0), 1,
                cv::LINE_AA);
  }
  const cv::Vec3b red(200, 30, 40), grey(200, 200, 200), orange(245, 150, 20), blue(40, 90, 220);
  for (int r = 0; r < g.rows; ++r) {
    for (int c = 0; c < g.cols; ++c) {
      const int64_t i = g.at(c, r);
      if (i < 0) continue;
      const auto& row = manifest.rows()[i];
      const bool predicted = p[i] >= threshold, truth = row.label == 1;
      cv::Mat patch;
      cv::resize(io::read_image_rgb(manifest.root() / row.path), patch, cv::Size(tile, tile), 0, 0, cv::INTER_AREA);
      patch.copyTo(out(cv::Rect(c * tile, title + r * tile, tile, tile)));
      const cv::Vec3b colours[] = {truth ? red : grey, jet(p[i]),
                                   predicted == truth ? grey : (predicted ? orange : blue)};
      for (int k = 0; k < 3; ++k) {
        out(cv::Rect((k + 1) * (w + gap) + c * tile, title + r * tile, tile, tile)).setTo(colours[k]);
      }
    }
  }
  return out;
}

SlideMapReport write_slide_maps(const data::Manifest& manifest, const std::vector<double>& p, double threshold,
                                const std::filesystem::path& out_dir, int smooth_radius, int max_patients, int tile,
                                const ContextModel* context) {
  check_lengths(manifest, p);
  HISTOCNN_CHECK(max_patients >= 0, "max_patients must be >= 0 (0: all), got {}", max_patients);
  SlideMapReport report;
  const auto smoothed = smooth_over_neighbours(manifest, p, smooth_radius);
  const auto learned = context ? context->predict(manifest, p) : std::vector<double>();
  report.burden = tumour_burden(manifest, p, threshold);
  const auto burden_smoothed = tumour_burden(manifest, smoothed, threshold);
  const auto burden_learned = context ? tumour_burden(manifest, learned, context->threshold())
                                      : std::vector<PatientBurden>();
  const auto grids = slide_grids(manifest);
  std::string csv =
      "patient,patches,true_burden,predicted_burden,predicted_burden_with_context,"
      "predicted_burden_with_learned_context\n";
  report.text = fmt::format("{:<10} {:>8} {:>8} {:>10} {:>14}{}\n", "patient", "patches", "true", "predicted",
                            smooth_radius > 0 ? "with context" : "",
                            context ? fmt::format(" {:>15}", "learned head") : "");
  for (size_t k = 0; k < grids.size(); ++k) {
    const auto& b = report.burden[k];
    csv += fmt::format("{},{},{:.4f},{:.4f},{:.4f},{}\n", data::csv_field(b.patient), b.patches, b.true_burden, b.predicted_burden,
                       burden_smoothed[k].predicted_burden,
                       context ? fmt::format("{:.4f}", burden_learned[k].predicted_burden) : "");
    report.text += fmt::format("{:<10} {:>8} {:>8.3f} {:>10.3f} {:>14}{}\n", b.patient, b.patches, b.true_burden,
                               b.predicted_burden,
                               smooth_radius > 0 ? fmt::format("{:.3f}", burden_smoothed[k].predicted_burden) : "",
                               context ? fmt::format(" {:>15.3f}", burden_learned[k].predicted_burden) : "");
    if (max_patients == 0 || static_cast<int>(k) < max_patients) {
      const auto png = out_dir / (grids[k].patient + ".png");
      io::write_png(png, draw_patient_map(grids[k], manifest, p, threshold, tile));
      report.images.push_back(png);
    }
  }
  io::write_file_atomic(out_dir / "burden.csv", csv);
  std::vector<int> labels;
  for (const auto& r : manifest.rows()) labels.push_back(r.label);
  const int label_width = context ? 50 : 28;
  const auto row = [&](const std::string& name, const metrics::BinaryMetrics& m) {
    return fmt::format("{:<{}} {:>8.4f} {:>9.4f} {:>12.4f} {:>12.4f}\n", name, label_width, m.roc_auc, m.accuracy,
                       m.recall, m.specificity);
  };
  report.text += fmt::format("\n{:<{}} {:>8} {:>9} {:>12} {:>12}\n", "", label_width, "ROC-AUC", "accuracy",
                             "sensitivity", "specificity");
  report.text += row("patch alone", metrics::evaluate_binary(labels, p, threshold));
  if (smooth_radius > 0) {
    report.text += row(fmt::format("with context (radius {})", smooth_radius),
                       metrics::evaluate_binary(labels, smoothed, threshold));
  }
  if (context) {
    report.text += row("with context (learned head over the neighbourhood)",
                       metrics::evaluate_binary(labels, learned, context->threshold()));
    report.text += context->summary() + "\n";
    const auto warning = context->neighbourhood_warning(manifest);
    if (!warning.empty()) report.text += warning + "\n";
  }
  return report;
}

}  // namespace histocnn::inference
