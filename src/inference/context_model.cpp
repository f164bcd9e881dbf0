#include "histocnn/inference/context_model.h"

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/data/csv.h"
#include "histocnn/inference/slide_maps.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/metrics/curves.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace histocnn::inference {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kFormat = "histocnn.context_model";
constexpr int kVersion = 1;
constexpr double kClamp = 1e-4;

double logit(double p) {
  const double q = std::clamp(p, kClamp, 1 - kClamp);
  return std::log(q / (1 - q));
}

void check_probabilities(const data::Manifest& m, const std::vector<double>& p) {
  HISTOCNN_CHECK(p.size() == m.size(), "{} probabilities for a manifest of {} patches; give one per patch", p.size(),
                 m.size());
  for (size_t i = 0; i < p.size(); ++i) {
    HISTOCNN_CHECK(std::isfinite(p[i]) && p[i] >= 0 && p[i] <= 1,
                   "probability {} (patch '{}') is {}; give P(IDC) in [0, 1]", i, m.rows()[i].path, p[i]);
  }
}

torch::Tensor standardised(const std::vector<ContextFeatures>& f, const ContextFeatures& mean,
                           const ContextFeatures& scale) {
  auto z = torch::empty({static_cast<int64_t>(f.size()), kContextFeatures}, torch::kFloat64);
  auto a = z.accessor<double, 2>();
  for (size_t i = 0; i < f.size(); ++i) {
    for (int k = 0; k < kContextFeatures; ++k) a[i][k] = (f[i][k] - mean[k]) / scale[k];
  }
  return z;
}

ContextFeatures array_from_json(const json& j, const char* field) {
  HISTOCNN_CHECK(j.contains(field) && j[field].is_array() && j[field].size() == kContextFeatures,
                 "context model: '{}' must be an array of {} numbers", field, kContextFeatures);
  ContextFeatures out{};
  for (int k = 0; k < kContextFeatures; ++k) {
    HISTOCNN_CHECK(j[field][k].is_number() && std::isfinite(j[field][k].get<double>()),
                   "context model: '{}'[{}] must be a finite number", field, k);
    out[k] = j[field][k].get<double>();
  }
  return out;
}

double number_from_json(const json& j, const char* field) {
  HISTOCNN_CHECK(j.contains(field) && j[field].is_number() && std::isfinite(j[field].get<double>()),
                 "context model: '{}' must be a finite number", field);
  return j[field].get<double>();
}

}  // namespace

const std::array<std::string, kContextFeatures>& context_feature_names() {
  static const std::array<std::string, kContextFeatures> names = {
      "own_logit",       "neighbour_mean_logit", "neighbour_max_p", "neighbour_min_p",
      "ring_mean_logit", "neighbour_presence",   "ring_presence",   "own_logit_x_presence"};
  return names;
}

std::vector<ContextFeatures> context_features(const data::Manifest& manifest, const std::vector<double>& p) {
  check_probabilities(manifest, p);
  std::vector<ContextFeatures> out(p.size());
  for (const auto& g : slide_grids(manifest)) {
    auto cell = [&](int c, int r) -> int64_t {
      return (c < 0 || r < 0 || c >= g.cols || r >= g.rows) ? -1 : g.at(c, r);
    };
    for (int r = 0; r < g.rows; ++r) {
      for (int c = 0; c < g.cols; ++c) {
        const int64_t i = g.at(c, r);
        if (i < 0) continue;
        const double own = logit(p[i]);
        double near_sum = 0, near_max = p[i], near_min = p[i], ring_sum = 0;
        int near_n = 0, ring_n = 0;
        bool any_near = false;
        for (int dr = -2; dr <= 2; ++dr) {
          for (int dc = -2; dc <= 2; ++dc) {
            if (dr == 0 && dc == 0) continue;
            const int64_t j = cell(c + dc, r + dr);
            if (j < 0) continue;
            if (std::abs(dr) <= 1 && std::abs(dc) <= 1) {
              near_sum += logit(p[j]);
              near_max = any_near ? std::max(near_max, p[j]) : p[j];
              near_min = any_near ? std::min(near_min, p[j]) : p[j];
              any_near = true;
              ++near_n;
            } else {
              ring_sum += logit(p[j]);
              ++ring_n;
            }
          }
        }
        const double near_mean = near_n > 0 ? near_sum / near_n : own;
        const double near_presence = near_n / 8.0;
        out[i] = {own,
                  near_mean,
                  near_max,
                  near_min,
                  ring_n > 0 ? ring_sum / ring_n : near_mean,
                  near_presence,
                  ring_n / 16.0,
                  own * near_presence};
      }
    }
  }
  return out;
}

