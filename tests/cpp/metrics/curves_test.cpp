// Precision-recall curve, average precision and threshold choice against scikit-learn 1.2.1
// (numpy 1.24). The expected values were printed by this Python:
//
//   import numpy as np
//   from sklearn import metrics as M
//
//   def youden(y, s):                      # the usual recipe: roc_curve, then argmax of J
//       fpr, tpr, thr = M.roc_curve(y, s)
//       return thr[np.argmax(tpr - fpr)]
//
//   def sensitivity_threshold(y, s, target):  # highest threshold with recall >= target
//       fpr, tpr, thr = M.roc_curve(y, s, drop_intermediate=False)
//       return thr[np.argmax(tpr >= target)]
//
//   ties = (np.array([0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0]),
//           np.array([0.2, 0.2, 0.4, 0.4, 0.4, 0.5, 0.5, 0.5, 0.6, 0.6, 0.8, 0.8]))
//   rng = np.random.default_rng(7)
//   y = rng.integers(0, 2, 60)
//   p = np.round(np.clip(0.3 * y + 0.7 * rng.random(60), 0, 1), 2)   # two decimals: ties
//   for y, p in [ties, (y, p)]:
//       print(M.precision_recall_curve(y, p), M.average_precision_score(y, p))
//       print(youden(y, p), sensitivity_threshold(y, p, 0.9), sensitivity_threshold(y, p, 0.5))
//
// Floats were printed with repr(), which round-trips exactly.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <limits>
#include <stdexcept>
#include <vector>

#include "histocnn/metrics/binary.h"
#include "histocnn/metrics/curves.h"
#include "metrics/fixtures.h"

namespace hm = histocnn::metrics;
using namespace histocnn::test::metrics_fixtures;
using Catch::Matchers::Contains;
using Catch::Matchers::WithinAbs;

namespace {

constexpr double kTol = 1e-12;


void check_all_close(const std::vector<double>& got, const std::vector<double>& expected) {
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("index " << i);
    CHECK_THAT(got[i], WithinAbs(expected[i], kTol));
  }
}

}  // namespace

TEST_CASE("precision_recall_curve and average_precision match sklearn on heavy ties", "[metrics]") {
  const hm::PrecisionRecallCurve c = hm::precision_recall_curve(kTiesY, kTiesP);
  check_all_close(c.precision, {0.5, 0.5, 0.42857142857142855, 0.5, 0.5, 1.0});
  check_all_close(c.recall, {1.0, 0.8333333333333334, 0.5, 0.3333333333333333, 0.16666666666666666, 0.0});
  check_all_close(c.thresholds, {0.2, 0.4, 0.5, 0.6, 0.8});
  CHECK_THAT(hm::average_precision(kTiesY, kTiesP), WithinAbs(0.4880952380952381, kTol));
}

