// Calibration metrics against scikit-learn 1.2.1 (numpy 1.24) and a short numpy ECE reference.
// The expected values were printed by this Python (floats with repr(), which round-trips):
//
//   import numpy as np
//   from sklearn import metrics as M
//   from sklearn.calibration import calibration_curve
//
//   def ece_ref(y, p, n_bins=10):
//       edges = np.linspace(0, 1, n_bins + 1)
//       ids = np.searchsorted(edges[1:-1], p)          # (lo, hi], 0 in the first bin
//       ece = 0.0
//       for b in range(n_bins):
//           m = ids == b
//           if m.any():
//               ece += m.sum() / len(p) * abs(y[m].mean() - p[m].mean())
//       return ece
//
//   rng = np.random.default_rng(7)
//   y = rng.integers(0, 2, 60)
//   p = np.round(np.clip(0.3 * y + 0.7 * rng.random(60), 0, 1), 2)
//   print(M.brier_score_loss(y, p), ece_ref(y, p, 10), ece_ref(y, p, 5))
//   print(calibration_curve(y, p, n_bins=10))      # (prob_true, prob_pred) of non-empty bins
//
// (y, p) are the "random 60" case of curves_test.cpp; "ties" is its 12-sample case.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "histocnn/metrics/calibration.h"
#include "metrics/fixtures.h"

namespace hm = histocnn::metrics;
using namespace histocnn::test::metrics_fixtures;
using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;

namespace {

constexpr double kTol = 1e-12;


}  // namespace

TEST_CASE("brier_score matches sklearn brier_score_loss", "[metrics]") {
  CHECK_THAT(hm::brier_score(kRandomY, kRandomP), WithinAbs(0.16380166666666668, kTol));
  CHECK_THAT(hm::brier_score(kTiesY, kTiesP), WithinAbs(0.29250000000000004, kTol));
  CHECK(hm::brier_score({0, 1}, {0.0, 1.0}) == 0.0);
  CHECK(hm::brier_score({0, 1, 1, 0}, {0.5, 0.5, 0.5, 0.5}) == 0.25);
}

TEST_CASE("expected_calibration_error matches the numpy reference", "[metrics]") {
  CHECK_THAT(hm::expected_calibration_error(kRandomY, kRandomP), WithinAbs(0.16150000000000003, kTol));
  CHECK_THAT(hm::expected_calibration_error(kRandomY, kRandomP, 5), WithinAbs(0.08483333333333336, kTol));
  CHECK_THAT(hm::expected_calibration_error(kTiesY, kTiesP), WithinAbs(0.22499999999999998, kTol));
  CHECK_THAT(hm::expected_calibration_error(kTiesY, kTiesP, 5), WithinAbs(0.22499999999999998, kTol));
  // Perfectly calibrated bins: half of the 0.5s are positive, none of the 0.0s, all of the 1.0s.
  CHECK(hm::expected_calibration_error({0, 1, 0, 1, 1}, {0.5, 0.5, 0.0, 1.0, 1.0}) == 0.0);
  // One bin, everything wrong: |0 - 1|.
  CHECK(hm::expected_calibration_error({0, 0}, {1.0, 1.0}) == 1.0);
}

TEST_CASE("reliability_table reproduces sklearn calibration_curve on its non-empty bins", "[metrics]") {
  const std::vector<hm::ReliabilityBin> bins = hm::reliability_table(kRandomY, kRandomP, 10);
  REQUIRE(bins.size() == 10);
  const std::vector<double> prob_true = {0.0, 0.0, 0.0, 0.6, 0.6363636363636364, 0.7142857142857143,
                                         0.5454545454545454, 1.0, 1.0, 1.0};
  const std::vector<double> prob_pred = {0.05, 0.134, 0.26, 0.366, 0.44909090909090904, 0.5642857142857144,
                                         0.66, 0.7466666666666667, 0.86, 0.925};
  int64_t total = 0;
  for (size_t b = 0; b < bins.size(); ++b) {
    INFO("bin " << b);
    CHECK_THAT(bins[b].lower, WithinAbs(b / 10.0, kTol));
    CHECK_THAT(bins[b].upper, WithinAbs((b + 1) / 10.0, kTol));
    REQUIRE(bins[b].count > 0);  // every bin of this case is populated
    CHECK_THAT(bins[b].positive_rate, WithinAbs(prob_true[b], kTol));
    CHECK_THAT(bins[b].mean_confidence, WithinAbs(prob_pred[b], kTol));
    total += bins[b].count;
  }
  CHECK(total == 60);

  hm::CalibrationReport report = hm::calibration_report(kRandomY, kRandomP);
  CHECK(report.n_bins == 10);
  CHECK(report.ece == hm::expected_calibration_error(kRandomY, kRandomP));
  CHECK(report.mce == hm::maximum_calibration_error(kRandomY, kRandomP));
  CHECK(report.brier == hm::brier_score(kRandomY, kRandomP));
  CHECK(report.bins.size() == 10);
}