double mean_neighbour_presence(const data::Manifest& manifest) {
  double sum = 0;
  for (const auto& g : slide_grids(manifest)) {
    for (int r = 0; r < g.rows; ++r) {
      for (int c = 0; c < g.cols; ++c) {
        if (g.at(c, r) < 0) continue;
        int n = 0;
        for (int dr = -1; dr <= 1; ++dr) {
          for (int dc = -1; dc <= 1; ++dc) {
            const int rr = r + dr, cc = c + dc;
            n += (dr || dc) && rr >= 0 && cc >= 0 && rr < g.rows && cc < g.cols && g.at(cc, rr) >= 0;
          }
        }
        sum += n / 8.0;
      }
    }
  }
  return sum / static_cast<double>(manifest.size());
}

ContextModel ContextModel::fit(const data::Manifest& manifest, const std::vector<double>& p,
                               const std::vector<int>& labels, const ContextFitOptions& options) {
  HISTOCNN_CHECK(p.size() == manifest.size(),
                 "context model: {} probabilities for a manifest of {} patches; give one per patch", p.size(),
                 manifest.size());
  HISTOCNN_CHECK(labels.size() == manifest.size(),
                 "context model: {} labels for a manifest of {} patches; give one per patch", labels.size(),
                 manifest.size());
  HISTOCNN_CHECK(manifest.size() >= kMinimumPatches,
                 "context model: {} patches are too few to fit on; give at least {} (a run's validation split)",
                 manifest.size(), kMinimumPatches);
  int64_t positives = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    HISTOCNN_CHECK(labels[i] == 0 || labels[i] == 1, "context model: label {} is {}; labels are 0 or 1", i,
                   labels[i]);
    positives += labels[i];
  }
  HISTOCNN_CHECK(positives > 0 && positives < static_cast<int64_t>(labels.size()),
                 "context model: the labels hold one class only ({} patches, all {}); fitting needs both classes",
                 labels.size(), positives > 0 ? "IDC-positive" : "IDC-negative");
  HISTOCNN_CHECK(std::isfinite(options.l2) && options.l2 >= 0, "context model: l2 must be >= 0, got {}", options.l2);
  HISTOCNN_CHECK(options.max_iterations > 0, "context model: max_iterations must be > 0, got {}",
                 options.max_iterations);
  const auto& method = options.threshold_method;
  HISTOCNN_CHECK(method == "youden" || method == "sensitivity" || method == "fixed",
                 "context model: threshold_method must be youden, sensitivity or fixed, got '{}'", method);
  if (method == "fixed") {
    HISTOCNN_CHECK(options.fixed_threshold > 0 && options.fixed_threshold < 1,
                   "context model: the fixed threshold must be in (0, 1), got {}", options.fixed_threshold);
  }

  const auto features = context_features(manifest, p);
  const double n = static_cast<double>(features.size());
  ContextModel model;
  for (int k = 0; k < kContextFeatures; ++k) {
    double sum = 0;
    for (const auto& f : features) sum += f[k];
    const double mean = sum / n;
    double var = 0;
    for (const auto& f : features) var += (f[k] - mean) * (f[k] - mean);
    const double sd = std::sqrt(var / n);
    model.mean_[k] = mean;
    // A constant feature (every patch surrounded, say) carries nothing; scale 1 keeps it at 0.
    model.scale_[k] = sd > 1e-12 ? sd : 1.0;
  }

  // Design matrix with a leading column of ones; the penalty spares the intercept.
  const auto z = standardised(features, model.mean_, model.scale_);
  const auto x = torch::cat({torch::ones({z.size(0), 1}, torch::kFloat64), z}, 1);
  auto y = torch::empty({z.size(0)}, torch::kFloat64);
  for (size_t i = 0; i < labels.size(); ++i) y[static_cast<int64_t>(i)] = labels[i];
  auto penalty = torch::full({kContextFeatures + 1}, options.l2, torch::kFloat64);
  penalty[0] = 0;
  const auto objective = [&](const torch::Tensor& beta) {
    const auto eta = torch::matmul(x, beta);
    const auto loss = torch::nn::functional::softplus(eta) - y * eta;
    return (loss.sum() + 0.5 * (penalty * beta * beta).sum()).item<double>();
  };
  auto beta = torch::zeros({kContextFeatures + 1}, torch::kFloat64);
  const double prior = static_cast<double>(positives) / n;
  beta[0] = std::log(prior / (1 - prior));
  double current = objective(beta);
  int iterations = 0;
  for (; iterations < options.max_iterations; ++iterations) {
    const auto mu = torch::sigmoid(torch::matmul(x, beta));
    const auto w = mu * (1 - mu);
    const auto gradient = torch::matmul(x.t(), mu - y) + penalty * beta;
    // A tiny ridge keeps the system solvable when every patch is predicted with certainty.
    const auto hessian = torch::matmul(x.t() * w.unsqueeze(0), x) + torch::diag(penalty) +
                         1e-9 * torch::eye(kContextFeatures + 1, torch::kFloat64);
    const auto step = torch::linalg::solve(hessian, gradient.unsqueeze(1), true).squeeze(1);
    // Newton's step, halved while it does not lower the penalised loss.
    double scale = 1;
    torch::Tensor next;
    double value = current;
    for (int halving = 0; halving < 30; ++halving, scale /= 2) {
      next = beta - scale * step;
      value = objective(next);
      if (value <= current) break;
    }
    if (value > current) break;
    beta = next;
    const double change = (scale * step).abs().max().item<double>();
    const double gain = current - value;
    current = value;
    if (change < 1e-9 || gain < 1e-12 * (1 + std::abs(current))) {
      ++iterations;
      break;
    }
  }
  HISTOCNN_CHECK(torch::isfinite(beta).all().item<bool>(),
                 "context model: the fit did not converge (non-finite weights); check the probabilities");
  model.intercept_ = beta[0].item<double>();
  for (int k = 0; k < kContextFeatures; ++k) model.weights_[k] = beta[k + 1].item<double>();
  model.l2_ = options.l2;
  model.iterations_ = iterations;
  model.patches_ = static_cast<int64_t>(labels.size());
  model.positives_ = positives;
  model.patients_ = static_cast<int64_t>(manifest.patients().size());
  model.source_ = options.source;
  model.threshold_method_ = method;
  if (method == "fixed") {
    model.threshold_ = options.fixed_threshold;
  } else {
    model.threshold_ =
        metrics::choose_threshold(labels, model.predict(manifest, p), method, options.target_sensitivity).threshold;
  }
  return model;
}