TEST_CASE("precision_recall_curve and average_precision match sklearn on 60 random samples", "[metrics]") {
  const hm::PrecisionRecallCurve c = hm::precision_recall_curve(kRandomY, kRandomP);
  check_all_close(
      c.precision,
      {0.5666666666666667, 0.576271186440678,  0.5862068965517241, 0.5964912280701754, 0.6071428571428571,
       0.6296296296296297, 0.6538461538461539, 0.6666666666666666, 0.68,               0.7083333333333334,
       0.723404255319149,  0.717391304347826,  0.7333333333333333, 0.7272727272727273, 0.7209302325581395,
       0.7380952380952381, 0.7317073170731707, 0.75,               0.7435897435897436, 0.7368421052631579,
       0.75,               0.7714285714285715, 0.7741935483870968, 0.7666666666666667, 0.7586206896551724,
       0.7407407407407407, 0.76,               0.7916666666666666, 0.8181818181818182, 0.8571428571428571,
       0.85,               0.8888888888888888, 0.9375,             1.0,                1.0,
       1.0,                1.0,                1.0,                1.0,                1.0,
       1.0,                1.0,                1.0,                1.0,                1.0,
       1.0});
  check_all_close(
      c.recall,
      {1.0,  1.0,  1.0,  1.0,  1.0,  1.0,  1.0,  1.0,  1.0,  1.0,  1.0,  0.9705882352941176,
       0.9705882352941176, 0.9411764705882353, 0.9117647058823529, 0.9117647058823529, 0.8823529411764706,
       0.8823529411764706, 0.8529411764705882, 0.8235294117647058, 0.7941176470588235, 0.7941176470588235,
       0.7058823529411765, 0.6764705882352942, 0.6470588235294118, 0.5882352941176471, 0.5588235294117647,
       0.5588235294117647, 0.5294117647058824, 0.5294117647058824, 0.5,                0.47058823529411764,
       0.4411764705882353, 0.4117647058823529, 0.38235294117647056, 0.35294117647058826, 0.3235294117647059,
       0.2647058823529412, 0.23529411764705882, 0.20588235294117646, 0.17647058823529413, 0.14705882352941177,
       0.11764705882352941, 0.08823529411764706, 0.029411764705882353, 0.0});
  check_all_close(c.thresholds, {0.0,  0.04, 0.06, 0.1,  0.11, 0.13, 0.19, 0.21, 0.27, 0.29, 0.31, 0.36,
                                 0.37, 0.39, 0.4,  0.41, 0.42, 0.43, 0.44, 0.45, 0.46, 0.47, 0.53, 0.55,
                                 0.56, 0.58, 0.59, 0.61, 0.63, 0.65, 0.66, 0.68, 0.69, 0.7,  0.71, 0.72,
                                 0.75, 0.77, 0.78, 0.82, 0.87, 0.89, 0.91, 0.92, 0.95});
  CHECK_THAT(hm::average_precision(kRandomY, kRandomP), WithinAbs(0.8703195254400684, kTol));
}

TEST_CASE("average precision of hand-made rankings", "[metrics]") {
  // Perfect ranking: 1. One negative ranked first among 2 positives: (1/2 * 1/2 + 1/2 * 2/3).
  CHECK(hm::average_precision({0, 0, 1, 1}, {0.1, 0.2, 0.8, 0.9}) == 1.0);
  CHECK_THAT(hm::average_precision({1, 0, 1}, {0.5, 0.9, 0.4}), WithinAbs(0.25 + 1.0 / 3.0, kTol));
  // All positives: every threshold has precision 1. A single distinct score: precision = prevalence.
  CHECK(hm::average_precision({1, 1, 1}, {0.2, 0.3, 0.1}) == 1.0);
  CHECK_THAT(hm::average_precision({0, 1, 0, 0}, {0.5, 0.5, 0.5, 0.5}), WithinAbs(0.25, kTol));
}

TEST_CASE("choose_threshold 'youden' agrees with sklearn roc_curve + argmax(tpr - fpr)", "[metrics]") {
  const hm::ThresholdChoice c = hm::choose_threshold(kRandomY, kRandomP, "youden");
  CHECK(c.method == "youden");
  CHECK(c.threshold == 0.37);
  // The operating point is what evaluate_binary sees at that threshold.
  const hm::BinaryMetrics m = hm::evaluate_binary(kRandomY, kRandomP, c.threshold);
  CHECK(c.cm.tp == m.cm.tp);
  CHECK(c.cm.fp == m.cm.fp);
  CHECK(c.cm.tn == m.cm.tn);
  CHECK(c.cm.fn == m.cm.fn);
  CHECK(c.sensitivity == m.recall);
  CHECK(c.specificity == m.specificity);
  CHECK(c.precision == m.precision);
  CHECK_THAT(c.youden_j, WithinAbs(m.recall + m.specificity - 1.0, kTol));
  // No threshold has a larger J.
  for (double t : kRandomP) {
    const hm::BinaryMetrics other = hm::evaluate_binary(kRandomY, kRandomP, t);
    CHECK(other.recall + other.specificity - 1.0 <= c.youden_j + kTol);
  }
}

