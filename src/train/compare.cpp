#include "histocnn/train/compare.h"

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/bundle.h"
#include "histocnn/metrics/plots.h"
#include "histocnn/models/classifier.h"
#include "histocnn/train/options.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <numeric>
#include <set>

namespace histocnn::train {

namespace fs = std::filesystem;

namespace {

nlohmann::json read_json(const fs::path& file) {
  try {
    return nlohmann::json::parse(io::read_file(file));
  } catch (const nlohmann::json::exception& e) {
    HISTOCNN_FAIL("'{}' is not valid JSON: {}", file.string(), e.what());
  }
}

void apply(RunOptions& o, const std::string& key, const nlohmann::json& value, const std::string& where) {
  try {
    set_run_option(o, key, value.dump());
  } catch (const std::invalid_argument& e) {
    HISTOCNN_FAIL("{}: {}", where, e.what());
  }
}

std::string value_label(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

double number(const nlohmann::json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::nan("");
}

std::string fmt_num(double v, int digits = 4) { return std::isfinite(v) ? fmt::format("{:.{}f}", v, digits) : "-"; }

}  // namespace

CompareConfig load_compare_config(const fs::path& file) {
  const auto j = read_json(file);
  const auto where = file.string();
  HISTOCNN_CHECK(j.is_object(), "'{}' must hold a JSON object", where);
  for (const auto& item : j.items()) {
    static const std::set<std::string> known = {"data_dir", "manifest", "output_dir", "base", "grid", "ablation"};
    HISTOCNN_CHECK(known.count(item.key()), "'{}': unknown key '{}'; use data_dir, manifest, output_dir, base, grid, "
                   "ablation", where, item.key());
  }
  CompareConfig config;
  config.output_dir = j.value("output_dir", std::string("compare"));
  config.ablation = j.value("ablation", false);
  RunOptions base;
  base.trainer.progress = false;
  base.output_dir = config.output_dir / "runs";
  if (j.contains("data_dir")) apply(base, "data_dir", j["data_dir"], where);
  if (j.contains("manifest")) apply(base, "manifest", j["manifest"], where);
  if (j.contains("base")) {
    HISTOCNN_CHECK(j["base"].is_object(), "'{}': \"base\" must be an object of options", where);
    // A preset first, whatever its place in the object: the other keys override it.
    if (j["base"].contains("preset")) {
      HISTOCNN_CHECK(j["base"]["preset"].is_string(), "'{}' base: \"preset\" must be a name, e.g. \"study\"", where);
      try {
        apply_run_preset(base, j["base"]["preset"].get<std::string>());
      } catch (const std::invalid_argument& e) {
        HISTOCNN_FAIL("{} base: {}", where, e.what());
      }
    }
    for (const auto& item : j["base"].items()) {
      if (item.key() != "preset") apply(base, item.key(), item.value(), where + " base");
    }
  }

  // The grid: the cartesian product of every listed value, in the order given.
  std::vector<CompareStep> steps = {{"", base}};
  if (j.contains("grid")) {
    HISTOCNN_CHECK(j["grid"].is_object(), "'{}': \"grid\" must map option names to lists of values", where);
    for (const auto& axis : j["grid"].items()) {
      HISTOCNN_CHECK(axis.value().is_array() && !axis.value().empty(), "'{}': grid option '{}' needs a non-empty list",
                     where, axis.key());
      std::vector<CompareStep> next;
      for (const auto& step : steps) {
        for (const auto& value : axis.value()) {
          CompareStep s = step;
          apply(s.options, axis.key(), value, where + " grid");
          s.label += (s.label.empty() ? "" : " ") + axis.key() + "=" + value_label(value);
          next.push_back(std::move(s));
        }
      }
      steps = std::move(next);
    }
  }
  if (steps.size() == 1 && steps[0].label.empty()) steps[0].label = "base";

  if (config.ablation) {
    HISTOCNN_CHECK(steps.size() == 1, "'{}': the ablation starts from one base run; remove the grid", where);
    // The study's incremental programme, each step on top of the previous one.
    const std::vector<std::pair<std::string, std::vector<std::pair<std::string, nlohmann::json>>>> ablation = {
        {"20 epochs", {{"epochs", 20}}},
        {"+ batch norm", {{"batch_norm", true}}},
        {"+ augmentation", {{"augment", "study"}}},
        {"dropout 0.5", {{"dropout", 0.5}}},
        {"Adam", {{"optimizer", "adam"}}},
        {"last 4 layers unfrozen", {{"unfreeze_last", 4}}},
    };
    steps[0].label = "baseline";
    for (const auto& [label, changes] : ablation) {
      CompareStep s = steps.back();
      s.label = label;
      for (const auto& [key, value] : changes) apply(s.options, key, value, where + " ablation");
      steps.push_back(std::move(s));
    }
  }
  config.steps = std::move(steps);
  return config;
}

CompareRow read_run_row(const fs::path& run_dir) {
  const auto metrics = read_json(run_dir / "metrics.json");
  const auto history = History::from_csv(io::read_file(run_dir / "history.csv"));
  CompareRow row;
  row.run_name = run_dir.filename().string();
  const auto model_dir = io::resolve_bundle_dir(run_dir / "model");
  const auto model_json = read_json(model_dir / "model.json");
  const auto options = models::ClassifierOptions::from_json(model_json.at("classifier").dump());
  row.backbone = options.backbone();
  row.head = options.head();
  models::Classifier model(options);
  row.parameters = models::count_parameters(*model);
  row.size_mb = static_cast<double>(fs::file_size(model_dir / "model.safetensors")) / 1e6;
  const int best = metrics.value("best_epoch", 0);
  const auto& epochs = history.epochs;
  if (!epochs.empty()) {
    const auto& rec = best > 0 && best <= static_cast<int>(epochs.size()) ? epochs[best - 1] : epochs.back();
    row.train_accuracy = rec.train_accuracy;
    row.val_accuracy = rec.val_accuracy;
    row.val_auc = rec.val_auc;
    double ips = 0;
    for (const auto& e : epochs) ips += e.images_per_second;
    row.images_per_second = ips / epochs.size();
  }
  if (metrics.contains("test")) {
    const auto& t = metrics["test"];
    row.test_accuracy = number(t, "accuracy");
    row.precision = number(t, "precision");
    row.recall = number(t, "recall");
    row.f1 = number(t, "f1");
    row.auc = number(t, "roc_auc");
    row.test_loss = number(t, "log_loss");
    row.auc_low = metrics.contains("test_auc_ci") ? number(metrics["test_auc_ci"], "low") : std::nan("");
    row.auc_high = metrics.contains("test_auc_ci") ? number(metrics["test_auc_ci"], "high") : std::nan("");
  }
  row.stain_shift_auc = metrics.contains("test_stain_shift") ? number(metrics["test_stain_shift"], "roc_auc")
                                                              : std::nan("");
  row.seconds = number(metrics, "seconds");
  return row;
}

std::vector<CompareRow> run_compare(const CompareConfig& config) {
  HISTOCNN_CHECK(!config.steps.empty(), "the compare config has no runs");
  std::vector<CompareRow> rows;
  for (size_t i = 0; i < config.steps.size(); ++i) {
    const auto& step = config.steps[i];
    const auto name = step.options.name.empty() ? default_run_name(step.options) : step.options.name;
    const auto run_dir = step.options.output_dir / name;
    bool reused = fs::exists(run_dir / "metrics.json");
    log_info("compare {}/{}: {} ({}){}", i + 1, config.steps.size(), step.label, name,
             reused ? ", already done" : "");
    if (!reused) run_training(step.options);
    CompareRow row = read_run_row(run_dir);
    row.label = step.label;
    row.reused = reused;
    rows.push_back(row);
    // The results are rewritten after every run, so an interrupted comparison keeps what it finished.
    write_compare_results(config.output_dir, rows, config.ablation);
  }
  return rows;
}

void write_compare_results(const fs::path& output_dir, const std::vector<CompareRow>& rows, bool ablation) {
  const auto figures = write_compare_figures(output_dir, rows);
  std::string md = compare_table_markdown(rows) + "\n" + best_run_summary(rows);
  if (ablation) md += "\n" + ablation_summary(rows);
  if (!figures.empty()) {
    md += "\nFigures (runs sorted by parameters, the best run in orange):\n\n";
    for (const auto& f : figures) md += fmt::format("![{0}]({0})\n", f.filename().string());
  }
  io::write_file_atomic(output_dir / "results.csv", compare_table_csv(rows));
  io::write_file_atomic(output_dir / "results.md", md);
}

int best_run_index(const std::vector<CompareRow>& rows) {
  int best = -1;
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    if (!std::isfinite(r.auc)) continue;
    if (best < 0) {
      best = static_cast<int>(i);
      continue;
    }
    const auto& b = rows[best];
    const double acc = std::isfinite(r.test_accuracy) ? r.test_accuracy : -1.0;
    const double best_acc = std::isfinite(b.test_accuracy) ? b.test_accuracy : -1.0;
    if (r.auc > b.auc || (r.auc == b.auc && acc > best_acc)) best = static_cast<int>(i);
  }
  return best;
}

namespace {

std::string parameters_text(int64_t n) {
  if (n >= 1000000) return fmt::format("{:.1f} M params", n / 1e6);
  if (n >= 1000) return fmt::format("{:.0f} k params", n / 1e3);
  return fmt::format("{} params", n);
}

}  // namespace

std::string best_run_summary(const std::vector<CompareRow>& rows) {
  const int best = best_run_index(rows);
  if (best < 0) return "Best run: none (no run has a test AUC; give the runs a test split)\n";
  const auto& r = rows[best];
  const std::string ci = std::isfinite(r.auc_low) ? fmt::format(" (95 % CI {:.3f}-{:.3f})", r.auc_low, r.auc_high) : "";
  return fmt::format("Best run (highest test AUC; ties: higher test accuracy, then the earlier run): {} ({}), "
                     "test AUC {:.3f}{}, test accuracy {}, {}\n",
                     r.label, r.run_name, r.auc, ci, fmt_num(r.test_accuracy, 3), parameters_text(r.parameters));
}

std::vector<fs::path> write_compare_figures(const fs::path& output_dir, const std::vector<CompareRow>& rows) {
  std::vector<fs::path> written;
  // Smallest model first; equal sizes keep the step order.
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return rows[a].parameters < rows[b].parameters; });
  const int best = best_run_index(rows);
  struct Metric {
    const char* file;
    const char* name;
    double CompareRow::*value;
    bool interval;
  };
  const std::vector<Metric> charts = {
      {"test_accuracy.png", "test accuracy", &CompareRow::test_accuracy, false},
      {"test_precision.png", "test precision", &CompareRow::precision, false},
      {"test_recall.png", "test recall (sensitivity)", &CompareRow::recall, false},
      {"test_f1.png", "test F1", &CompareRow::f1, false},
      {"test_auc.png", "test ROC-AUC", &CompareRow::auc, true},
      {"test_loss.png", "test log-loss", &CompareRow::test_loss, false},
  };
  for (const auto& m : charts) {
    metrics::BarChart chart;
    chart.series = {m.name};
    chart.values.assign(1, {});
    if (m.interval) {
      chart.lower.assign(1, {});
      chart.upper.assign(1, {});
    }
    chart.decimals = 3;
    chart.highlight_label = "best run (highest test AUC)";
    for (size_t i : order) {
      const auto& r = rows[i];
      const double v = r.*m.value;
      if (!std::isfinite(v)) continue;
      if (static_cast<int>(i) == best) chart.highlight = static_cast<int>(chart.categories.size());
      chart.categories.push_back(r.label + "\n" + parameters_text(r.parameters));
      chart.values[0].push_back(v);
      if (m.interval) {
        const bool has = std::isfinite(r.auc_low) && std::isfinite(r.auc_high);
        chart.lower[0].push_back(has ? r.auc_low : std::nan(""));
        chart.upper[0].push_back(has ? r.auc_high : std::nan(""));
      }
    }
    if (chart.categories.empty()) continue;
    metrics::PlotOptions plot;
    plot.width = std::min(8000, std::max(640, 120 + 140 * static_cast<int>(chart.categories.size())));
    plot.height = 520;
    plot.title = fmt::format("{}{} by run, smallest model first", static_cast<char>(std::toupper(m.name[0])),
                             m.name + 1);
    if (m.interval) plot.title += " (whiskers: 95 % CI)";
    if (m.value == &CompareRow::test_loss) plot.y_label = "test log-loss (lower is better)";
    written.push_back(output_dir / m.file);
    metrics::plot_bar_chart(written.back(), chart, plot);
  }

  std::vector<std::string> labels;
  std::vector<double> sizes, accuracies;
  for (size_t i : order) {
    const auto& r = rows[i];
    if (!std::isfinite(r.test_accuracy)) continue;
    labels.push_back(r.label);
    sizes.push_back(r.parameters / 1e6);
    accuracies.push_back(r.test_accuracy);
  }
  if (!labels.empty()) {
    metrics::PlotOptions plot;
    plot.width = std::min(8000, std::max(640, 120 + 140 * static_cast<int>(labels.size())));
    plot.height = 520;
    plot.title = "Test accuracy versus model size";
    plot.y_label = "test accuracy";
    written.push_back(output_dir / "size_vs_accuracy.png");
    metrics::plot_accuracy_vs_size(written.back(), labels, sizes, accuracies, plot);
  }
  return written;
}