std::vector<double> ContextModel::predict(const data::Manifest& manifest, const std::vector<double>& p) const {
  const auto features = context_features(manifest, p);
  std::vector<double> out(features.size());
  for (size_t i = 0; i < features.size(); ++i) {
    double eta = intercept_;
    for (int k = 0; k < kContextFeatures; ++k) eta += weights_[k] * (features[i][k] - mean_[k]) / scale_[k];
    out[i] = 1.0 / (1.0 + std::exp(-eta));
  }
  return out;
}

std::string ContextModel::to_json() const {
  json j = {{"format", kFormat},
            {"version", kVersion},
            {"features", context_feature_names()},
            {"mean", mean_},
            {"scale", scale_},
            {"weights", weights_},
            {"intercept", intercept_},
            {"l2", l2_},
            {"threshold", threshold_},
            {"threshold_method", threshold_method_},
            {"fitted_on",
             {{"patches", patches_},
              {"positives", positives_},
              {"patients", patients_},
              {"iterations", iterations_},
              {"source", source_}}}};
  return j.dump(2);
}

ContextModel ContextModel::from_json(const std::string& text) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    HISTOCNN_FAIL("context model: not valid JSON ({})", e.what());
  }
  HISTOCNN_CHECK(j.is_object() && j.value("format", "") == kFormat,
                 "context model: 'format' must be \"{}\"; this is not a context model", kFormat);
  HISTOCNN_CHECK(j.contains("version") && j["version"].is_number_integer() && j["version"].get<int>() == kVersion,
                 "context model: version {} is not supported (this build reads version {})",
                 j.contains("version") ? j["version"].dump() : "(missing)", kVersion);
  HISTOCNN_CHECK(j.contains("features") && j["features"].is_array(), "context model: 'features' is missing");
  std::vector<std::string> names;
  for (const auto& f : j["features"]) {
    HISTOCNN_CHECK(f.is_string(), "context model: 'features' must list feature names");
    names.push_back(f.get<std::string>());
  }
  const auto& expected = context_feature_names();
  HISTOCNN_CHECK(names == std::vector<std::string>(expected.begin(), expected.end()),
                 "context model: its features ({}) are not the ones this build computes ({}); refit it",
                 j["features"].dump(), json(expected).dump());
  ContextModel m;
  m.mean_ = array_from_json(j, "mean");
  m.scale_ = array_from_json(j, "scale");
  m.weights_ = array_from_json(j, "weights");
  for (int k = 0; k < kContextFeatures; ++k) {
    HISTOCNN_CHECK(m.scale_[k] > 0, "context model: 'scale'[{}] must be > 0, got {}", k, m.scale_[k]);
  }
  m.intercept_ = number_from_json(j, "intercept");
  m.l2_ = number_from_json(j, "l2");
  m.threshold_ = number_from_json(j, "threshold");
  HISTOCNN_CHECK(m.threshold_ >= 0 && m.threshold_ <= 1, "context model: 'threshold' must be in [0, 1], got {}",
                 m.threshold_);
  m.threshold_method_ = j.value("threshold_method", "");
  if (j.contains("fitted_on") && j["fitted_on"].is_object()) {
    const auto& f = j["fitted_on"];
    m.patches_ = f.value("patches", int64_t{0});
    m.positives_ = f.value("positives", int64_t{0});
    m.patients_ = f.value("patients", int64_t{0});
    m.iterations_ = f.value("iterations", 0);
    m.source_ = f.value("source", "");
  }
  return m;
}

