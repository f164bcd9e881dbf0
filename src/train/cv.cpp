#include "histocnn/train/cv.h"

#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/data/balance.h"
#include "histocnn/data/split.h"
#include "histocnn/inference/evaluate.h"
#include "histocnn/inference/slide_maps.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/metrics/binary.h"
#include "histocnn/metrics/patient.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <tuple>

namespace histocnn::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

void CrossValidationOptions::validate() const {
  run.validate();
  HISTOCNN_CHECK(folds >= 2 && folds <= 50, "folds must be in [2, 50], got {}", folds);
  for (int k : only_folds) {
    HISTOCNN_CHECK(k >= 1 && k <= folds, "fold {} is not one of 1..{}", k, folds);
  }
  for (double s : stain_shifts) {
    HISTOCNN_CHECK(s > 0 && s <= 1, "stain shift sigmas must be in (0, 1], got {}", s);
  }
  HISTOCNN_CHECK(!name.empty() && name.find('/') == std::string::npos, "cv name must be a plain folder name, got '{}'",
                 name);
  inference::check_smooth_radius(context_radius, "--context");
}

std::vector<std::pair<std::string, int>> assign_patient_folds(const data::Manifest& m, int folds, uint64_t seed) {
  std::map<std::string, int64_t> patches;
  for (const auto& r : m.rows()) ++patches[r.patient];
  HISTOCNN_CHECK(static_cast<int64_t>(patches.size()) >= folds,
                 "{} patients cannot fill {} folds: every fold needs a test patient; use fewer folds", patches.size(),
                 folds);
  std::vector<std::string> order;
  for (const auto& [p, n] : patches) order.push_back(p);
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  // Larger patients first (by powers of two of their patch count, in the shuffled order within
  // one), each to the emptiest fold: folds of about equal size whatever mix of complete and
  // sampled patients there is, and a seed that still decides who meets whom.
  auto magnitude = [&](const std::string& p) { return static_cast<int>(std::log2(static_cast<double>(patches[p]))); };
  std::stable_sort(order.begin(), order.end(),
                   [&](const std::string& a, const std::string& b) { return magnitude(a) > magnitude(b); });
  std::vector<int64_t> size(folds, 0);
  std::vector<std::pair<std::string, int>> out;
  for (const auto& p : order) {
    const int k = static_cast<int>(std::min_element(size.begin(), size.end()) - size.begin());
    size[k] += patches[p];
    out.emplace_back(p, k + 1);
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// The data folders' names by the prefix their rows' paths have in the joined manifest (empty when
// there is one folder, or a manifest).
std::vector<std::pair<std::string, std::string>> folder_groups(const CrossValidationOptions& o, const fs::path& root) {
  std::vector<std::pair<std::string, std::string>> groups;
  if (!o.run.manifest.empty() || o.run.data_dirs.size() < 2) return groups;
  for (const auto& dir : o.run.data_dirs) {
    const fs::path abs = fs::absolute(dir).lexically_normal();
    const std::string name = (abs.has_filename() ? abs : abs.parent_path()).filename().string();
    groups.emplace_back(abs.lexically_relative(fs::absolute(root).lexically_normal()).generic_string() + "/", name);
  }
  return groups;
}

std::string group_of(const data::PatchRecord& r, const std::vector<std::pair<std::string, std::string>>& groups) {
  for (const auto& [prefix, name] : groups) {
    if (r.path.rfind(prefix, 0) == 0) return name;
  }
  HISTOCNN_FAIL("patch '{}' lies in none of the data folders joined for cross-validation", r.path);
}

FoldScore score(const data::Manifest& test, const inference::Predictions& pred, double threshold,
                const std::vector<size_t>& rows, double sigma, const std::string& group) {
  FoldScore s;
  s.stain_shift = sigma;
  s.group = group;
  std::vector<int> y;
  std::vector<double> p;
  std::vector<std::string> patients;
  for (size_t i : rows) {
    y.push_back(pred.labels[i]);
    p.push_back(pred.p_positive[i]);
    patients.push_back(test.rows()[i].patient);
  }
  const auto m = metrics::evaluate_binary(y, p, threshold);
  s.patches = static_cast<int64_t>(rows.size());
  s.patients = static_cast<int64_t>(std::set<std::string>(patients.begin(), patients.end()).size());
  s.roc_auc = m.roc_auc;
  s.sensitivity = m.recall;
  s.specificity = m.specificity;
  s.balanced_accuracy = 0.5 * (m.recall + m.specificity);
  s.median_patient_auc = metrics::within_patient_auc(y, p, patients).median;
  return s;
}

json score_json(const FoldScore& s) {
  auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
  return {{"stain_shift", s.stain_shift}, {"group", s.group},           {"patches", s.patches},
          {"patients", s.patients},       {"roc_auc", num(s.roc_auc)},  {"balanced_accuracy", num(s.balanced_accuracy)},
          {"sensitivity", num(s.sensitivity)}, {"specificity", num(s.specificity)},
          {"median_patient_auc", num(s.median_patient_auc)}};
}

json fold_json(const FoldResult& f) {
  json j = {{"fold", f.fold}, {"run_dir", f.run_dir.string()}, {"threshold", f.threshold}, {"seconds", f.seconds},
            {"scores", json::array()}, {"context_radius", f.context_radius}, {"context_scores", json::array()}};
  for (const auto& s : f.scores) j["scores"].push_back(score_json(s));
  for (const auto& s : f.context_scores) j["context_scores"].push_back(score_json(s));
  return j;
}

FoldResult fold_from_json(const json& j) {
  auto num = [](const json& v) { return v.is_null() ? std::nan("") : v.get<double>(); };
  FoldResult f;
  f.fold = j.at("fold").get<int>();
  f.run_dir = j.at("run_dir").get<std::string>();
  f.threshold = j.at("threshold").get<double>();
  f.seconds = j.at("seconds").get<double>();
  auto read_score = [&](const json& s) {
    FoldScore score;
    score.stain_shift = s.at("stain_shift").get<double>();
    score.group = s.at("group").get<std::string>();
    score.patches = s.at("patches").get<int64_t>();
    score.patients = s.at("patients").get<int64_t>();
    score.roc_auc = num(s.at("roc_auc"));
    score.balanced_accuracy = num(s.at("balanced_accuracy"));
    score.sensitivity = num(s.at("sensitivity"));
    score.specificity = num(s.at("specificity"));
    score.median_patient_auc = num(s.at("median_patient_auc"));
    return score;
  };
  for (const auto& s : j.at("scores")) f.scores.push_back(read_score(s));
  // A fold written before context was scored has neither key.
  f.context_radius = j.value("context_radius", 0);
  for (const auto& s : j.value("context_scores", json::array())) f.context_scores.push_back(read_score(s));
  return f;
}

std::string sigma_name(double sigma) { return sigma == 0 ? std::string("as stained") : fmt::format("restained {:g}", sigma); }

// Mean +- sample sd over the folds, per (sigma, group), then one line per fold.
std::string summarize(const std::vector<FoldResult>& folds, int total_folds) {
  std::map<std::pair<double, std::string>, std::vector<const FoldScore*>> cells;
  for (const auto& f : folds) {
    for (const auto& s : f.scores) cells[{s.stain_shift, s.group}].push_back(&s);
  }
  auto mean_sd = [](const std::vector<double>& v) -> std::string {
    std::vector<double> finite;
    for (double x : v) {
      if (std::isfinite(x)) finite.push_back(x);
    }
    if (finite.empty()) return std::string("n/a");
    const double mean = std::accumulate(finite.begin(), finite.end(), 0.0) / finite.size();
    double ss = 0;
    for (double x : finite) ss += (x - mean) * (x - mean);
    const double sd = finite.size() > 1 ? std::sqrt(ss / (finite.size() - 1)) : 0.0;
    return fmt::format("{:.3f} +- {:.3f}", mean, sd);
  };
  std::string out = fmt::format("Leave-patients-out cross-validation: {} of {} folds, patch-level metrics on each fold's "
                                "unseen test patients (mean +- sd over folds)\n\n",
                                folds.size(), total_folds);
  const std::string header =
      "| test patients | group | ROC-AUC | balanced accuracy | sensitivity | specificity | median per-patient AUC |\n"
      "|---|---|---:|---:|---:|---:|---:|\n";
  auto row = [&](const std::string& name, const std::string& group, const std::vector<const FoldScore*>& scores) {
    std::vector<double> auc, bal, sens, spec, med;
    for (const auto* s : scores) {
      auc.push_back(s->roc_auc);
      bal.push_back(s->balanced_accuracy);
      sens.push_back(s->sensitivity);
      spec.push_back(s->specificity);
      med.push_back(s->median_patient_auc);
    }
    return fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", name, group, mean_sd(auc), mean_sd(bal),
                       mean_sd(sens), mean_sd(spec), mean_sd(med));
  };
  out += header;
  for (const auto& [key, scores] : cells) out += row(sigma_name(key.first), key.second, scores);

  // Context apart: the folds that scored it, per radius, sigma and group (folds written before
  // context was scored under restaining have it as stained only).
  std::map<std::tuple<int, double, std::string>, std::vector<const FoldScore*>> context_cells;
  std::map<int, size_t> context_folds;
  for (const auto& f : folds) {
    for (const auto& s : f.context_scores) context_cells[{f.context_radius, s.stain_shift, s.group}].push_back(&s);
    if (!f.context_scores.empty()) ++context_folds[f.context_radius];
  }
  for (const auto& [radius, n] : context_folds) {
    out += fmt::format("\nWith spatial context, {} of {} folds: each test patch's P averaged over the test patches within "
                       "{} place(s) on its slide (as `histocnn maps --smooth {}`), on the same patches, stained the same "
                       "way, as the patch-alone rows above and never mixed with them\n\n",
                       n, total_folds, radius, radius);
    out += header;
    for (const auto& [key, scores] : context_cells) {
      const auto& [r, sigma, group] = key;
      if (r == radius) out += row(fmt::format("{}, context {}", sigma_name(sigma), radius), group, scores);
    }
  }
  out += "\n| fold | test patients | test patches | threshold | AUC as stained |";
  std::set<double> sigmas;
  for (const auto& [key, scores] : cells) {
    if (key.first > 0) sigmas.insert(key.first);
  }
  for (double s : sigmas) out += fmt::format(" AUC {} |", sigma_name(s));
  out += " AUC as stained, context |";
  out += " minutes |\n|---:|---:|---:|---:|---:|";
  for (size_t i = 0; i < sigmas.size(); ++i) out += "---:|";
  out += "---:|---:|\n";
  for (const auto& f : folds) {
    auto find = [&](double sigma) -> const FoldScore* {
      for (const auto& s : f.scores) {
        if (s.stain_shift == sigma && s.group == "all") return &s;
      }
      return nullptr;
    };
    const auto* base = find(0);
    out += fmt::format("| {} | {} | {} | {:.3f} | {:.3f} |", f.fold, base ? base->patients : 0, base ? base->patches : 0,
                       f.threshold, base ? base->roc_auc : std::nan(""));
    for (double s : sigmas) {
      const auto* r = find(s);
      out += fmt::format(" {:.3f} |", r ? r->roc_auc : std::nan(""));
    }
    const auto context = std::find_if(f.context_scores.begin(), f.context_scores.end(),
                                      [](const FoldScore& s) { return s.stain_shift == 0 && s.group == "all"; });
    out += context == f.context_scores.end() ? std::string(" |")
                                             : fmt::format(" {:.3f} (radius {}) |", context->roc_auc, f.context_radius);
    out += fmt::format(" {:.1f} |\n", f.seconds / 60);
  }
  return out;
}

// Scores a fold's test patients with its model: as stained and at each sigma (restained with
// `seed`), per group, and with context. `trained` (a run just finished) lends its own test
// predictions as stained.
void score_fold(FoldResult& fold, const data::Manifest& test,
                const std::vector<std::pair<std::string, std::string>>& folder_names, const fs::path& model_dir,
                const RunResult* trained, const CrossValidationOptions& options, uint64_t seed) {
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < test.size(); ++i) {
    groups["all"].push_back(i);
    if (!folder_names.empty()) groups[group_of(test.rows()[i], folder_names)].push_back(i);
  }
  std::vector<double> sigmas = {0};
  sigmas.insert(sigmas.end(), options.stain_shifts.begin(), options.stain_shifts.end());
  // Context needs each patch at a place of its own on its slide; where two patches of a patient
  // share one, the fold is scored with the patch alone, and says so once.
  bool context = options.context_radius > 0;
  if (const auto problem = context ? inference::slide_grid_problem(test) : ""; !problem.empty()) {
    log_warn("fold {}: not scored with context: {}", fold.fold, problem);
    context = false;
  }
  for (double sigma : sigmas) {
    inference::EvaluateOptions eo;
    eo.device = options.run.trainer.device;
    eo.progress = options.run.trainer.progress;
    eo.stain_shift = sigma;
    eo.seed = seed;
    eo.tta = options.tta;
    // As stained, without TTA, these are the predictions training made of its test split.
    const auto* made = trained ? &trained->test_predictions : nullptr;
    const bool reuse = made && sigma == 0 && !options.tta && made->labels.size() == test.size() &&
                       std::equal(made->labels.begin(), made->labels.end(), test.rows().begin(),
                                  [](int y, const data::PatchRecord& r) { return y == r.label; });
    inference::EvaluationResult ev;
    if (reuse) {
      ev.predictions = *made;
      ev.threshold = trained->test.threshold;
    } else {
      ev = inference::evaluate_bundle(model_dir, test, eo);
    }
    fold.threshold = ev.threshold;
    for (const auto& [group, idx] : groups) {
      fold.scores.push_back(score(test, ev.predictions, ev.threshold, idx, sigma, group));
      if (group == "all") log_info("fold {}: AUC {:.3f} {}", fold.fold, fold.scores.back().roc_auc, sigma_name(sigma));
    }
    if (context) {
      inference::Predictions smoothed = ev.predictions;
      smoothed.p_positive = inference::smooth_over_neighbours(test, ev.predictions.p_positive, options.context_radius);
      fold.context_radius = options.context_radius;
      for (const auto& [group, idx] : groups) {
        fold.context_scores.push_back(score(test, smoothed, ev.threshold, idx, sigma, group));
        if (group == "all") {
          log_info("fold {}: AUC {:.3f} {} with context (radius {}; the patch alone above)", fold.fold,
                   fold.context_scores.back().roc_auc, sigma_name(sigma), options.context_radius);
        }
      }
    }
  }
}

