#include <catch2/catch.hpp>

#include <algorithm>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>

#include "histocnn/data/balance.h"

using histocnn::data::balance_classes;
using histocnn::data::Manifest;
using histocnn::data::PatchRecord;

namespace {

Manifest make_manifest(int negatives, int positives) {
  std::vector<PatchRecord> rows;
  for (int i = 0; i < negatives + positives; ++i) {
    const int label = i < negatives ? 0 : 1;
    const std::string patient = std::to_string(100 + i % 7);
    rows.push_back({patient + "/" + std::to_string(label) + "/" + patient + "_idx5_x" + std::to_string(1 + 50 * i) +
                        "_y1_class" + std::to_string(label) + ".png",
                    patient, label, 1 + 50 * i, 1, ""});
  }
  // Not sorted by path on input.
  std::reverse(rows.begin(), rows.end());
  return Manifest("root", rows);
}

std::vector<std::string> paths(const Manifest& m) {
  std::vector<std::string> out;
  for (const auto& r : m.rows()) out.push_back(r.path);
  return out;
}

}  // namespace

TEST_CASE("balance_classes down-samples each class, sorted by path", "[data]") {
  const Manifest m = make_manifest(100, 30);
  const Manifest b = balance_classes(m, 20);
  CHECK(b.class_counts() == std::array<int64_t, 2>{20, 20});
  CHECK(b.root() == m.root());
  const auto p = paths(b);
  CHECK(std::is_sorted(p.begin(), p.end()));
  CHECK(std::set<std::string>(p.begin(), p.end()).size() == p.size());
  const auto all = paths(m);
  for (const auto& x : p) CHECK(std::find(all.begin(), all.end(), x) != all.end());

  // Deterministic, seed-dependent, independent of the input order.
  CHECK(paths(balance_classes(m, 20)) == p);
  CHECK(paths(balance_classes(m, 20, 7)) != p);
  auto rows = m.rows();
  std::rotate(rows.begin(), rows.begin() + 37, rows.end());
  CHECK(paths(balance_classes(Manifest("root", rows), 20)) == p);

  // A sample, not the first rows.
  const auto negatives = b.filter([](const PatchRecord& r) { return r.label == 0; });
  std::vector<std::string> first_negatives;
  const Manifest fresh = make_manifest(100, 30);
  for (const auto& r : fresh.rows())
    if (r.label == 0) first_negatives.push_back(r.path);
  std::sort(first_negatives.begin(), first_negatives.end());
  first_negatives.resize(20);
  CHECK(paths(negatives) != first_negatives);
}

TEST_CASE("balance_classes keeps all rows of a class smaller than requested", "[data]") {
  const Manifest m = make_manifest(100, 30);
  const Manifest b = balance_classes(m, 50);  // warns: class 1 has only 30
  CHECK(b.class_counts() == std::array<int64_t, 2>{50, 30});
  CHECK(balance_classes(m, 1000).size() == m.size());
  CHECK(balance_classes(make_manifest(5, 0), 3).class_counts() == std::array<int64_t, 2>{3, 0});
  CHECK_THROWS_AS(balance_classes(m, 0), std::invalid_argument);
  CHECK_THROWS_AS(balance_classes(m, -5), std::invalid_argument);
}

TEST_CASE("seeded_permutation is a portable, uniform permutation", "[data]") {
  const auto p = histocnn::data::seeded_permutation(10, 42);
  std::vector<size_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<size_t> iota(10);
  std::iota(iota.begin(), iota.end(), size_t{0});
  CHECK(sorted == iota);
  CHECK(histocnn::data::seeded_permutation(10, 42) == p);
  CHECK(histocnn::data::seeded_permutation(10, 43) != p);
  CHECK(histocnn::data::seeded_permutation(0, 1).empty());

  // std::mt19937_64 is specified exactly by the standard: its 10000th output is fixed, so the
  // engine (and with it every sample here) is the same on every platform.
  std::mt19937_64 engine;
  engine.discard(9999);
  CHECK(engine() == 9981545732273789042ULL);

  // Each of 5 positions receives each value about equally often.
  std::mt19937_64 rng(5);
  int counts[5][5] = {};
  for (int t = 0; t < 5000; ++t) {
    std::vector<int> v{0, 1, 2, 3, 4};
    histocnn::data::seeded_shuffle(v, rng);
    for (int i = 0; i < 5; ++i) ++counts[i][v[i]];
  }
  for (auto& row : counts)
    for (int c : row) CHECK(c == Approx(1000).margin(120));
  CHECK_THROWS_AS(histocnn::data::uniform_below(rng, 0), std::invalid_argument);
}
