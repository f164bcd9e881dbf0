#pragma once
// Train / validation / test splits, by patient (the default) or by patch.
//
//   histocnn::data::SplitOptions o;            // 60/20/20, seed 42, by patient
//   auto split = histocnn::data::split_manifest(manifest, o);
//   fmt::print("{}", histocnn::data::format_split_summary(histocnn::data::summarize_splits(split)));
//   auto train = split.subset("train");
//
// Patches of one patient are highly correlated, so the default keeps every patient in exactly one
// split. The algorithm, deterministic for a seed and independent of the input row order:
//  1. Patients are sorted by (positive fraction, id) and cut into strata of k consecutive patients,
//     k = the number of splits with a non-zero fraction.
//  2. 64 seeded trials: the patients of each stratum are shuffled (portable Fisher-Yates on
//     std::mt19937_64), then dealt out greedily, each to the split furthest below its target patch
//     count (every split with a non-zero fraction gets at least one patient).
//  3. The trial with the lowest cost, sum over splits of |patch share - fraction| +
//     fraction * |positive ratio - overall positive ratio|, is refined by moving single patients
//     and swapping pairs between splits while that lowers the cost.
// by_patch = true ignores patients: the patches of each label are shuffled and cut at the
// fractions. That leaks patients between splits and inflates every metric (it is what the study
// did); it is there for comparison and logs a warning.
#include <cstdint>
#include <string>
#include <vector>

#include "histocnn/data/manifest.h"

namespace histocnn::data {

struct SplitOptions {
  double train = 0.6;
  double val = 0.2;
  double test = 0.2;
  uint64_t seed = 42;
  bool by_patch = false;

  /// Throws std::invalid_argument when a fraction is negative or not finite, train is 0, or the
  /// fractions do not sum to 1 (+-1e-6).
  void validate() const;
};

/// A copy of `m`, rows in the same order, with .split set to "train", "val" or "test" on every row.
/// Throws std::invalid_argument when a fraction is negative or not finite, train is 0, the
/// fractions do not sum to 1 (+-1e-6), the manifest is empty, or there are fewer patients (by
/// patch: patches) than splits with a non-zero fraction.
Manifest split_manifest(const Manifest& m, const SplitOptions& o);

struct SplitSummary {
  std::string split;  // "train", "val", "test", or "" for unassigned rows
  int64_t patients = 0;
  int64_t patches = 0;
  int64_t negatives = 0;
  int64_t positives = 0;
};

/// One entry per split present in `m`, in the order train, val, test, unassigned.
std::vector<SplitSummary> summarize_splits(const Manifest& m);

/// A small aligned text table (split, patients, patches, share, negatives, positives, positive %),
/// ending with a newline.
std::string format_split_summary(const std::vector<SplitSummary>& summary);

}  // namespace histocnn::data
