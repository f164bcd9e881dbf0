#pragma once
// Dataset statistics for StatisticsGen and ExampleValidator: per split the counts by class and
// patient, image sizes, per-channel mean and standard deviation and intensity histograms, the
// share of near-white background, files that do not decode, and files with identical bytes; and
// the drift between two sets of statistics.
//
//   auto m = histocnn::data::Manifest::load_csv("root/ExampleGen/x/examples/manifest.csv");
//   std::string stats = histocnn::pipeline::compute_statistics(m);          // JSON
//   histocnn::pipeline::plot_statistics(stats, "statistics.png");
//   std::string drift = histocnn::pipeline::compare_statistics(reference, stats, "train", "train");
//
// Drift, as TFX measures it: the L-infinity distance of the label distributions and the
// Jensen-Shannon divergence (base 2, in [0, 1]) of each channel's 32-bin intensity histogram.
#include "histocnn/data/manifest.h"

#include <filesystem>
#include <string>
#include <vector>

namespace histocnn::pipeline {

/// A pixel is background when each of its R, G and B values is at least this (near-white glass).
constexpr int kBackgroundLevel = 220;
/// Intensity histogram bins per channel.
constexpr int kHistogramBins = 32;

/// Statistics of every split of `m` ("all" too), as JSON text. Decodes every file (with `threads`
/// threads, 0 = all cores); files that fail to decode are listed, not fatal.
std::string compute_statistics(const data::Manifest& m, int threads = 0);

/// Drift of split `b_split` of `b` against split `a_split` of `a` (statistics JSON texts):
/// {"label_linf": x, "intensity_js": [r, g, b], "intensity_js_max": y, "background_diff": z}.
std::string compare_statistics(const std::string& a, const std::string& b, const std::string& a_split,
                               const std::string& b_split);

/// A readable figure: patches per split and class, mean intensity per channel and split,
/// background share per split, and the image sizes.
void plot_statistics(const std::string& statistics_json, const std::filesystem::path& png);

/// max_i |p_i - q_i| of two distributions (each normalised to sum 1 first; both empty: 0).
double linf_distance(const std::vector<double>& p, const std::vector<double>& q);
/// Jensen-Shannon divergence in bits (0 = same, 1 = disjoint) of two histograms (normalised first).
double jensen_shannon(const std::vector<double>& p, const std::vector<double>& q);

}  // namespace histocnn::pipeline
