#pragma once
// Slide maps from patch coordinates. A Kaggle file name carries its patch's (x, y) on the slide,
// so each patient's patches rebuild a mosaic of the tissue: beside it the true IDC map, the
// predicted probability map and the errors, and the tumour burden (fraction of tissue patches
// positive) predicted against the truth. Spatial context: IDC regions are contiguous, so a
// patch's probability can be averaged with its neighbours' on the slide, or a learned head
// (context_model.h) can weigh the patch against its neighbourhood.
//
//   auto grids = histocnn::inference::slide_grids(manifest);
//   cv::Mat panel = histocnn::inference::draw_patient_map(grids[0], manifest, p, 0.5);
//   auto smoothed = histocnn::inference::smooth_over_neighbours(manifest, p, 3);
#include "histocnn/data/manifest.h"

#include <opencv2/core.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::inference {

class ContextModel;

/// One patient's patches on their slide grid.
struct SlideGrid {
  std::string patient;
  int x0 = 0, y0 = 0;  ///< the top-left patch's coordinates
  int step = 50;       ///< coordinate distance between neighbouring patches
  int cols = 0, rows = 0;
  std::vector<int64_t> cells;  ///< rows x cols, row-major: the manifest row at each place, or -1
  int64_t at(int col, int row) const { return cells[static_cast<size_t>(row) * cols + col]; }
};

/// OpenCV's jet colour map as RGB, 0 (blue) to 1 (dark red): the probability colours of slide
/// maps and whole-slide heatmaps.
cv::Vec3b jet(double value);

/// One grid per patient, patients in order of first appearance. The step is the patient's
/// smallest positive coordinate difference (50 for the Kaggle patches). Throws
/// std::invalid_argument when two patches of a patient share a place or the manifest is empty.
std::vector<SlideGrid> slide_grids(const data::Manifest& manifest);
/// Why slide_grids refuses the manifest, or "" when it does not: slide maps and context need the
/// grids, and a caller that can go on without them (a run's test maps, cv's context) asks first.
std::string slide_grid_problem(const data::Manifest& manifest);

/// The largest smoothing radius accepted (`maps --smooth`, `slide predict --smooth`, `cv --context`,
/// smooth_on_grid): 16 places each way, a 33 x 33 window.
constexpr int kMaxSmoothRadius = 16;
/// The smoothing radius `maps`, `cv --context` and a run's test maps use unless told: 3 places each
/// way, a 7 x 7 window (about 1.4 mm of tissue at the Kaggle patches' scale). Chosen on validation
/// patients, among radii 1-3, on every fold of two cross-validations (docs/results.md, "Spatial
/// context"); larger windows lost on them.
constexpr int kDefaultSmoothRadius = 3;
/// Throws std::invalid_argument unless 0 <= radius <= kMaxSmoothRadius; `option` (e.g. "--smooth")
/// names what the user typed, for options checked before any work.
void check_smooth_radius(int radius, const std::string& option = "");

/// Context by smoothing: each patch's probability replaced by the mean over the patches present
/// in the (2 radius + 1)^2 window around it on its slide (itself included). radius 0 returns p.
std::vector<double> smooth_over_neighbours(const data::Manifest& manifest, const std::vector<double>& p,
                                           int radius = kDefaultSmoothRadius);
/// The same smoothing on one grid whose cells index `p`: writes out[i] for each index i the grid
/// holds (out must be as long as p). Whole-slide tiles use it on their tile grid.
void smooth_on_grid(const SlideGrid& grid, const std::vector<double>& p, int radius, std::vector<double>& out);

struct PatientBurden {
  std::string patient;
  int64_t patches = 0;
  double true_burden = 0;       ///< fraction of the patient's patches labelled IDC-positive
  double predicted_burden = 0;  ///< fraction predicted positive (p >= threshold)
};
std::vector<PatientBurden> tumour_burden(const data::Manifest& manifest, const std::vector<double>& p,
                                         double threshold);

/// Four panels side by side, `tile` pixels per patch: the tissue (each patch image read from the
/// manifest's root and shrunk), the true IDC map (red positive, grey negative), the predicted
/// probability (jet, 0 blue to 1 red), the errors (orange false positive, blue false negative,
/// grey correct); white where the slide has no patch. RGB uint8 with a title row.
cv::Mat draw_patient_map(const SlideGrid& grid, const data::Manifest& manifest, const std::vector<double>& p,
                         double threshold, int tile = 8);

struct SlideMapReport {
  std::vector<PatientBurden> burden;
  std::vector<std::filesystem::path> images;  ///< one PNG per patient drawn
  std::string text;  ///< burden per patient, then patch-alone and with-context metrics side by side
};

/// What `histocnn maps` writes into `out_dir`: <patient>.png for up to `max_patients` patients
/// (0: all), burden.csv (patient, patches, true_burden, predicted_burden,
/// predicted_burden_with_context from smoothing, predicted_burden_with_learned_context, empty
/// without a context model), and the report, which gives, on the same patches and never mixed:
/// patch-alone metrics, metrics with context by smoothing of radius `smooth_radius` (0 leaves it
/// out) and, when `context` is given, with context from that learned head (at its own threshold).
SlideMapReport write_slide_maps(const data::Manifest& manifest, const std::vector<double>& p, double threshold,
                                const std::filesystem::path& out_dir, int smooth_radius = kDefaultSmoothRadius,
                                int max_patients = 0, int tile = 8, const ContextModel* context = nullptr);

}  // namespace histocnn::inference
