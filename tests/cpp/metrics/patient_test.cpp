// Patient-level aggregation on hand-made cases whose answers can be read off the data.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "histocnn/metrics/patient.h"

namespace hm = histocnn::metrics;
using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;

namespace {

// Patient "b" has no positive patch; "a" and "c" have one or more. Patches arrive interleaved.
const std::vector<std::string> kPatients = {"c", "a", "b", "a", "c", "b", "a", "c"};
const std::vector<int> kY = {0, 1, 0, 0, 1, 0, 0, 1};
const std::vector<double> kP = {0.2, 0.9, 0.1, 0.3, 0.7, 0.6, 0.2, 0.8};
// a: p {0.9, 0.3, 0.2}, labels {1, 0, 0}; b: {0.1, 0.6}, {0, 0}; c: {0.2, 0.7, 0.8}, {0, 1, 1}.

}  // namespace

TEST_CASE("aggregate_patients: sorted patients, any-positive labels, counts", "[metrics]") {
  const hm::PatientScores s = hm::aggregate_patients(kY, kP, kPatients);
  CHECK(s.aggregation == "mean");
  CHECK(s.patients == std::vector<std::string>{"a", "b", "c"});
  CHECK(s.labels == std::vector<int>{1, 0, 1});
  CHECK(s.n_patches == std::vector<int64_t>{3, 2, 3});
  CHECK(s.n_positive_patches == std::vector<int64_t>{1, 0, 2});
  CHECK_THAT(s.scores[0], WithinAbs((0.9 + 0.3 + 0.2) / 3.0, 1e-12));
  CHECK_THAT(s.scores[1], WithinAbs((0.1 + 0.6) / 2.0, 1e-12));
  CHECK_THAT(s.scores[2], WithinAbs((0.2 + 0.7 + 0.8) / 3.0, 1e-12));
}

TEST_CASE("aggregate_patients: fraction above the patch threshold, and max", "[metrics]") {
  const hm::PatientScores f = hm::aggregate_patients(kY, kP, kPatients, "fraction", 0.5);
  CHECK(f.patch_threshold == 0.5);
  CHECK_THAT(f.scores[0], WithinAbs(1.0 / 3.0, 1e-15));  // 0.9
  CHECK(f.scores[1] == 0.5);                               // 0.6
  CHECK_THAT(f.scores[2], WithinAbs(2.0 / 3.0, 1e-15));   // 0.7, 0.8
  // p >= threshold counts, as in threshold_scores().
  const hm::PatientScores at = hm::aggregate_patients(kY, kP, kPatients, "fraction", 0.7);
  CHECK_THAT(at.scores[2], WithinAbs(2.0 / 3.0, 1e-15));
  CHECK(at.scores[1] == 0.0);

  const hm::PatientScores m = hm::aggregate_patients(kY, kP, kPatients, "max");
  CHECK(m.scores == std::vector<double>{0.9, 0.6, 0.8});
  CHECK(m.labels == std::vector<int>{1, 0, 1});
}

TEST_CASE("evaluate_patients: metrics with one sample per patient", "[metrics]") {
  // Means 0.467, 0.35, 0.567 at threshold 0.5: a missed, b right, c found.
  const hm::PatientMetrics mean = hm::evaluate_patients(kY, kP, kPatients, "mean", 0.5);
  CHECK(mean.metrics.n == 3);
  CHECK(mean.metrics.cm.tp == 1);
  CHECK(mean.metrics.cm.fn == 1);
  CHECK(mean.metrics.cm.tn == 1);
  CHECK(mean.metrics.cm.fp == 0);
  CHECK(mean.metrics.roc_auc == 1.0);  // both positives score above b
  CHECK(mean.pr_auc == 1.0);
  CHECK(mean.threshold == 0.5);

  // Max: b's 0.6 patch makes it a false positive; both positive patients still outrank it.
  const hm::PatientMetrics max = hm::evaluate_patients(kY, kP, kPatients, "max", 0.5);
  CHECK(max.metrics.cm.fp == 1);
  CHECK(max.metrics.cm.tp == 2);
  CHECK(max.metrics.roc_auc == 1.0);
  CHECK(max.metrics.accuracy == 2.0 / 3.0);

  // Fraction >= 0.4 of patches above 0.5: a (1/3) is missed, b (1/2) is a false positive.
  const hm::PatientMetrics fraction = hm::evaluate_patients(kY, kP, kPatients, "fraction", 0.4, 0.5);
  CHECK(fraction.per_patient.patch_threshold == 0.5);
  CHECK(fraction.metrics.cm.tp == 1);
  CHECK(fraction.metrics.cm.fn == 1);
  CHECK(fraction.metrics.cm.fp == 1);
  CHECK(fraction.metrics.roc_auc == 0.5);  // b (0.5) outranks a (0.33), not c (0.67)
}

TEST_CASE("evaluate_patients with only positive patients gives a NaN AUC, not an error", "[metrics]") {
  const hm::PatientMetrics m = hm::evaluate_patients({1, 0, 0, 1}, {0.8, 0.3, 0.2, 0.4}, {"x", "x", "y", "y"});
  CHECK(m.per_patient.labels == std::vector<int>{1, 1});
  CHECK(std::isnan(m.metrics.roc_auc));
  CHECK(m.pr_auc == 1.0);
  const hm::PatientMetrics none = hm::evaluate_patients({0, 0}, {0.8, 0.3}, {"x", "y"});
  CHECK(std::isnan(none.pr_auc));

  const nlohmann::json j = nlohmann::json::parse(hm::to_json(none));
  CHECK(j.at("aggregation") == "mean");
  CHECK(j.at("n_patients") == 2);
  CHECK(j.at("pr_auc").is_null());
  CHECK(j.at("metrics").at("roc_auc").is_null());
  REQUIRE(j.at("patients").size() == 2);
  CHECK(j.at("patients")[0].at("patient") == "x");
  CHECK(j.at("patients")[0].at("score").get<double>() == 0.8);
  CHECK(j.at("patients")[1].at("n_patches") == 1);
}

TEST_CASE("patient functions reject bad input naming the argument", "[metrics]") {
#define CHECK_INVALID(expr, text)                 \
  do {                                            \
    CHECK_THROWS_AS(expr, std::invalid_argument); \
    CHECK_THROWS_WITH(expr, Contains(text));      \
  } while (0)
  CHECK_INVALID(hm::aggregate_patients(kY, kP, {"a"}), "patients has 1 ids but y_true has 8");
  CHECK_INVALID(hm::aggregate_patients(kY, kP, kPatients, "median"), "aggregation = 'median'");
  CHECK_INVALID(hm::aggregate_patients({0, 1}, {0.2, 1.5}, {"a", "b"}), "p_positive[1] = 1.5");
  CHECK_INVALID(hm::aggregate_patients({0, 1}, {0.2, 0.5}, {"a", ""}), "patients[1] is empty");
  CHECK_INVALID(hm::aggregate_patients({0, 1}, {0.2, 0.5}, {"a", "b"}, "fraction", std::nan("")),
                "patch_threshold = nan");
  CHECK_INVALID(hm::evaluate_patients({0, 1}, {0.2, 0.5}, {"a", "b"}, "mean", std::nan("")), "threshold = nan");
  CHECK_INVALID(hm::evaluate_patients({}, {}, {}), "y_true is empty");
#undef CHECK_INVALID
}
