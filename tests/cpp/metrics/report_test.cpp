// evaluate_full gathers the other metrics modules: its parts must equal theirs, its JSON must
// parse and hold them, its text must show them, and single-class splits must not throw.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "histocnn/metrics/report.h"

namespace hm = histocnn::metrics;
using Catch::Matchers::Contains;

namespace {

struct Split {
  std::vector<int> y;
  std::vector<double> p;
  std::vector<std::string> patients;
};

// Six patients of 50 patches; patient P5 has no positive patch.
Split make_split(uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto uniform = [&] { return static_cast<double>(rng() >> 11) * 0x1.0p-53; };
  Split s;
  for (int k = 0; k < 6; ++k) {
    for (int i = 0; i < 50; ++i) {
      const int label = k < 5 && uniform() < 0.4 ? 1 : 0;
      s.y.push_back(label);
      s.p.push_back(std::clamp(0.35 * label + 0.65 * uniform(), 0.0, 1.0));
      s.patients.push_back("P" + std::to_string(k));
    }
  }
  return s;
}

}  // namespace

TEST_CASE("evaluate_full equals its parts", "[metrics]") {
  const Split val = make_split(1), test = make_split(2);
  hm::EvaluationOptions opt;
  opt.validation_choice = hm::choose_threshold(val.y, val.p, "youden");
  opt.n_boot = 200;
  opt.patient_aggregation = "fraction";
  opt.patient_threshold = 0.3;
  const hm::EvaluationReport r = hm::evaluate_full(test.y, test.p, test.patients, opt);

  const double t = opt.validation_choice->threshold;
  CHECK(r.threshold == t);
  CHECK(r.threshold_method == "youden");
  const hm::BinaryMetrics m = hm::evaluate_binary(test.y, test.p, t);
  CHECK(r.metrics.accuracy == m.accuracy);
  CHECK(r.metrics.roc_auc == m.roc_auc);
  CHECK(r.metrics.cm.tp == m.cm.tp);
  CHECK(r.pr_auc == hm::average_precision(test.y, test.p));
  CHECK(r.roc.fpr == hm::roc_curve(test.y, test.p).fpr);
  CHECK(r.pr.precision == hm::precision_recall_curve(test.y, test.p).precision);
  CHECK(r.calibration.ece == hm::expected_calibration_error(test.y, test.p));
  CHECK(r.calibration.brier == hm::brier_score(test.y, test.p));

  REQUIRE(r.intervals.has_value());
  CHECK(r.intervals->unit == "patient");
  CHECK(r.intervals->n_units == 6);
  CHECK(r.intervals->threshold == t);
  hm::BootstrapOptions b;
  b.n_boot = 200;
  b.threshold = t;
  CHECK(r.intervals->roc_auc.replicates ==
        hm::bootstrap_metrics(test.y, test.p, test.patients, b).roc_auc.replicates);

  REQUIRE(r.patient.has_value());
  CHECK(r.patient->per_patient.aggregation == "fraction");
  CHECK(r.patient->per_patient.patch_threshold == t);  // patches are called at the decision threshold
  CHECK(r.patient->threshold == 0.3);
  CHECK(r.patient->metrics.n == 6);
  CHECK(r.patient->per_patient.labels == std::vector<int>{1, 1, 1, 1, 1, 0});
  CHECK(r.classification_report ==
        hm::classification_report(test.y, hm::threshold_scores(test.p, t), r.class_names, 4));
}

TEST_CASE("EvaluationReport::to_json holds every section", "[metrics]") {
  const Split s = make_split(3);
  hm::EvaluationOptions opt;
  opt.n_boot = 50;
  const hm::EvaluationReport r = hm::evaluate_full(s.y, s.p, s.patients, opt);
  const nlohmann::json j = nlohmann::json::parse(r.to_json());
  CHECK(j.at("threshold").get<double>() == 0.5);
  CHECK(j.at("threshold_method") == "fixed");
  CHECK(j.at("validation_choice").is_null());
  CHECK(j.at("metrics").at("accuracy").get<double>() == r.metrics.accuracy);
  CHECK(j.at("pr_auc").get<double>() == r.pr_auc);
  CHECK(j.at("intervals").at("roc_auc").at("lower").get<double>() == r.intervals->roc_auc.lower);
  CHECK(j.at("calibration").at("bins").size() == 10);
  CHECK(j.at("patient").at("n_patients") == 6);
  CHECK_FALSE(j.contains("roc_curve"));
  const nlohmann::json with_curves = nlohmann::json::parse(r.to_json(true));
  CHECK(with_curves.at("roc_curve").at("fpr").size() == r.roc.fpr.size());
  CHECK(with_curves.at("pr_curve").at("precision").size() == r.pr.precision.size());
  // The leading ROC threshold is +inf, written as null.
  CHECK(with_curves.at("roc_curve").at("thresholds")[0].is_null());
}