std::string compare_table_csv(const std::vector<CompareRow>& rows) {
  std::string s =
      "label,run,backbone,head,parameters,size_mb,train_accuracy,val_accuracy,val_auc,test_accuracy,precision,recall,"
      "f1,auc,auc_low,auc_high,stain_shift_auc,test_loss,seconds,images_per_second\n";
  auto q = [](const std::string& v) { return "\"" + v + "\""; };
  for (const auto& r : rows) {
    s += fmt::format("{},{},{},{},{},{:.3f},{},{},{},{},{},{},{},{},{},{},{},{},{:.1f},{:.1f}\n", q(r.label), r.run_name,
                     r.backbone, r.head, r.parameters, r.size_mb, fmt_num(r.train_accuracy), fmt_num(r.val_accuracy),
                     fmt_num(r.val_auc), fmt_num(r.test_accuracy), fmt_num(r.precision), fmt_num(r.recall),
                     fmt_num(r.f1), fmt_num(r.auc), fmt_num(r.auc_low), fmt_num(r.auc_high),
                     fmt_num(r.stain_shift_auc), fmt_num(r.test_loss),
                     r.seconds, r.images_per_second);
  }
  return s;
}

std::string compare_table_markdown(const std::vector<CompareRow>& rows) {
  std::string s =
      "| run | backbone | head | parameters | size (MB) | train acc | val acc | val AUC | test acc | precision | "
      "recall | F1 | test AUC (95 % CI) | AUC restained | test loss | time (s) | img/s |\n"
      "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|\n";
  for (const auto& r : rows) {
    const std::string ci = std::isfinite(r.auc_low) ? fmt::format(" ({:.3f}-{:.3f})", r.auc_low, r.auc_high) : "";
    s += fmt::format("| {} | {} | {} | {} | {:.1f} | {} | {} | {} | {} | {} | {} | {} | {}{} | {} | {} | {:.0f} | {:.0f} |\n",
                     r.label, r.backbone, r.head, r.parameters, r.size_mb, fmt_num(r.train_accuracy, 3),
                     fmt_num(r.val_accuracy, 3), fmt_num(r.val_auc, 3), fmt_num(r.test_accuracy, 3),
                     fmt_num(r.precision, 3), fmt_num(r.recall, 3), fmt_num(r.f1, 3), fmt_num(r.auc, 3), ci,
                     fmt_num(r.stain_shift_auc, 3), fmt_num(r.test_loss, 3), r.seconds, r.images_per_second);
  }
  return s;
}

std::string ablation_summary(const std::vector<CompareRow>& rows) {
  std::string s = "| step | test AUC | change | test accuracy | change |\n|---|---:|---:|---:|---:|\n";
  for (size_t i = 0; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const std::string d_auc = i ? fmt::format("{:+.3f}", r.auc - rows[i - 1].auc) : "";
    const std::string d_acc = i ? fmt::format("{:+.3f}", r.test_accuracy - rows[i - 1].test_accuracy) : "";
    s += fmt::format("| {} | {:.3f} | {} | {:.3f} | {} |\n", r.label, r.auc, d_auc, r.test_accuracy, d_acc);
  }
  return s;
}

}  // namespace histocnn::train
