// Bootstrap confidence intervals: reproducible for a seed, each replicate equal to the metrics of
// the explicitly resampled data, intervals that contain the estimate, narrow with more data and
// widen when correlated patches are resampled as patients.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "histocnn/metrics/binary.h"
#include "histocnn/metrics/bootstrap.h"
#include "histocnn/metrics/curves.h"

namespace hm = histocnn::metrics;
using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;

namespace {

// Test data from raw mt19937_64 outputs (fully specified by the C++ standard), not from the
// standard library's distributions, so that it is the same on every platform.
struct Generator {
  std::mt19937_64 rng;
  explicit Generator(uint64_t seed) : rng(seed) {}
  double uniform() { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
  double normal() {  // Box-Muller
    const double u = 1.0 - uniform(), v = uniform();
    return std::sqrt(-2.0 * std::log(u)) * std::cos(2.0 * 3.14159265358979323846 * v);
  }
};

struct Data {
  std::vector<int> y;
  std::vector<double> p;
  std::vector<std::string> patients;
};

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

// Independent patches: a positive shifts the logit by `signal`.
Data independent(size_t n, uint64_t seed, double signal = 1.5) {
  Generator g(seed);
  Data d;
  for (size_t i = 0; i < n; ++i) {
    const int label = g.uniform() < 0.35 ? 1 : 0;
    d.y.push_back(label);
    d.p.push_back(sigmoid(signal * (label - 0.5) + g.normal()));
    d.patients.push_back("patient" + std::to_string(i % 10));
  }
  return d;
}

// Patches clustered in patients that differ in prevalence and in a shared score shift (staining,
// scanner): what patient-level resampling is for.
Data clustered(int n_patients, int patches_per_patient, uint64_t seed) {
  Generator g(seed);
  Data d;
  for (int k = 0; k < n_patients; ++k) {
    const double prevalence = 0.1 + 0.6 * g.uniform();
    const double shift = 1.2 * g.normal();
    for (int i = 0; i < patches_per_patient; ++i) {
      const int label = g.uniform() < prevalence ? 1 : 0;
      d.y.push_back(label);
      d.p.push_back(sigmoid(1.5 * (label - 0.5) + shift + 0.7 * g.normal()));
      d.patients.push_back("P" + std::to_string(k));
    }
  }
  return d;
}

double width(const hm::ConfidenceInterval& ci) { return ci.upper - ci.lower; }

std::vector<const hm::ConfidenceInterval*> all_intervals(const hm::BootstrapResult& r) {
  return {&r.roc_auc, &r.pr_auc, &r.accuracy, &r.precision, &r.recall, &r.f1, &r.specificity};
}

}  // namespace

TEST_CASE("uniform_index draws every value in range about equally often", "[metrics]") {
  std::mt19937_64 rng(3);
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 30000; ++i) counts[hm::uniform_index(rng, 3)] += 1;
  for (int c : counts) CHECK(std::abs(c - 10000) < 400);  // about 5 standard deviations
  CHECK(hm::uniform_index(rng, 1) == 0);
  const uint64_t big = (uint64_t{1} << 63) + 12345;  // rejection matters here: half the range
  for (int i = 0; i < 100; ++i) CHECK(hm::uniform_index(rng, big) < big);
  CHECK_THROWS_AS(hm::uniform_index(rng, 0), std::invalid_argument);
  // mt19937_64's output is fixed by the standard: its first value for the default seed 5489 is
  // 14514284786278117030, a multiple of 5 above 2^64 mod 5 = 1, so it is accepted as 0.
  std::mt19937_64 standard(5489);
  CHECK(hm::uniform_index(standard, 5) == 0);
}

TEST_CASE("BootstrapSampler resamples patches, or whole patients", "[metrics]") {
  SECTION("patches") {
    hm::BootstrapSampler s(50, {}, 1);
    CHECK_FALSE(s.by_patient());
    CHECK(s.n_units() == 50);
    const std::vector<int64_t> counts = s.next();
    int64_t total = 0;
    for (int64_t c : counts) total += c;
    CHECK(total == 50);
    CHECK(s.next() != counts);  // a new replicate
  }
  SECTION("patients") {
    const std::vector<std::string> ids = {"b", "a", "b", "c", "a", "b"};
    hm::BootstrapSampler s(ids.size(), ids, 1);
    CHECK(s.by_patient());
    CHECK(s.n_units() == 3);
    for (int rep = 0; rep < 20; ++rep) {
      const std::vector<int64_t>& c = s.next();
      CHECK(c[0] == c[2]);  // patient b
      CHECK(c[2] == c[5]);
      CHECK(c[1] == c[4]);  // patient a
      CHECK(c[0] + c[1] + c[3] == 3);  // three patients drawn
    }
  }
}