void ContextModel::save(const fs::path& file) const { io::write_file_atomic(file, to_json() + "\n"); }

ContextModel ContextModel::load(const fs::path& file) {
  HISTOCNN_CHECK_FOUND(fs::exists(file), "context model '{}' does not exist", file.string());
  const auto text = io::read_file(file);
  try {
    return from_json(text);
  } catch (const std::invalid_argument& e) {
    HISTOCNN_FAIL("'{}': {}", file.string(), e.what());
  }
}

std::string ContextModel::summary() const {
  return fmt::format("learned head fitted on {} patches ({} positive) of {} patients{}; threshold {:.3f} ({})",
                     patches_, positives_, patients_, source_.empty() ? "" : " from " + source_, threshold_,
                     threshold_method_.empty() ? "as saved" : threshold_method_);
}

std::string ContextModel::neighbourhood_warning(const data::Manifest& manifest) const {
  const double here = mean_neighbour_presence(manifest), fitted = fitted_neighbour_presence();
  if (std::abs(here - fitted) < 0.05 || (here < fitted * 1.5 && fitted < here * 1.5)) return "";
  return fmt::format("note: here {:.0f}% of the places around a patch hold a patch, where the learned head was fitted "
                     "{:.0f}%: its weights and threshold describe other neighbourhoods (a class-balanced sample of "
                     "slides is not the slides)",
                     100 * here, 100 * fitted);
}