TEST_CASE("EvaluationReport::to_text shows the numbers a reader looks for", "[metrics]") {
  const Split val = make_split(4), test = make_split(5);
  hm::EvaluationOptions opt;
  opt.validation_choice = hm::choose_threshold(val.y, val.p, "sensitivity", 0.9);
  opt.n_boot = 100;
  const hm::EvaluationReport r = hm::evaluate_full(test.y, test.p, test.patients, opt);
  const std::string text = r.to_text();
  CHECK_THAT(text, Contains("300 samples"));
  CHECK_THAT(text, Contains("from 6 patients"));
  CHECK_THAT(text, Contains("sensitivity >= 0.9 on validation"));
  CHECK_THAT(text, Contains(fmt::format("ROC-AUC{:>23.4f}", r.metrics.roc_auc)));
  CHECK_THAT(text, Contains(fmt::format("[{:.4f}, {:.4f}]", r.intervals->roc_auc.lower, r.intervals->roc_auc.upper)));
  CHECK_THAT(text, Contains("100 bootstrap over 6 patients"));
  CHECK_THAT(text, Contains("ECE (10 bins)"));
  CHECK_THAT(text, Contains(hm::confusion_matrix_table(r.metrics.cm)));
  CHECK_THAT(text, Contains(r.classification_report));
  CHECK_THAT(text, Contains("Patient level: 6 patients, 5 positive"));
}

TEST_CASE("evaluate_full without patients and with one class", "[metrics]") {
  hm::EvaluationOptions opt;
  opt.n_boot = 0;
  const hm::EvaluationReport plain = hm::evaluate_full({0, 1, 1, 0}, {0.2, 0.7, 0.4, 0.1}, {}, opt);
  CHECK_FALSE(plain.intervals.has_value());
  CHECK_FALSE(plain.patient.has_value());
  CHECK(nlohmann::json::parse(plain.to_json()).at("patient").is_null());

  opt.n_boot = 20;
  const hm::EvaluationReport one = hm::evaluate_full({0, 0, 0}, {0.2, 0.7, 0.4}, {"a", "a", "b"}, opt);
  CHECK(std::isnan(one.metrics.roc_auc));
  CHECK(std::isnan(one.pr_auc));
  CHECK(one.roc.fpr.empty());
  CHECK(one.pr.precision.empty());
  CHECK(one.intervals->unit == "patient");
  CHECK_THAT(one.to_text(), Contains("Only one class is present"));
  const nlohmann::json j = nlohmann::json::parse(one.to_json(true));
  CHECK(j.at("pr_auc").is_null());
  CHECK(j.at("metrics").at("roc_auc").is_null());

  const hm::EvaluationReport positives = hm::evaluate_full({1, 1}, {0.2, 0.7}, {}, opt);
  CHECK(positives.pr_auc == 1.0);
  CHECK(positives.roc.fpr.empty());
}

TEST_CASE("evaluate_full rejects bad input naming the argument", "[metrics]") {
  hm::EvaluationOptions opt;
#define CHECK_INVALID(expr, text)                 \
  do {                                            \
    CHECK_THROWS_AS(expr, std::invalid_argument); \
    CHECK_THROWS_WITH(expr, Contains(text));      \
  } while (0)
  CHECK_INVALID(hm::evaluate_full({0, 1}, {0.2}), "y_true has 2 samples but p_positive has 1");
  CHECK_INVALID(hm::evaluate_full({0, 1}, {0.2, 3.0}), "p_positive[1] = 3");
  CHECK_INVALID(hm::evaluate_full({0, 1}, {0.2, 0.3}, {"a"}), "patients has 1 ids");
  opt.class_names = {"only"};
  CHECK_INVALID(hm::evaluate_full({0, 1}, {0.2, 0.3}, {}, opt), "class_names");
  opt = {};
  opt.calibration_bins = 0;
  CHECK_INVALID(hm::evaluate_full({0, 1}, {0.2, 0.3}, {}, opt), "n_bins = 0");
  opt = {};
  opt.n_boot = -1;
  CHECK_INVALID(hm::evaluate_full({0, 1}, {0.2, 0.3}, {}, opt), "n_boot = -1");
  opt = {};
  opt.patient_aggregation = "median";
  CHECK_INVALID(hm::evaluate_full({0, 1}, {0.2, 0.3}, {"a", "b"}, opt), "aggregation = 'median'");
#undef CHECK_INVALID
}
