#include "histocnn/pipeline/blessing.h"

#include "histocnn/core/error.h"

#include <nlohmann/json.hpp>

#include <cmath>

namespace histocnn::pipeline {

using json = nlohmann::json;

namespace {

const std::vector<std::string> kMetrics = {"accuracy", "precision", "recall", "sensitivity", "specificity",
                                           "f1",       "roc_auc",   "log_loss"};

// (view, field): "restained.recall" -> ("restained", "recall"); sensitivity is recall.
std::pair<std::string, std::string> split_metric(const std::string& name) {
  std::string view = "plain", field = name;
  const auto dot = name.find('.');
  if (dot != std::string::npos) {
    view = name.substr(0, dot);
    field = name.substr(dot + 1);
    HISTOCNN_CHECK(view == "restained" || view == "plain",
                   "metric '{}': the prefix must be 'restained.' (the test patients restained) or none", name);
  }
  HISTOCNN_CHECK(std::count(kMetrics.begin(), kMetrics.end(), field),
                 "unknown metric '{}'; the metrics are {} (prefix restained. for the restained test patients)", name,
                 fmt::join(kMetrics, ", "));
  if (field == "sensitivity") field = "recall";
  return {view, field};
}

bool lower_is_better(const std::string& metric) { return split_metric(metric).second == "log_loss"; }

std::vector<MetricThreshold> parse_thresholds(const json& j, const std::string& key, bool change) {
  std::vector<MetricThreshold> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  HISTOCNN_CHECK(j[key].is_object(), "{} must map metric names to bounds, e.g. {{roc_auc: 0.9}}", key);
  for (const auto& [metric, bound] : j[key].items()) {
    split_metric(metric);
    MetricThreshold t;
    t.metric = metric;
    if (bound.is_number()) {
      if (change || !lower_is_better(metric)) {
        t.lower = bound.get<double>();
      } else {
        t.upper = bound.get<double>();
      }
    } else {
      HISTOCNN_CHECK(bound.is_object() && !change, "{}.{}: a bound is a number{}", key, metric,
                     change ? "" : " or {lower: x, upper: y}");
      for (const auto& [k, v] : bound.items()) {
        HISTOCNN_CHECK((k == "lower" || k == "upper") && v.is_number(), "{}.{}: only lower and upper numbers", key,
                       metric);
        (k == "lower" ? t.lower : t.upper) = v.get<double>();
      }
    }
    for (const auto& b : {t.lower, t.upper}) {
      HISTOCNN_CHECK(!b || std::isfinite(*b), "{}.{}: the bound must be a finite number", key, metric);
    }
    out.push_back(t);
  }
  return out;
}

double read_metric(const json& metrics, const std::string& name, const std::string& which) {
  const auto [view, field] = split_metric(name);
  HISTOCNN_CHECK(metrics.contains(view) && metrics[view].is_object(),
                 "the {} metrics have no '{}' view (needed by {}); set Evaluator.stain_shift > 0 for restained metrics",
                 which, view, name);
  const auto& v = metrics[view];
  if (!v.contains(field) || v[field].is_null()) return std::nan("");
  return v[field].get<double>();
}

}  // namespace

BlessingRule BlessingRule::from_json(const std::string& text) {
  const json j = json::parse(text);
  BlessingRule r;
  r.value_thresholds = parse_thresholds(j, "value_thresholds", false);
  r.change_thresholds = parse_thresholds(j, "change_thresholds", true);
  return r;
}

std::vector<std::string> Blessing::reasons() const {
  std::vector<std::string> out;
  for (const auto& c : checks) {
    if (!c.passed) out.push_back(c.text);
  }
  return out;
}

std::string Blessing::to_json() const {
  json checks_json = json::array();
  for (const auto& c : checks) {
    checks_json.push_back({{"kind", c.kind},
                           {"metric", c.metric},
                           {"candidate", c.candidate},
                           {"baseline", c.baseline ? json(*c.baseline) : json()},
                           {"bound", c.bound},
                           {"passed", c.passed},
                           {"text", c.text}});
  }
  return json{{"blessed", blessed}, {"has_baseline", has_baseline}, {"checks", checks_json}, {"reasons", reasons()}}.dump();
}

Blessing decide_blessing(const BlessingRule& rule, const std::string& candidate_json,
                         const std::optional<std::string>& baseline_json) {
  const json candidate = json::parse(candidate_json);
  Blessing b;
  b.has_baseline = baseline_json.has_value();
  for (const auto& t : rule.value_thresholds) {
    BlessingCheck c;
    c.kind = "value";
    c.metric = t.metric;
    c.candidate = read_metric(candidate, t.metric, "candidate");
    c.passed = std::isfinite(c.candidate);
    std::string bounds;
    if (t.lower) {
      c.passed = c.passed && c.candidate >= *t.lower;
      bounds = fmt::format(">= {}", *t.lower);
    }
    if (t.upper) {
      c.passed = c.passed && c.candidate <= *t.upper;
      bounds += fmt::format("{}<= {}", bounds.empty() ? "" : " and ", *t.upper);
    }
    c.bound = bounds;
    c.text = fmt::format("{} {:.4f} {}: {}", t.metric, c.candidate, bounds, c.passed ? "passed" : "failed");
    b.checks.push_back(c);
  }
  if (baseline_json) {
    const json baseline = json::parse(*baseline_json);
    for (const auto& t : rule.change_thresholds) {
      BlessingCheck c;
      c.kind = "change";
      c.metric = t.metric;
      c.candidate = read_metric(candidate, t.metric, "candidate");
      c.baseline = read_metric(baseline, t.metric, "baseline");
      const double change = lower_is_better(t.metric) ? *c.baseline - c.candidate : c.candidate - *c.baseline;
      const double least = t.lower.value_or(0.0);
      c.passed = std::isfinite(change) && change >= least;
      c.bound = fmt::format("change >= {}", least);
      c.text = fmt::format("{} {:.4f} against the served baseline's {:.4f}: {} {:+.4f}, allowed >= {:+}: {}", t.metric,
                           c.candidate, *c.baseline, lower_is_better(t.metric) ? "improvement" : "change", change, least,
                           c.passed ? "passed" : "failed");
      b.checks.push_back(c);
    }
  }
  b.blessed = std::all_of(b.checks.begin(), b.checks.end(), [](const BlessingCheck& c) { return c.passed; });
  return b;
}

}  // namespace histocnn::pipeline