PatchPredictions load_predictions_csv(const fs::path& csv, std::optional<fs::path> root) {
  PatchPredictions out;
  out.manifest = data::Manifest::load_csv(csv, root);
  // The manifest reader took path, patient and label (x and y from the file names); the
  // probabilities are read here, row for row (the same lines, blank ones skipped).
  const auto lines = data::csv_lines(io::read_file(csv));
  std::vector<std::string> header, f;
  std::string error;
  HISTOCNN_CHECK(!lines.empty() && data::split_csv_line(lines[0], header, &error), "'{}' line 1 (header): {}",
                 csv.string(), lines.empty() ? "the file is empty" : error);
  const auto column = std::find(header.begin(), header.end(), "p_positive");
  HISTOCNN_CHECK(column != header.end(), "'{}' has no column 'p_positive'; expected a run's predictions CSV "
                 "(path,patient,label,p_positive)", csv.string());
  const size_t c = static_cast<size_t>(column - header.begin());
  for (size_t li = 1; li < lines.size(); ++li) {
    if (lines[li].find_first_not_of(" \t") == std::string::npos) continue;
    HISTOCNN_CHECK(data::split_csv_line(lines[li], f, &error), "'{}' line {}: {}", csv.string(), li + 1, error);
    HISTOCNN_CHECK(f.size() == header.size(), "'{}' line {}: {} fields, the header has {}", csv.string(), li + 1,
                   f.size(), header.size());
    double value = 0;
    try {
      size_t used = 0;
      value = std::stod(f[c], &used);
      HISTOCNN_CHECK(used == f[c].size(), "trailing characters");
    } catch (const std::exception&) {
      HISTOCNN_FAIL("'{}' line {}: p_positive must be a number, got '{}'", csv.string(), li + 1, f[c]);
    }
    HISTOCNN_CHECK(std::isfinite(value) && value >= 0 && value <= 1,
                   "'{}' line {}: p_positive must be in [0, 1], got {}", csv.string(), li + 1, f[c]);
    out.p.push_back(value);
  }
  HISTOCNN_CHECK(out.p.size() == out.manifest.size(), "'{}': {} probabilities for {} rows", csv.string(),
                 out.p.size(), out.manifest.size());
  return out;
}

ContextModel fit_context_model(const fs::path& run_dir, ContextFitOptions options) {
  auto csv = run_dir / "predictions_validation_slides.csv";
  if (!fs::exists(csv)) csv = run_dir / "predictions_validation.csv";
  HISTOCNN_CHECK_FOUND(fs::exists(csv), "'{}' does not exist: the run has no validation predictions to fit the "
                       "context model on", csv.string());
  const auto val = load_predictions_csv(csv);
  std::vector<int> labels;
  for (const auto& r : val.manifest.rows()) labels.push_back(r.label);
  if (options.source.empty()) options.source = csv.filename().string();
  return ContextModel::fit(val.manifest, val.p, labels, options);
}

std::optional<fs::path> context_model_beside(const fs::path& model_dir) {
  fs::path dir = model_dir.lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();  // a trailing '/'
  std::error_code ec;
  const auto absolute = fs::absolute(dir, ec);
  if (!ec) dir = absolute.lexically_normal();
  std::vector<fs::path> candidates = {dir.parent_path() / "context_model.json"};
  const auto name = dir.filename().string();
  if (!name.empty() && std::all_of(name.begin(), name.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    candidates.push_back(dir.parent_path().parent_path() / "context_model.json");  // <run>/model/<version>
  }
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c, ec)) return c;
  }
  return std::nullopt;
}

std::optional<ContextModel> context_model_for(const fs::path& model_dir, const std::string& choice) {
  if (choice == "none") return std::nullopt;
  fs::path file = choice;
  if (choice.empty()) {
    const auto beside = context_model_beside(model_dir);
    if (!beside) return std::nullopt;
    file = *beside;
  }
  const auto hint = choice.empty() ? " (found beside the model; --context-model none maps without it)"
                                   : " (give a context_model.json that histocnn train wrote, or --context-model none)";
  try {
    auto model = ContextModel::load(file);
    log_info("context model {}: {}", file.string(), model.summary());
    return model;
  } catch (const std::invalid_argument& ex) {
    HISTOCNN_FAIL("cannot use the context model: {}{}", ex.what(), hint);
  } catch (const NotFoundError& ex) {
    throw_not_found(fmt::format("{}{}", ex.what(), hint));
  } catch (const std::runtime_error& ex) {
    HISTOCNN_FAIL_IO("cannot read the context model '{}': {}{}", file.string(), ex.what(), hint);
  }
}

}  // namespace histocnn::inference