// The seed a fold trained with (its options.json), which also drew its restaining: a rescored
// fold restains its patients as it did first, whatever --seed the rescoring run was given.
uint64_t training_seed(const fs::path& run_dir, const CrossValidationOptions& options) {
  const auto file = run_dir / "options.json";
  const uint64_t given = options.run.trainer.seed;
  if (!fs::exists(file)) return given;
  const auto saved = json::parse(io::read_file(file)).value("trainer", json::object()).value("seed", given);
  if (saved != given) {
    log_info("{}: restaining with the seed the fold trained with, {}, not {}", run_dir.string(), saved, given);
  }
  return saved;
}

// A fold read back for rescoring must have been tested on the patients this cv deals to it.
void check_same_test_patients(int fold, const fs::path& run_dir, const data::Manifest& test) {
  const auto manifest = run_dir / "manifest.csv";
  std::set<std::string> tested, dealt;
  const auto run_test = data::Manifest::load_csv(manifest).subset("test");
  for (const auto& r : run_test.rows()) tested.insert(r.patient);
  for (const auto& r : test.rows()) dealt.insert(r.patient);
  HISTOCNN_CHECK(tested == dealt,
                 "fold {} was tested on {} patients ({}) but this cross-validation deals it {}: the data folders or "
                 "--fold-seed differ from the run's; rescore with the same ones, or use another --cv-name",
                 fold, tested.size(), manifest.string(), dealt.size());
}

}  // namespace

