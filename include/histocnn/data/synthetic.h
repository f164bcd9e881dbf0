#pragma once
// Synthetic H&E-looking patches in the Kaggle layout: the embedded default data for the demo and
// the tests when the real dataset is absent.
//
//   histocnn::data::SyntheticOptions o;                 // 12 patients x 100 patches, 30 % positive
//   auto summary = histocnn::data::generate_synthetic("data/synthetic", o);
//   auto manifest = histocnn::data::scan_directory("data/synthetic").manifest;
//
// Files: <root>/<patient>/<C>/<patient>_idx5_x<X>_y<Y>_class<C>.png, patient ids "90001",
// "90002", ..., X and Y on a patch_size grid starting at 1 (as in the real data), positives
// clustered around a "tumour" centre per patient. A patch is pink eosin stroma with fibre texture,
// white fat cells and tears, and purple haematoxylin nuclei. Each patch has a latent tumour score
// t drawn around 0.3 (label 0) or 0.7 (label 1) plus a per-patient shift, with a spread that grows
// with `difficulty`; t sets the nuclear count, size, roundness, irregularity and darkness, the
// share of crowded purple tumour nests and the amount of fat. So the labels overlap: some
// negatives are dense, some positives sparse, and a trained model stays short of AUC 1 at the
// default difficulty 0.5: `histocnn demo --backbone simple_cnn` (16 patients x 120 patches,
// seed 42) measured validation AUC 0.86 and test AUC 0.91 (docs/benchmarks.md, "The demo").
// Each patient has its own stain vectors, stain strengths and background light, so patients
// differ in colour the way slides do. Output is deterministic for a seed.
#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>

namespace histocnn::data {

struct SyntheticOptions {
  int patients = 12;
  int patches_per_patient = 100;
  double positive_fraction = 0.3;  // overall; each patient gets between 0.5x and 1.5x of it
  int patch_size = 50;
  uint64_t seed = 7;
  double difficulty = 0.5;         // 0 easy .. 1 hard (label overlap and patient shifts)
  int border_patches = 0;          // extra patches in total, smaller than patch_size (cut at the
                                   // slide's right or bottom edge, like the real 50x42, 50x1, ...)
};

struct SyntheticSummary {
  int64_t written = 0;
  int64_t positives = 0;
  int64_t negatives = 0;
  int patients = 0;
};

/// Writes the patches (atomically, one file at a time) under `root`, creating it. Throws
/// std::invalid_argument for bad options, when `root` is a file, or when `root` already holds patch
/// files (pass an empty or new folder).
SyntheticSummary generate_synthetic(const std::filesystem::path& root, const SyntheticOptions& o);

/// One patch (RGB, CV_8UC3, patch_size x patch_size) with label 0 or 1, for tests and demos. Its
/// patient look (stain colours, shift) is drawn from `seed` too. Same label and seed, same pixels.
cv::Mat render_synthetic_patch(int label, uint64_t seed, const SyntheticOptions& o);

}  // namespace histocnn::data