TEST_CASE("choose_threshold 'youden' never picks the predict-nothing point and prefers the highest tie",
          "[metrics]") {
  // Every point of this ROC curve has J <= 0; sklearn's argmax returns its leading point (1.8 =
  // max + 1 in sklearn 1.2, predicting nothing positive). Here the highest score with the best J (0) wins.
  const hm::ThresholdChoice c = hm::choose_threshold(kTiesY, kTiesP, "youden");
  CHECK(c.threshold == 0.8);
  CHECK(c.youden_j == 0.0);
  // J ties between 0.9 (tp 1, fp 0: J = 1/2) and 0.4 (tp 2, fp 1: J = 1 - 1/2): the higher wins.
  const hm::ThresholdChoice tie = hm::choose_threshold({0, 1, 1, 0}, {0.1, 0.4, 0.9, 0.4}, "youden");
  CHECK(tie.threshold == 0.9);
}

TEST_CASE("choose_threshold 'sensitivity' takes the highest threshold reaching the target", "[metrics]") {
  // sklearn values: 0.41 for 0.9 and 0.66 for 0.5 (random 60); 0.2 and 0.5 (ties).
  CHECK(hm::choose_threshold(kRandomY, kRandomP, "sensitivity", 0.9).threshold == 0.41);
  CHECK(hm::choose_threshold(kRandomY, kRandomP, "sensitivity", 0.5).threshold == 0.66);
  CHECK(hm::choose_threshold(kTiesY, kTiesP, "sensitivity", 0.9).threshold == 0.2);
  CHECK(hm::choose_threshold(kTiesY, kTiesP, "sensitivity", 0.5).threshold == 0.5);

  const hm::ThresholdChoice c = hm::choose_threshold(kRandomY, kRandomP, "sensitivity", 0.9);
  CHECK(c.method == "sensitivity");
  CHECK(c.target == 0.9);
  CHECK(c.sensitivity >= 0.9);
  // The next higher distinct score misses the target.
  CHECK(hm::evaluate_binary(kRandomY, kRandomP, 0.42).recall < 0.9);
  CHECK(hm::choose_threshold(kRandomY, kRandomP, "sensitivity", 1.0).sensitivity == 1.0);
}

TEST_CASE("to_json(ThresholdChoice) writes every field", "[metrics]") {
  const hm::ThresholdChoice c = hm::choose_threshold(kRandomY, kRandomP, "sensitivity", 0.9);
  const nlohmann::json j = nlohmann::json::parse(hm::to_json(c));
  CHECK(j.at("method") == "sensitivity");
  CHECK(j.at("target").get<double>() == 0.9);
  CHECK(j.at("threshold").get<double>() == c.threshold);
  CHECK(j.at("cm").at("tp") == c.cm.tp);
  CHECK(j.at("youden_j").get<double>() == c.youden_j);
  CHECK(j.size() == 8);
}

TEST_CASE("curves and thresholds reject bad input naming the argument", "[metrics]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
#define CHECK_INVALID(expr, text)                 \
  do {                                            \
    CHECK_THROWS_AS(expr, std::invalid_argument); \
    CHECK_THROWS_WITH(expr, Contains(text));      \
  } while (0)
  CHECK_INVALID(hm::precision_recall_curve({0, 0}, {0.1, 0.2}), "no positive");
  CHECK_INVALID(hm::average_precision({0, 0}, {0.1, 0.2}), "no positive");
  CHECK_INVALID(hm::average_precision({0, 1}, {0.1}), "y_true has 2 samples but scores has 1");
  CHECK_INVALID(hm::average_precision({0, 3}, {0.1, 0.2}), "y_true[1] = 3");
  CHECK_INVALID(hm::precision_recall_curve({0, 1}, {nan, 0.2}), "scores[0] = nan");
  CHECK_INVALID(hm::precision_recall_curve({}, {}), "y_true is empty");
  CHECK_INVALID(hm::choose_threshold(kTiesY, kTiesP, "f1"), "method = 'f1'");
  CHECK_INVALID(hm::choose_threshold(kTiesY, kTiesP, "sensitivity", 0.0), "target = 0");
  CHECK_INVALID(hm::choose_threshold(kTiesY, kTiesP, "sensitivity", 1.5), "target = 1.5");
  CHECK_INVALID(hm::choose_threshold({1, 1}, {0.2, 0.3}), "both classes");
#undef CHECK_INVALID
}
