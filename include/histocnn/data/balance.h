#pragma once
// Class balancing by seeded down-sampling, and the portable shuffling the data module uses.
//
//   auto balanced = histocnn::data::balance_classes(manifest, 2500);   // the study's 2,500 per class
//   auto order = histocnn::data::seeded_permutation(balanced.size(), /*seed=*/7);
//
// Sampling uses std::mt19937_64 and its own Fisher-Yates and bounded integers (not std::shuffle or
// std::uniform_int_distribution, whose results differ between standard libraries), so a seed gives
// the same rows on every platform.
#include <cstdint>
#include <random>
#include <vector>

#include "histocnn/data/manifest.h"

namespace histocnn::data {

/// Keeps at most `per_class` rows of each label, chosen at random with `seed`; the result is
/// sorted by path (then patient, x, y), so it does not depend on the input row order. Warns when a
/// class has fewer rows than requested (all of them are kept). Throws std::invalid_argument for
/// per_class <= 0.
Manifest balance_classes(const Manifest& m, int64_t per_class, uint64_t seed = 42);

/// A uniform integer in [0, n) (n > 0) from `rng`, by rejection; identical on every platform.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t n);

/// Fisher-Yates shuffle of `v` with uniform_below; identical on every platform.
template <typename T>
void seeded_shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(uniform_below(rng, i));
    std::swap(v[i - 1], v[j]);
  }
}

/// A random permutation of 0..n-1 from std::mt19937_64(seed).
std::vector<size_t> seeded_permutation(size_t n, uint64_t seed);

}  // namespace histocnn::data
