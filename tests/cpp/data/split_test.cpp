#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>

#include "histocnn/data/balance.h"
#include "histocnn/data/split.h"
#include "test_support.h"

using histocnn::data::Manifest;
using histocnn::data::PatchRecord;
using histocnn::data::split_manifest;
using histocnn::data::SplitOptions;

namespace {

// Patients of different sizes (20..400 patches) and positive fractions (0..60 %), like the real data.
Manifest make_manifest(int patients, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<PatchRecord> rows;
  for (int p = 0; p < patients; ++p) {
    const std::string id = std::to_string(1000 + p);
    const int n = 20 + static_cast<int>(rng() % 381);
    const int pos = static_cast<int>(static_cast<double>(n) * static_cast<double>(rng() % 61) / 100.0);
    for (int i = 0; i < n; ++i) {
      const int label = i < pos ? 1 : 0;
      const int x = 1 + 50 * (i % 40), y = 1 + 50 * (i / 40);
      rows.push_back({id + "/" + std::to_string(label) + "/" + id + "_idx5_x" + std::to_string(x) + "_y" +
                          std::to_string(y) + "_class" + std::to_string(label) + ".png",
                      id, label, x, y, ""});
    }
  }
  return Manifest("root", rows);
}

std::map<std::string, std::string> split_of_patient(const Manifest& m) {
  std::map<std::string, std::string> out;
  for (const auto& r : m.rows()) out[r.patient] = r.split;
  return out;
}

// Every patient in exactly one split, every row assigned.
void check_patient_disjoint(const Manifest& m) {
  std::map<std::string, std::set<std::string>> splits;
  for (const auto& r : m.rows()) {
    CHECK((r.split == "train" || r.split == "val" || r.split == "test"));
    splits[r.patient].insert(r.split);
  }
  for (const auto& [patient, s] : splits) {
    INFO(patient);
    CHECK(s.size() == 1);
  }
}

double share(const Manifest& m, const std::string& split) {
  return static_cast<double>(m.subset(split).size()) / static_cast<double>(m.size());
}

double positive_ratio(const Manifest& m) {
  return static_cast<double>(m.class_counts()[1]) / static_cast<double>(m.size());
}

}  // namespace

TEST_CASE("split_manifest keeps patients apart and meets fractions and class balance", "[data]") {
  const Manifest m = make_manifest(40);
  const Manifest s = split_manifest(m, SplitOptions{});
  REQUIRE(s.size() == m.size());
  for (size_t i = 0; i < m.size(); ++i) CHECK(s.rows()[i].path == m.rows()[i].path);  // same order
  check_patient_disjoint(s);
  CHECK(share(s, "train") == Approx(0.6).margin(0.03));
  CHECK(share(s, "val") == Approx(0.2).margin(0.03));
  CHECK(share(s, "test") == Approx(0.2).margin(0.03));
  const double overall = positive_ratio(m);
  for (const char* name : {"train", "val", "test"}) {
    INFO(name);
    CHECK(positive_ratio(s.subset(name)) == Approx(overall).margin(0.03));
  }

  const auto summary = histocnn::data::summarize_splits(s);
  REQUIRE(summary.size() == 3);
  CHECK(summary[0].split == "train");
  CHECK(summary[1].split == "val");
  CHECK(summary[2].split == "test");
  int64_t patches = 0, patients = 0;
  for (const auto& e : summary) {
    CHECK(e.negatives + e.positives == e.patches);
    patches += e.patches;
    patients += e.patients;
  }
  CHECK(patches == static_cast<int64_t>(m.size()));
  CHECK(patients == 40);
  const std::string table = histocnn::data::format_split_summary(summary);
  CHECK(table.find("train") != std::string::npos);
  CHECK(table.find(std::to_string(summary[0].patches)) != std::string::npos);
  CHECK(std::count(table.begin(), table.end(), '\n') == 4);
}

TEST_CASE("split_manifest is deterministic per seed and independent of row order", "[data]") {
  const Manifest m = make_manifest(40);
  SplitOptions o;
  const auto a = split_of_patient(split_manifest(m, o));
  CHECK(a == split_of_patient(split_manifest(m, o)));

  o.seed = 7;
  const auto b = split_of_patient(split_manifest(m, o));
  CHECK(a != b);

  // Same rows in another order: same assignment.
  auto rows = m.rows();
  const auto perm = histocnn::data::seeded_permutation(rows.size(), 99);
  std::vector<PatchRecord> shuffled;
  for (size_t i : perm) shuffled.push_back(rows[i]);
  const Manifest reordered("root", shuffled);
  CHECK(split_of_patient(split_manifest(reordered, o)) == b);
  o.by_patch = true;
  auto by_path = [](const Manifest& x) {
    std::map<std::string, std::string> out;
    for (const auto& r : x.rows()) out[r.path] = r.split;
    return out;
  };
  CHECK(by_path(split_manifest(reordered, o)) == by_path(split_manifest(m, o)));
}