TEST_CASE("each bootstrap replicate equals the metrics of the explicitly resampled data", "[metrics]") {
  // Few distinct scores, so that resampled ties are exercised too.
  Data d = independent(120, 11);
  for (double& p : d.p) p = std::round(p * 20.0) / 20.0;
  for (bool by_patient : {false, true}) {
    INFO("by_patient " << by_patient);
    hm::BootstrapOptions opt;
    opt.n_boot = 8;
    opt.seed = 99;
    opt.threshold = 0.45;
    opt.by_patient = by_patient;
    const hm::BootstrapResult r = hm::bootstrap_metrics(d.y, d.p, d.patients, opt);
    CHECK(r.unit == (by_patient ? "patient" : "patch"));
    CHECK(r.n_units == (by_patient ? 10 : 120));
    hm::BootstrapSampler sampler(d.y.size(), by_patient ? d.patients : std::vector<std::string>{}, 99);
    for (int b = 0; b < 8; ++b) {
      const std::vector<int64_t>& counts = sampler.next();
      std::vector<int> y;
      std::vector<double> p;
      for (size_t i = 0; i < counts.size(); ++i) {
        for (int64_t k = 0; k < counts[i]; ++k) {
          y.push_back(d.y[i]);
          p.push_back(d.p[i]);
        }
      }
      const hm::BinaryMetrics m = hm::evaluate_binary(y, p, opt.threshold);
      CHECK_THAT(r.roc_auc.replicates[b], WithinAbs(m.roc_auc, 1e-12));
      CHECK_THAT(r.pr_auc.replicates[b], WithinAbs(hm::average_precision(y, p), 1e-12));
      CHECK_THAT(r.accuracy.replicates[b], WithinAbs(m.accuracy, 1e-12));
      CHECK_THAT(r.precision.replicates[b], WithinAbs(m.precision, 1e-12));
      CHECK_THAT(r.recall.replicates[b], WithinAbs(m.recall, 1e-12));
      CHECK_THAT(r.specificity.replicates[b], WithinAbs(m.specificity, 1e-12));
      CHECK_THAT(r.f1.replicates[b], WithinAbs(m.f1, 1e-12));
    }
  }
}

TEST_CASE("bootstrap_metrics is deterministic for a seed and differs between seeds", "[metrics]") {
  const Data d = independent(300, 5);
  hm::BootstrapOptions opt;
  opt.n_boot = 200;
  opt.seed = 7;
  const hm::BootstrapResult a = hm::bootstrap_metrics(d.y, d.p, {}, opt);
  const hm::BootstrapResult b = hm::bootstrap_metrics(d.y, d.p, {}, opt);
  CHECK(a.roc_auc.replicates == b.roc_auc.replicates);
  CHECK(a.f1.replicates == b.f1.replicates);
  CHECK(a.roc_auc.lower == b.roc_auc.lower);
  CHECK(a.roc_auc.upper == b.roc_auc.upper);
  CHECK(hm::to_json(a) == hm::to_json(b));
  opt.seed = 8;
  const hm::BootstrapResult c = hm::bootstrap_metrics(d.y, d.p, {}, opt);
  CHECK(c.roc_auc.replicates != a.roc_auc.replicates);
  CHECK(c.roc_auc.estimate == a.roc_auc.estimate);
}

TEST_CASE("bootstrap intervals contain the estimate, which is the metric on all the data", "[metrics]") {
  const Data d = independent(400, 21);
  const hm::BootstrapResult r = hm::bootstrap_metrics(d.y, d.p);  // 1000 resamples, by patch
  CHECK(r.n_boot == 1000);
  CHECK(r.unit == "patch");
  const hm::BinaryMetrics m = hm::evaluate_binary(d.y, d.p);
  CHECK(r.roc_auc.estimate == m.roc_auc);
  CHECK(r.accuracy.estimate == m.accuracy);
  CHECK(r.precision.estimate == m.precision);
  CHECK(r.recall.estimate == m.recall);
  CHECK(r.specificity.estimate == m.specificity);
  CHECK(r.f1.estimate == m.f1);
  CHECK(r.pr_auc.estimate == hm::average_precision(d.y, d.p));
  for (const hm::ConfidenceInterval* ci : all_intervals(r)) {
    CHECK(ci->n_valid == 1000);
    CHECK(ci->replicates.size() == 1000);
    CHECK(ci->lower < ci->estimate);
    CHECK(ci->estimate < ci->upper);
  }
  // The 95 % interval holds about 95 % of the replicates.
  int inside = 0;
  for (double v : r.roc_auc.replicates) inside += v >= r.roc_auc.lower && v <= r.roc_auc.upper;
  CHECK(inside >= 940);
  CHECK(inside <= 960);
  // A narrower confidence gives a narrower interval.
  hm::BootstrapOptions opt;
  opt.confidence = 0.5;
  const hm::BootstrapResult narrow = hm::bootstrap_metrics(d.y, d.p, {}, opt);
  CHECK(width(narrow.roc_auc) < 0.6 * width(r.roc_auc));
}

TEST_CASE("bootstrap intervals shrink as the sample grows", "[metrics]") {
  const Data small = independent(100, 31);
  const Data large = independent(2500, 31);
  const hm::BootstrapResult a = hm::bootstrap_metrics(small.y, small.p);
  const hm::BootstrapResult b = hm::bootstrap_metrics(large.y, large.p);
  // Widths fall like 1 / sqrt(n): 5 times narrower for 25 times the data; allow for noise.
  CHECK(width(b.roc_auc) < width(a.roc_auc) / 3.0);
  CHECK(width(b.accuracy) < width(a.accuracy) / 3.0);
  CHECK(width(b.f1) < width(a.f1) / 3.0);
}