CrossValidationResult cross_validate(const CrossValidationOptions& options) {
  options.validate();
  CrossValidationResult result;
  result.output_dir = options.run.output_dir / options.name;
  fs::create_directories(result.output_dir);

  auto all = load_patch_manifest(options.run.data_dirs, options.run.manifest);
  HISTOCNN_CHECK(!all.empty(), "no patches to cross-validate");
  const auto fold_of = assign_patient_folds(all, options.folds, options.fold_seed);
  {
    std::string csv = "patient,fold\n";
    for (const auto& [p, k] : fold_of) csv += fmt::format("{},{}\n", p, k);
    io::write_file_atomic(result.output_dir / "folds.csv", csv);
  }
  const std::map<std::string, int> fold_map(fold_of.begin(), fold_of.end());
  const auto folder_names = folder_groups(options, all.root());

  // Validation takes run.split.val / (train + val) of the non-test patients.
  data::SplitOptions inner = options.run.split;
  HISTOCNN_CHECK(!inner.by_patch, "cross-validation splits by patient; by_patch is not allowed");
  const double tv = inner.train + inner.val;
  inner.train /= tv;
  inner.val /= tv;
  inner.test = 0;

  std::vector<int> which = options.only_folds;
  if (which.empty()) {
    for (int k = 1; k <= options.folds; ++k) which.push_back(k);
  }
  for (int k : which) {
    const auto t0 = std::chrono::steady_clock::now();
    const fs::path fold_dir = result.output_dir / fmt::format("fold-{}", k);
    const fs::path fold_json_path = fold_dir / "cv_fold.json";
    const auto test = all.filter([&](const data::PatchRecord& r) { return fold_map.at(r.patient) == k; });
    if (fs::exists(fold_json_path)) {  // finished before: its scores are final (written last)
      auto done = fold_from_json(json::parse(io::read_file(fold_json_path)));
      if (options.rescore) {
        check_same_test_patients(k, fold_dir, test);
        log_info("cross-validation fold {} of {}: trained before, scoring its model again", k, options.folds);
        FoldResult again;
        again.fold = k;
        again.run_dir = fold_dir;      // where the fold is now, should the cv folder have moved
        again.seconds = done.seconds;  // the training's and its first scoring's; rescoring is not counted
        score_fold(again, test, folder_names, fold_dir / "model", nullptr, options, training_seed(fold_dir, options));
        io::write_file_atomic(fold_json_path, fold_json(again).dump(2));
        done = std::move(again);
      } else {
        log_info("cross-validation fold {} of {}: done before, scores read from {} (--rescore scores its model again)",
                 k, options.folds, fold_json_path.string());
      }
      result.folds.push_back(std::move(done));
      continue;
    }
    log_info("cross-validation fold {} of {}", k, options.folds);
    auto rest = all.filter([&](const data::PatchRecord& r) { return fold_map.at(r.patient) != k; });
    if (options.run.balance_per_class > 0) {
      rest = data::balance_classes(rest, options.run.balance_per_class, options.run.split.seed);
    }
    rest = data::split_manifest(rest, inner);
    std::vector<data::PatchRecord> rows = rest.rows();
    for (auto r : test.rows()) {
      r.split = "test";
      rows.push_back(std::move(r));
    }
    const fs::path manifest_csv = result.output_dir / "manifests" / fmt::format("fold-{}.csv", k);
    fs::create_directories(manifest_csv.parent_path());
    data::Manifest(all.root(), std::move(rows)).save_csv(manifest_csv);

    RunOptions run = options.run;
    run.data_dirs.clear();
    run.manifest = manifest_csv;
    run.balance_per_class = 0;  // done above, on training and validation only
    run.output_dir = result.output_dir;
    run.name = fmt::format("fold-{}", k);
    run.stain_shift = 0;  // every sigma is scored below, per group
    const auto trained = run_training(run);

    FoldResult fold;
    fold.fold = k;
    fold.run_dir = trained.run_dir;
    score_fold(fold, test, folder_names, trained.model_dir, &trained, options, run.trainer.seed);
    fold.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    io::write_file_atomic(fold_json_path, fold_json(fold).dump(2));
    result.folds.push_back(std::move(fold));
  }

  result.summary = summarize(result.folds, options.folds);
  json out = {{"folds", options.folds}, {"fold_seed", options.fold_seed}, {"options", json::parse(options.run.to_json())}};
  for (const auto& f : result.folds) out["results"].push_back(fold_json(f));
  io::write_file_atomic(result.output_dir / "cv.json", out.dump(2));
  io::write_file_atomic(result.output_dir / "cv.md", result.summary);
  return result;
}

}  // namespace histocnn::train