TEST_CASE("split_manifest validates fractions and patient counts", "[data]") {
  const Manifest m = make_manifest(10);
  auto with = [](double train, double val, double test) {
    SplitOptions o;
    o.train = train;
    o.val = val;
    o.test = test;
    return o;
  };
  CHECK_THROWS_AS(split_manifest(m, with(0.7, 0.2, 0.2)), std::invalid_argument);
  CHECK_THROWS_AS(split_manifest(m, with(0.9, -0.1, 0.2)), std::invalid_argument);
  CHECK_THROWS_AS(split_manifest(m, with(0.0, 0.5, 0.5)), std::invalid_argument);
  CHECK_THROWS_AS(split_manifest(m, with(std::nan(""), 0.5, 0.5)), std::invalid_argument);
  CHECK_THROWS_AS(split_manifest(Manifest(), SplitOptions{}), std::invalid_argument);
  CHECK_NOTHROW(split_manifest(m, with(0.6, 0.2, 0.2 + 5e-7)));

  // val may be 0: two splits only.
  const Manifest two = split_manifest(m, with(0.8, 0.0, 0.2));
  CHECK(two.subset("val").size() == 0);
  CHECK(two.subset("test").size() > 0);
  check_patient_disjoint(two);
  CHECK(split_manifest(m, with(1.0, 0.0, 0.0)).subset("train").size() == m.size());

  // Too few patients: the message says how many are needed.
  const Manifest tiny = make_manifest(2);
  try {
    split_manifest(tiny, SplitOptions{});
    FAIL("expected std::invalid_argument");
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    INFO(msg);
    CHECK(msg.find("at least 3 patients") != std::string::npos);
    CHECK(msg.find("has 2") != std::string::npos);
  }
  const Manifest t2 = split_manifest(tiny, with(0.5, 0.0, 0.5));
  CHECK(t2.patients().size() == 2);
  CHECK(t2.subset("train").patients().size() == 1);
  CHECK(t2.subset("test").patients().size() == 1);

  // Exactly as many patients as splits: each split gets one.
  const Manifest three = split_manifest(make_manifest(3), SplitOptions{});
  for (const char* name : {"train", "val", "test"}) CHECK(three.subset(name).patients().size() == 1);
}

TEST_CASE("split_manifest by patch is stratified by label and leaks patients", "[data]") {
  const Manifest m = make_manifest(10);
  SplitOptions o;
  o.by_patch = true;
  const Manifest s = split_manifest(m, o);
  REQUIRE(s.size() == m.size());
  for (int label = 0; label < 2; ++label) {
    const Manifest cls = s.filter([&](const PatchRecord& r) { return r.label == label; });
    CHECK(share(cls, "train") == Approx(0.6).margin(0.002));
    CHECK(share(cls, "val") == Approx(0.2).margin(0.002));
    CHECK(share(cls, "test") == Approx(0.2).margin(0.002));
  }
  // Patients are shared between splits.
  CHECK(s.subset("train").patients().size() == 10);
  CHECK(s.subset("test").patients().size() >= 9);
  // Deterministic per seed.
  CHECK(split_manifest(m, o).rows()[5].split == s.rows()[5].split);
  o.seed = 1;
  const Manifest other = split_manifest(m, o);
  size_t changed = 0;
  for (size_t i = 0; i < m.size(); ++i) changed += other.rows()[i].split != s.rows()[i].split;
  CHECK(changed > m.size() / 10);
}

TEST_CASE("split_manifest on the real IDC data", "[data][.real-data]") {
  const auto dir = histocnn::test::real_data_dir();
  const Manifest m = Manifest::load_csv(dir / "manifest.csv");
  for (uint64_t seed : {42, 1, 2}) {
    SplitOptions o;
    o.seed = seed;
    const Manifest s = split_manifest(m, o);
    INFO("seed " << seed << "\n" << histocnn::data::format_split_summary(histocnn::data::summarize_splits(s)));
    check_patient_disjoint(s);
    CHECK(share(s, "train") == Approx(0.6).margin(0.05));
    CHECK(share(s, "val") == Approx(0.2).margin(0.05));
    CHECK(share(s, "test") == Approx(0.2).margin(0.05));
    for (const char* name : {"train", "val", "test"}) {
      INFO(name);
      CHECK(positive_ratio(s.subset(name)) == Approx(positive_ratio(m)).margin(0.05));
      CHECK(s.subset(name).patients().size() >= 3);
    }
  }
}