TEST_CASE("resampling patients gives wider intervals than resampling their correlated patches", "[metrics]") {
  const Data d = clustered(20, 100, 4);
  hm::BootstrapOptions opt;
  const hm::BootstrapResult by_patient = hm::bootstrap_metrics(d.y, d.p, d.patients, opt);
  opt.by_patient = false;
  const hm::BootstrapResult by_patch = hm::bootstrap_metrics(d.y, d.p, d.patients, opt);
  CHECK(by_patient.unit == "patient");
  CHECK(by_patient.n_units == 20);
  CHECK(by_patch.unit == "patch");
  CHECK(by_patch.n_units == 2000);
  CHECK(by_patient.roc_auc.estimate == by_patch.roc_auc.estimate);
  CHECK(width(by_patient.roc_auc) > 1.5 * width(by_patch.roc_auc));
  CHECK(width(by_patient.accuracy) > 1.5 * width(by_patch.accuracy));
  CHECK(width(by_patient.recall) > 1.5 * width(by_patch.recall));
}

TEST_CASE("replicates where a metric is undefined are left out and counted", "[metrics]") {
  // Two patients, one with only negatives: a replicate that draws it twice has no positive.
  const std::vector<int> y = {0, 0, 0, 1, 0, 1};
  const std::vector<double> p = {0.1, 0.2, 0.3, 0.8, 0.4, 0.7};
  const std::vector<std::string> patients = {"neg", "neg", "neg", "mix", "mix", "mix"};
  hm::BootstrapOptions opt;
  opt.n_boot = 400;
  const hm::BootstrapResult r = hm::bootstrap_metrics(y, p, patients, opt);
  int64_t without_positive = 0;
  for (double v : r.roc_auc.replicates) without_positive += std::isnan(v);
  CHECK(without_positive > 50);  // about a quarter of the replicates
  CHECK(without_positive < 150);
  CHECK(r.roc_auc.n_valid == 400 - without_positive);
  CHECK(r.recall.n_valid == 400 - without_positive);
  CHECK(r.accuracy.n_valid == 400);
  CHECK(std::isfinite(r.roc_auc.lower));

  const nlohmann::json j = nlohmann::json::parse(hm::to_json(r));
  CHECK(j.at("unit") == "patient");
  CHECK(j.at("n_units") == 2);
  CHECK(j.at("roc_auc").at("n_valid") == r.roc_auc.n_valid);
  CHECK(j.at("roc_auc").at("lower").get<double>() == r.roc_auc.lower);
  CHECK_FALSE(j.at("roc_auc").contains("replicates"));

  // A single-class split: no AUC anywhere, the rest still has intervals.
  const hm::BootstrapResult one = hm::bootstrap_metrics({0, 0, 0}, {0.1, 0.6, 0.2});
  CHECK(std::isnan(one.roc_auc.estimate));
  CHECK(one.roc_auc.n_valid == 0);
  CHECK(std::isnan(one.roc_auc.lower));
  CHECK(nlohmann::json::parse(hm::to_json(one)).at("roc_auc").at("lower").is_null());
  CHECK(one.accuracy.n_valid == 1000);
}

TEST_CASE("bootstrap_metrics rejects bad input naming the argument", "[metrics]") {
  const std::vector<int> y = {0, 1, 1, 0};
  const std::vector<double> p = {0.1, 0.6, 0.4, 0.9};
  hm::BootstrapOptions opt;
#define CHECK_INVALID(expr, text)                 \
  do {                                            \
    CHECK_THROWS_AS(expr, std::invalid_argument); \
    CHECK_THROWS_WITH(expr, Contains(text));      \
  } while (0)
  CHECK_INVALID(hm::bootstrap_metrics(y, {0.1, 0.2}), "y_true has 4 samples but scores has 2");
  CHECK_INVALID(hm::bootstrap_metrics(y, p, {"a", "b"}), "patients has 2 ids but y_true has 4");
  CHECK_INVALID(hm::bootstrap_metrics(y, p, {"a", "b", "", "a"}), "patients[2] is empty");
  CHECK_INVALID(hm::bootstrap_metrics(y, {0.1, 0.6, std::nan(""), 0.9}), "scores[2] = nan");
  opt.n_boot = 0;
  CHECK_INVALID(hm::bootstrap_metrics(y, p, {}, opt), "n_boot = 0");
  opt.n_boot = 10;
  opt.confidence = 1.0;
  CHECK_INVALID(hm::bootstrap_metrics(y, p, {}, opt), "confidence = 1");
  opt.confidence = 0.95;
  opt.threshold = std::numeric_limits<double>::infinity();
  CHECK_INVALID(hm::bootstrap_metrics(y, p, {}, opt), "threshold = inf");
#undef CHECK_INVALID
}