TEST_CASE("reliability bins: inner edges belong to the lower bin, 0 to the first, 1 to the last", "[metrics]") {
  // 0.1 and 0.3 lie on inner edges (numpy's edges are i * 0.1): they belong to the lower bin.
  const std::vector<hm::ReliabilityBin> bins =
      hm::reliability_table({0, 1, 0, 1, 1, 0}, {0.0, 1.0, 0.3, 0.1, 0.10000001, 0.5}, 10);
  CHECK(bins[0].count == 2);  // 0.0 and 0.1
  CHECK(bins[1].count == 1);  // 0.10000001
  CHECK(bins[2].count == 1);  // 0.3
  CHECK(bins[4].count == 1);  // 0.5
  CHECK(bins[9].count == 1);  // 1.0
  CHECK(bins[3].count == 0);
  CHECK(std::isnan(bins[3].mean_confidence));
  CHECK(std::isnan(bins[3].positive_rate));
  CHECK(bins[0].positive_rate == 0.5);
  CHECK_THAT(bins[0].mean_confidence, WithinAbs(0.05, kTol));
  // A single bin holds everything.
  const auto one = hm::reliability_table({0, 1, 1}, {0.0, 0.5, 1.0}, 1);
  REQUIRE(one.size() == 1);
  CHECK(one[0].count == 3);
}

TEST_CASE("to_json(CalibrationReport) writes empty bins' means as null", "[metrics]") {
  const hm::CalibrationReport r = hm::calibration_report({0, 1}, {0.05, 0.95}, 4);
  const nlohmann::json j = nlohmann::json::parse(hm::to_json(r));
  CHECK(j.at("n_bins") == 4);
  CHECK(j.at("bins").size() == 4);
  CHECK(j.at("bins")[1].at("count") == 0);
  CHECK(j.at("bins")[1].at("mean_confidence").is_null());
  CHECK(j.at("bins")[0].at("positive_rate").get<double>() == 0.0);
  CHECK(j.at("ece").get<double>() == r.ece);
  CHECK(j.at("brier").get<double>() == r.brier);
}

TEST_CASE("calibration functions reject bad input naming the argument", "[metrics]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
#define CHECK_INVALID(expr, text)                 \
  do {                                            \
    CHECK_THROWS_AS(expr, std::invalid_argument); \
    CHECK_THROWS_WITH(expr, Contains(text));      \
  } while (0)
  CHECK_INVALID(hm::brier_score({0, 1}, {0.2}), "y_true has 2 samples but p_positive has 1");
  CHECK_INVALID(hm::brier_score({0, 1}, {0.2, 1.2}), "p_positive[1] = 1.2");
  CHECK_INVALID(hm::expected_calibration_error({0, 1}, {nan, 0.2}), "p_positive[0] = nan");
  CHECK_INVALID(hm::expected_calibration_error({0, 2}, {0.1, 0.2}), "y_true[1] = 2");
  CHECK_INVALID(hm::expected_calibration_error({0, 1}, {0.1, 0.2}, 0), "n_bins = 0");
  CHECK_INVALID(hm::reliability_table({}, {}), "y_true is empty");
  CHECK_INVALID(hm::maximum_calibration_error({0, 1}, {0.1, -0.2}), "p_positive[1] = -0.2");
#undef CHECK_INVALID
}
