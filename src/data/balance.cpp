#include "histocnn/data/balance.h"

#include <algorithm>
#include <limits>
#include <numeric>
#include <tuple>

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"

namespace histocnn::data {

uint64_t uniform_below(std::mt19937_64& rng, uint64_t n) {
  HISTOCNN_CHECK(n > 0, "uniform_below needs n > 0");
  // Reject the top partial block so that every residue is equally likely.
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t r;
  do {
    r = rng();
  } while (r >= limit);
  return r % n;
}

std::vector<size_t> seeded_permutation(size_t n, uint64_t seed) {
  std::vector<size_t> p(n);
  std::iota(p.begin(), p.end(), size_t{0});
  std::mt19937_64 rng(seed);
  seeded_shuffle(p, rng);
  return p;
}

Manifest balance_classes(const Manifest& m, int64_t per_class, uint64_t seed) {
  HISTOCNN_CHECK(per_class > 0, "balance_classes: per_class must be > 0, got {}", per_class);
  const auto& rows = m.rows();
  auto by_key = [&](size_t a, size_t b) {
    const auto& ra = rows[a];
    const auto& rb = rows[b];
    return std::tie(ra.path, ra.patient, ra.x, ra.y, ra.label) <
           std::tie(rb.path, rb.patient, rb.x, rb.y, rb.label);
  };
  std::vector<size_t> keep;
  for (int label = 0; label < 2; ++label) {
    // One stream per class, so the draw of one class does not depend on the size of the other.
    std::mt19937_64 rng(seed ^ (0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(label + 1)));
    std::vector<size_t> idx;
    for (size_t i = 0; i < rows.size(); ++i)
      if (rows[i].label == label) idx.push_back(i);
    std::sort(idx.begin(), idx.end(), by_key);
    if (static_cast<int64_t>(idx.size()) < per_class) {
      log_warn("balance_classes: class {} has only {} rows, fewer than the {} requested; keeping "
               "all of them, so the classes stay unbalanced",
               label, idx.size(), per_class);
    } else {
      seeded_shuffle(idx, rng);
      idx.resize(static_cast<size_t>(per_class));
    }
    keep.insert(keep.end(), idx.begin(), idx.end());
  }
  std::sort(keep.begin(), keep.end(), by_key);
  std::vector<PatchRecord> out;
  out.reserve(keep.size());
  for (size_t i : keep) out.push_back(rows[i]);
  return Manifest(m.root(), std::move(out));
}

}  // namespace histocnn::data
