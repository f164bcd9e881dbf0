#include "test_prelude.h"

#include "histocnn/pipeline/blessing.h"

#include <nlohmann/json.hpp>

#include <cmath>

using namespace histocnn::pipeline;
using json = nlohmann::json;

namespace {

std::string metrics(double auc, double recall, double log_loss, std::optional<double> restained_auc = {}) {
  json j = {{"plain", {{"roc_auc", auc}, {"recall", recall}, {"log_loss", log_loss}, {"accuracy", 0.8}}}};
  if (restained_auc) j["restained"] = {{"roc_auc", *restained_auc}, {"recall", recall}};
  return j.dump();
}

}  // namespace

TEST_CASE("Value thresholds alone decide without a baseline", "[pipeline]") {
  const auto rule = BlessingRule::from_json(R"({"value_thresholds": {"roc_auc": 0.9, "sensitivity": 0.85},
                                               "change_thresholds": {"roc_auc": -0.01}})");
  auto good = decide_blessing(rule, metrics(0.91, 0.86, 0.3), std::nullopt);
  CHECK(good.blessed);
  CHECK_FALSE(good.has_baseline);
  CHECK(good.checks.size() == 2);  // the change threshold needs a baseline
  auto low_recall = decide_blessing(rule, metrics(0.95, 0.84, 0.3), std::nullopt);
  CHECK_FALSE(low_recall.blessed);
  REQUIRE(low_recall.reasons().size() == 1);
  CHECK(low_recall.reasons()[0].find("sensitivity 0.8400 >= 0.85: failed") != std::string::npos);
  // The bound itself passes (>=).
  CHECK(decide_blessing(rule, metrics(0.9, 0.85, 0.3), std::nullopt).blessed);
}

TEST_CASE("Change thresholds compare with the served baseline", "[pipeline]") {
  const auto rule = BlessingRule::from_json(R"({"change_thresholds": {"roc_auc": -0.01, "log_loss": 0}})");
  // AUC may fall by 0.01; log loss may not rise.
  CHECK(decide_blessing(rule, metrics(0.905, 0.9, 0.30), metrics(0.91, 0.9, 0.30)).blessed);
  auto worse = decide_blessing(rule, metrics(0.89, 0.9, 0.30), metrics(0.91, 0.9, 0.30));
  CHECK_FALSE(worse.blessed);
  CHECK(worse.has_baseline);
  REQUIRE(worse.reasons().size() == 1);
  CHECK(worse.reasons()[0].find("roc_auc") != std::string::npos);
  auto higher_loss = decide_blessing(rule, metrics(0.95, 0.9, 0.31), metrics(0.91, 0.9, 0.30));
  CHECK_FALSE(higher_loss.blessed);
  CHECK(higher_loss.reasons()[0].find("log_loss") != std::string::npos);
  CHECK(decide_blessing(rule, metrics(0.95, 0.9, 0.29), metrics(0.91, 0.9, 0.30)).blessed);
}

TEST_CASE("Blessing reads restained metrics, bounds in both directions, and fails undefined metrics", "[pipeline]") {
  const auto rule = BlessingRule::from_json(
      R"({"value_thresholds": {"restained.roc_auc": 0.8, "log_loss": 0.5, "accuracy": {"lower": 0.7, "upper": 0.9}}})");
  CHECK(decide_blessing(rule, metrics(0.9, 0.9, 0.4, 0.85), std::nullopt).blessed);
  CHECK_FALSE(decide_blessing(rule, metrics(0.9, 0.9, 0.4, 0.75), std::nullopt).blessed);
  CHECK_FALSE(decide_blessing(rule, metrics(0.9, 0.9, 0.6, 0.85), std::nullopt).blessed);  // log_loss <= 0.5
  // No restained view: the message says how to get one.
  CHECK_THROWS_WITH(decide_blessing(rule, metrics(0.9, 0.9, 0.4), std::nullopt), Catch::Contains("stain_shift"));
  // AUC undefined (one class: null in JSON) fails its check instead of passing.
  const auto auc_rule = BlessingRule::from_json(R"({"value_thresholds": {"roc_auc": 0.1}})");
  json one_class = {{"plain", {{"roc_auc", nullptr}}}};
  CHECK_FALSE(decide_blessing(auc_rule, one_class.dump(), std::nullopt).blessed);
  CHECK_THROWS_WITH(BlessingRule::from_json(R"({"value_thresholds": {"auroc": 0.9}})"), Catch::Contains("unknown metric"));
  CHECK_THROWS_WITH(BlessingRule::from_json(R"({"change_thresholds": {"roc_auc": {"lower": 1}}})"),
                    Catch::Contains("a bound is a number"));
}
