// Evaluator and Pusher: the verdict on a trained model against the served one, and its deployment.
#include "histocnn/core/error.h"
#include "histocnn/core/hash.h"
#include "histocnn/core/log.h"
#include "histocnn/inference/evaluate.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/bundle.h"
#include "histocnn/metrics/binary.h"
#include "histocnn/pipeline/blessing.h"
#include "histocnn/serve/versions.h"

#include "component_impl.h"

#include <fmt/ranges.h>

namespace histocnn::pipeline::detail {

namespace {

// The model on the test patients as stained and, with a stain shift, restained.
json evaluate_views(const fs::path& bundle, const data::Manifest& test, const json& config, bool progress,
                    std::string& report) {
  inference::EvaluateOptions o;
  o.progress = progress;
  o.workers = config.value("workers", 2);
  o.device = config.value("device", std::string("auto"));
  o.seed = config.value("seed", uint64_t{42});
  const auto plain = inference::evaluate_bundle(bundle, test, o);
  report += plain.report + "\n";
  json j = {{"model_dir", plain.model_directory},
            {"threshold", plain.threshold},
            {"plain", json::parse(metrics::to_json(plain.metrics))}};
  const double shift = config.value("stain_shift", 0.0);
  if (shift > 0) {
    o.stain_shift = shift;
    const auto restained = inference::evaluate_bundle(bundle, test, o);
    report += fmt::format("restained (stain shift sigma {}):\n{}\n", shift, restained.report);
    j["restained"] = json::parse(metrics::to_json(restained.metrics));
    j["restained"]["sigma"] = shift;
  }
  return j;
}

}  // namespace

ComponentResult run_evaluator(const ComponentCall& call, const json& config) {
  const auto manifest = data::Manifest::load_csv(manifest_of_examples(input_dir(call, "examples")));
  const auto test = manifest.subset("test");
  HISTOCNN_CHECK(!test.empty(), "Evaluator: the test split is empty; give ExampleGen.split a test fraction");
  const fs::path candidate_dir = bundle_of_model(input_dir(call, "model"));
  std::string report = "candidate " + candidate_dir.string() + "\n";
  const json candidate = evaluate_views(candidate_dir, test, config, call.progress, report);

  json baseline = nullptr;
  const json base_ref = config.value("baseline", json());
  if (base_ref.is_object()) {
    const fs::path dir = base_ref["dir"].get<std::string>();
    report += fmt::format("\nbaseline: served version {} ({})\n", base_ref["version"].get<int64_t>(), dir.string());
    baseline = evaluate_views(dir, test, config, call.progress, report);
    baseline["version"] = base_ref["version"];
  }
  const auto rule = BlessingRule::from_json(config.dump());
  const auto blessing =
      decide_blessing(rule, candidate.dump(), baseline.is_null() ? std::nullopt : std::optional<std::string>(baseline.dump()));

  const fs::path eval_out = output_dir(call, "evaluation");
  const fs::path bless_out = output_dir(call, "blessing");
  write_json_file(eval_out / "evaluation.json", {{"candidate", candidate},
                                                 {"baseline", baseline},
                                                 {"test_patches", test.size()},
                                                 {"test_patients", test.patients().size()},
                                                 {"blessing", json::parse(blessing.to_json())}});
  io::write_file_atomic(eval_out / "report.txt", report);
  // As TFX: an empty BLESSED or NOT_BLESSED file; the reasons beside it.
  fs::remove(bless_out / (blessing.blessed ? "NOT_BLESSED" : "BLESSED"));
  std::string reasons;
  for (const auto& c : blessing.checks) reasons += c.text + "\n";
  if (blessing.checks.empty()) reasons = "no thresholds configured: every model is blessed\n";
  if (!blessing.has_baseline) reasons += "no served baseline: only the value thresholds apply\n";
  io::write_file_atomic(bless_out / "reasons.txt", reasons);
  io::write_file_atomic(bless_out / "blessing.json", blessing.to_json());
  io::write_file_atomic(bless_out / (blessing.blessed ? "BLESSED" : "NOT_BLESSED"), "");

  ComponentResult r;
  const auto failed = blessing.reasons();
  const auto auc = [](const json& evaluation) {
    const auto& a = evaluation["plain"]["roc_auc"];
    return a.is_null() ? std::nan("") : a.get<double>();
  };
  const std::string against = baseline.is_null() ? ", no baseline"
                                                 : fmt::format(" (served version {}: {:.4f})",
                                                               baseline["version"].get<int64_t>(), auc(baseline));
  r.summary = fmt::format("{}: test AUC {:.4f}{}{}", blessing.blessed ? "BLESSED" : "NOT_BLESSED", auc(candidate),
                          against, failed.empty() ? "" : fmt::format("; {}", fmt::join(failed, "; ")));
  r.properties["blessing"] = {{"blessed", blessing.blessed ? "1" : "0"},
                              {"baseline_version", baseline.is_null() ? "" : std::to_string(baseline["version"].get<int64_t>())}};
  r.properties["evaluation"] = {{"roc_auc", candidate["plain"]["roc_auc"].dump()}};
  return r;
}

ComponentResult run_pusher(const ComponentCall& call, const json& config) {
  const fs::path base = config["model_base_path"].get<std::string>();
  const fs::path out = output_dir(call, "pushed_model");
  const fs::path blessing = input_dir(call, "blessing");
  ComponentResult r;
  if (!fs::exists(blessing / "BLESSED")) {
    HISTOCNN_CHECK(fs::exists(blessing / "NOT_BLESSED"), "Pusher: '{}' holds neither BLESSED nor NOT_BLESSED; it is "
                   "not an Evaluator's blessing", blessing.string());
    write_json_file(out / "pushed.json", {{"pushed", false}, {"reason", "the model is NOT_BLESSED"},
                                          {"base_path", base.string()}});
    r.summary = fmt::format("not pushed: the model is NOT_BLESSED; {} is left as it is", base.string());
    r.properties["pushed_model"] = {{"pushed", "0"}};
    return r;
  }
  const fs::path bundle = bundle_of_model(input_dir(call, "model"));
  // Pushed before (a run killed after the push, before it was recorded): the same bytes are not
  // pushed twice. model.json carries its creation time, so equal bytes are the same export.
  const std::string card = io::read_file(bundle / "model.json");
  int64_t version = 0;
  bool reused = false;
  for (int64_t v : io::list_versions(base)) {
    if (io::read_file(base / std::to_string(v) / "model.json") == card) {
      version = v;
      reused = true;
    }
  }
  if (!reused) version = serve::push_bundle(bundle, base);
  const fs::path version_dir = base / std::to_string(version);
  write_json_file(out / "pushed.json", {{"pushed", true},
                                        {"version", version},
                                        {"base_path", canonical_base_path(base)},
                                        {"version_dir", version_dir.string()},
                                        {"bundle", bundle.string()},
                                        {"already_there", reused}});
  r.summary = reused ? fmt::format("version {} of {} already holds this model", version, base.string())
                     : fmt::format("pushed as version {} of {}", version, base.string());
  r.properties["pushed_model"] = {{"pushed", "1"},
                                  {"version", std::to_string(version)},
                                  {"base_path", canonical_base_path(base)},
                                  {"version_dir", version_dir.string()}};
  return r;
}

}  // namespace histocnn::pipeline::detail
