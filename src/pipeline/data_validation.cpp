// StatisticsGen, SchemaGen and ExampleValidator.
#include "histocnn/core/error.h"
#include "histocnn/data/manifest.h"
#include "histocnn/inference/model_card.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/pipeline/statistics.h"

#include "component_impl.h"

#include <fmt/ranges.h>

#include <regex>

namespace histocnn::pipeline::detail {

ComponentResult run_statistics_gen(const ComponentCall& call, const json& config) {
  const auto manifest = data::Manifest::load_csv(manifest_of_examples(input_dir(call, "examples")));
  const fs::path out = output_dir(call, "statistics");
  const std::string text = compute_statistics(manifest, config.value("threads", 0));
  const json s = json::parse(text);
  write_json_file(out / "statistics.json", s);
  plot_statistics(text, out / "statistics.png");
  ComponentResult r;
  const auto& all = s["splits"]["all"];
  r.summary = fmt::format("{} patches, {} undecodable, {} duplicate files within splits and {} groups across splits, "
                          "background share {:.3f}",
                          s["patches"].get<int64_t>(), s["undecodable"].size(),
                          s["duplicates"]["within_split_total"].get<int64_t>(),
                          s["duplicates"]["across_splits"].get<int64_t>(), all["background_fraction"].get<double>());
  if (s["skew"].contains("test")) {
    r.summary += fmt::format("; test vs train: label L-inf {:.3f}, intensity JS {:.3f}",
                             s["skew"]["test"]["label_linf"].get<double>(),
                             s["skew"]["test"]["intensity_js_max"].get<double>());
  }
  r.properties["statistics"] = {{"patches", std::to_string(s["patches"].get<int64_t>())},
                                {"undecodable", std::to_string(s["undecodable"].size())}};
  return r;
}

namespace {

json infer_schema(const json& s) {
  const auto& all = s["splits"]["all"];
  json channels = json::array();
  for (const auto& [c, count] : all["channels"].items()) channels.push_back(std::stoi(c));
  json labels = json::array();
  for (int l = 0; l < 2; ++l) {
    if (all["class_counts"][l].get<int64_t>() > 0) labels.push_back(l);
  }
  bool digits = true;
  for (const auto& [patient, counts] : all["per_patient"].items()) {
    digits = digits && !patient.empty() && std::all_of(patient.begin(), patient.end(), ::isdigit);
  }
  json splits = json::array();
  for (const char* k : {"train", "val", "test"}) {
    if (s["splits"].contains(k)) splits.push_back(k);
  }
  return {{"format", 1},
          {"source", "inferred"},
          {"image", {{"channels", channels}, {"width", all["width"]}, {"height", all["height"]}}},
          {"labels", labels},
          {"class_names", inference::idc_class_names()},
          {"patient_id_pattern", digits ? "^[0-9]+$" : "^[A-Za-z0-9_.-]+$"},
          {"splits", splits},
          {"every_class_in_every_split", true}};
}

void check_schema(const json& schema, const std::string& source) {
  for (const char* key : {"image", "labels", "patient_id_pattern", "splits"}) {
    HISTOCNN_CHECK(schema.contains(key), "schema '{}' has no '{}'; write it as SchemaGen does (see docs/pipeline.md)",
                   source, key);
  }
  for (const char* dim : {"width", "height"}) {
    HISTOCNN_CHECK(schema["image"].contains(dim) && schema["image"][dim].contains("min") &&
                       schema["image"][dim].contains("max"),
                   "schema '{}': image.{} needs min and max", source, dim);
  }
  try {
    std::regex(schema["patient_id_pattern"].get<std::string>());
  } catch (const std::regex_error& e) {
    HISTOCNN_FAIL("schema '{}': patient_id_pattern is not a regular expression ({})", source, e.what());
  }
}

}  // namespace

ComponentResult run_schema_gen(const ComponentCall& call, const json& config) {
  const fs::path out = output_dir(call, "schema");
  const std::string pinned = config.value("schema_file", "");
  json schema;
  if (!pinned.empty()) {
    HISTOCNN_CHECK_FOUND(fs::exists(pinned), "SchemaGen: schema_file '{}' does not exist", pinned);
    schema = read_json_file(pinned);
    check_schema(schema, pinned);
    schema["source"] = "pinned: " + pinned;
  } else {
    schema = infer_schema(read_json_file(input_dir(call, "statistics") / "statistics.json"));
  }
  write_json_file(out / "schema.json", schema);
  ComponentResult r;
  r.summary = fmt::format("{}: images {}-{} x {}-{} px, channels {}, labels {}, patient ids {}", schema["source"].get<std::string>(),
                          schema["image"]["width"]["min"].dump(), schema["image"]["width"]["max"].dump(),
                          schema["image"]["height"]["min"].dump(), schema["image"]["height"]["max"].dump(),
                          schema["image"].value("channels", json::array()).dump(), schema["labels"].dump(),
                          schema["patient_id_pattern"].get<std::string>());
  r.properties["schema"] = {{"source", schema["source"].get<std::string>()}};
  return r;
}

namespace {

struct Anomalies {
  json list = json::array();
  int errors = 0, warnings = 0;
  void add(const std::string& severity, const std::string& kind, const std::string& split, const std::string& detail,
           const json& examples = json::array()) {
    list.push_back({{"severity", severity}, {"kind", kind}, {"split", split}, {"detail", detail}, {"examples", examples}});
    (severity == "error" ? errors : warnings)++;
  }
};

void check_drift(Anomalies& a, const json& drift, const json& thresholds, const std::string& severity,
                 const std::string& kind, const std::string& split, const std::string& against) {
  const double label = drift["label_linf"].get<double>(), js = drift["intensity_js_max"].get<double>(),
               bg = drift["background_diff"].get<double>();
  const double t_label = thresholds.value("label_linf", 0.2), t_js = thresholds.value("intensity_js", 0.1),
               t_bg = thresholds.value("background_diff", 0.1);
  if (label > t_label) {
    a.add(severity, kind, split, fmt::format("label distribution L-infinity distance {:.3f} > {} against {}", label,
                                             t_label, against));
  }
  if (js > t_js) {
    a.add(severity, kind, split, fmt::format("intensity Jensen-Shannon divergence {:.3f} (R, G, B: {}) > {} against {}",
                                             js, drift["intensity_js"].dump(), t_js, against));
  }
  if (bg > t_bg) {
    a.add(severity, kind, split, fmt::format("background share differs by {:.3f} > {} against {}", bg, t_bg, against));
  }
}

}  // namespace

ComponentResult run_example_validator(const ComponentCall& call, const json& config) {
  const json s = read_json_file(input_dir(call, "statistics") / "statistics.json");
  const json schema = read_json_file(input_dir(call, "schema") / "schema.json");
  check_schema(schema, (input_dir(call, "schema") / "schema.json").string());
  const fs::path out = output_dir(call, "anomalies");
  Anomalies a;

  if (!s["undecodable"].empty()) {
    json ex = json::array();
    for (size_t i = 0; i < s["undecodable"].size() && i < 10; ++i) ex.push_back(s["undecodable"][i]);
    a.add("error", "undecodable", "", fmt::format("{} files cannot be decoded as images", s["undecodable"].size()), ex);
  }
  const auto& img = schema["image"];
  const auto wmin = img["width"]["min"].get<int64_t>(), wmax = img["width"]["max"].get<int64_t>(),
             hmin = img["height"]["min"].get<int64_t>(), hmax = img["height"]["max"].get<int64_t>();
  const std::regex patient_pattern(schema["patient_id_pattern"].get<std::string>());
  std::vector<int64_t> labels = schema["labels"].get<std::vector<int64_t>>();
  for (const auto& [split, sp] : s["splits"].items()) {
    if (split == "all") continue;
    json bad_sizes = json::array();
    int64_t bad = 0;
    for (const auto& [size, count] : sp["sizes"].items()) {
      const auto x = size.find('x');
      const int64_t w = std::stoll(size.substr(0, x)), h = std::stoll(size.substr(x + 1));
      if (w < wmin || w > wmax || h < hmin || h > hmax) {
        bad += count.get<int64_t>();
        bad_sizes.push_back(fmt::format("{}: {} files", size, count.get<int64_t>()));
      }
    }
    if (bad > 0) {
      a.add("error", "wrong_size", split,
            fmt::format("{} files outside {}-{} x {}-{} px", bad, wmin, wmax, hmin, hmax), bad_sizes);
    }
    if (img.contains("channels")) {
      const auto allowed = img["channels"].get<std::vector<int>>();
      for (const auto& [c, count] : sp["channels"].items()) {
        if (!std::count(allowed.begin(), allowed.end(), std::stoi(c))) {
          a.add("error", "wrong_channels", split,
                fmt::format("{} files store {} channels; the schema allows {}", count.get<int64_t>(), c,
                            img["channels"].dump()));
        }
      }
    }
    for (int l = 0; l < 2; ++l) {
      const auto n = sp["class_counts"][l].get<int64_t>();
      if (n > 0 && !std::count(labels.begin(), labels.end(), l)) {
        a.add("error", "unknown_label", split, fmt::format("{} patches have label {}, outside the schema's {}", n, l,
                                                           schema["labels"].dump()));
      }
      if (n == 0 && schema.value("every_class_in_every_split", true)) {
        a.add("error", "class_missing", split, fmt::format("no patch of class {} ({})", l,
                                                           inference::idc_class_names()[l]));
      }
    }
    json bad_ids = json::array();
    int64_t bad_patients = 0;
    for (const auto& [patient, counts] : sp["per_patient"].items()) {
      if (!std::regex_match(patient, patient_pattern)) {
        ++bad_patients;
        if (bad_ids.size() < 10) bad_ids.push_back(patient);
      }
    }
    if (bad_patients > 0) {
      a.add("error", "patient_id", split, fmt::format("{} patient ids do not match {}", bad_patients,
                                                      schema["patient_id_pattern"].get<std::string>()), bad_ids);
    }
    if (s["duplicates"]["within_split"].contains(split)) {
      a.add("warning", "duplicates_within_split", split,
            fmt::format("{} files have the same bytes as another file of the split",
                        s["duplicates"]["within_split"][split].get<int64_t>()));
    }
  }
  for (const auto& split : schema["splits"]) {
    if (!s["splits"].contains(split.get<std::string>())) {
      a.add("error", "split_missing", split.get<std::string>(), "the schema expects this split; the data has none");
    }
  }
  if (s["duplicates"]["across_splits"].get<int64_t>() > 0) {
    a.add("error", "duplicates_across_splits", "",
          fmt::format("{} groups of identical files are in more than one split",
                      s["duplicates"]["across_splits"].get<int64_t>()),
          s["duplicates"]["groups"]);
  }
  if (!s["patients_in_several_splits"].empty()) {
    json ex = json::array();
    for (size_t i = 0; i < s["patients_in_several_splits"].size() && i < 10; ++i) ex.push_back(s["patients_in_several_splits"][i]);
    a.add("error", "patient_in_several_splits", "",
          fmt::format("{} patients are in more than one split (the test score would see training patients)",
                      s["patients_in_several_splits"].size()),
          ex);
  }

  const json thresholds = config.value("drift_thresholds", json::object());
  for (const auto& [split, drift] : s["skew"].items()) {
    check_drift(a, drift, thresholds, "warning", "split_skew", split, "the training split");
  }
  json reference = config.value("reference", json());
  json drift = nullptr;
  if (reference.is_object()) {
    const fs::path file = reference["file"].get<std::string>();
    const std::string ref_text = io::read_file(file);
    drift = json::parse(compare_statistics(ref_text, s.dump(), "train", "train"));
    check_drift(a, drift, thresholds, config.value("drift_severity", "error"), "drift", "train",
                fmt::format("the training data of {} ({})", reference["from"].get<std::string>(), file.string()));
  }

  write_json_file(out / "anomalies.json", {{"anomalies", a.list},
                                           {"errors", a.errors},
                                           {"warnings", a.warnings},
                                           {"reference", reference},
                                           {"drift", drift}});
  ComponentResult r;
  r.summary = fmt::format("{} errors, {} warnings{}", a.errors, a.warnings,
                          reference.is_object() ? fmt::format("; drift against {}", reference["from"].get<std::string>())
                                                : "");
  r.properties["anomalies"] = {{"errors", std::to_string(a.errors)}, {"warnings", std::to_string(a.warnings)}};
  if (a.errors > 0) {
    std::string list;
    for (const auto& x : a.list) {
      if (x["severity"] == "error") {
        list += fmt::format("\n  {}{}: {}", x["kind"].get<std::string>(),
                            x["split"].get<std::string>().empty() ? "" : " (" + x["split"].get<std::string>() + ")",
                            x["detail"].get<std::string>());
      }
    }
    throw AnomaliesFound(fmt::format("ExampleValidator found {} error-level anomalies (all of them in {}):{}", a.errors,
                                     (out / "anomalies.json").string(), list));
  }
  return r;
}

}  // namespace histocnn::pipeline::detail
