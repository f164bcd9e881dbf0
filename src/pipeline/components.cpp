#include "histocnn/pipeline/components.h"

#include "histocnn/core/error.h"
#include "histocnn/core/hash.h"
#include "histocnn/core/log.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/bundle.h"
#include "histocnn/pipeline/blessing.h"
#include "histocnn/pipeline/metadata.h"
#include "histocnn/serve/versions.h"

#include "component_impl.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <set>
#include <sys/stat.h>

namespace histocnn::pipeline {

using detail::json;
namespace fs = std::filesystem;

const std::vector<std::string>& preprocessing_option_names() {
  static const std::vector<std::string> names = {"image_size", "normalisation",   "weights",
                                                 "backbone",   "stain_normalise", "stain_fit",
                                                 "stain_reference", "stain_white_balance", "colour"};
  return names;
}

const ComponentSignature& signature(Component c) {
  static const std::vector<ComponentSignature> table = [] {
    const ArtifactSlot examples{"examples", "Examples", "system.Dataset"};
    const ArtifactSlot statistics{"statistics", "ExampleStatistics", "system.Artifact"};
    const ArtifactSlot schema{"schema", "Schema", "system.Artifact"};
    const ArtifactSlot anomalies{"anomalies", "ExampleAnomalies", "system.Artifact"};
    ArtifactSlot anomalies_gate = anomalies;
    anomalies_gate.gate = true;
    const ArtifactSlot transform_graph{"transform_graph", "TransformGraph", "system.Artifact"};
    const ArtifactSlot model{"model", "Model", "system.Model"};
    const ArtifactSlot evaluation{"evaluation", "ModelEvaluation", "system.Metrics"};
    const ArtifactSlot blessing{"blessing", "ModelBlessing", "system.Artifact"};
    const ArtifactSlot pushed{"pushed_model", "PushedModel", "system.Artifact"};
    return std::vector<ComponentSignature>{
        {Component::example_gen, {}, {examples},
         "Scans the data (or generates synthetic patches), drops files with identical bytes, splits by patient"},
        {Component::statistics_gen, {examples}, {statistics},
         "Counts, sizes, channel statistics, background and duplicates per split, and the skew between splits"},
        {Component::schema_gen, {statistics}, {schema}, "Infers the schema of the data, or pins a curated one"},
        {Component::example_validator, {statistics, schema}, {anomalies},
         "Finds anomalies against the schema and drift against the served model's data; errors stop the pipeline"},
        {Component::transform, {examples, schema, anomalies_gate}, {transform_graph},
         "Fits the preprocessing on the training split"},
        {Component::trainer, {examples, transform_graph}, {model}, "Trains the model (histocnn train; resumable)"},
        {Component::evaluator, {examples, model}, {evaluation, blessing},
         "Evaluates the model and the served baseline on the test patients and blesses the model or not"},
        {Component::pusher, {model, blessing}, {pushed},
         "Pushes a blessed model as the next version of the serving base path"},
    };
  }();
  for (const auto& s : table) {
    if (s.component == c) return s;
  }
  HISTOCNN_FAIL("no signature for component {}", static_cast<int>(c));
}

namespace detail {

fs::path input_dir(const ComponentCall& call, const std::string& name) {
  auto it = call.inputs.find(name);
  HISTOCNN_CHECK(it != call.inputs.end(), "{} needs its input '{}'", component_name(call.component), name);
  return it->second;
}

fs::path output_dir(const ComponentCall& call, const std::string& name) {
  auto it = call.outputs.find(name);
  HISTOCNN_CHECK(it != call.outputs.end(), "{} needs its output '{}'", component_name(call.component), name);
  return it->second;
}

json read_json_file(const fs::path& file) {
  const std::string text = io::read_file(file);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    HISTOCNN_FAIL("'{}' is not valid JSON ({}); rerun the component that wrote it", file.string(), e.what());
  }
}

void write_json_file(const fs::path& file, const json& value) { io::write_file_atomic(file, value.dump(2) + "\n"); }

std::string hex16(uint64_t value) { return fmt::format("{:016x}", value); }

fs::path manifest_of_examples(const fs::path& examples) {
  const fs::path csv = examples / "manifest.csv";
  HISTOCNN_CHECK_FOUND(fs::exists(csv), "'{}' has no manifest.csv: it is not an ExampleGen output", examples.string());
  return csv;
}

std::optional<LiveVersion> live_version(const fs::path& base_path) {
  if (base_path.empty() || !fs::is_directory(base_path)) return std::nullopt;
  for (const auto& v : serve::list_served_versions(base_path)) {
    if (!v.live) continue;
    LiveVersion live;
    live.version = v.version;
    live.dir = base_path / std::to_string(v.version);
    live.model_json_hash = hex16(fnv1a64(io::read_file(live.dir / "model.json")));
    return live;
  }
  return std::nullopt;
}

std::string canonical_base_path(const fs::path& base_path) {
  return fs::weakly_canonical(fs::absolute(base_path)).lexically_normal().string();
}

fs::path bundle_of_model(const fs::path& model_artifact) {
  return io::resolve_bundle_dir(model_artifact / "model");
}

}  // namespace detail

namespace {

// Names, sizes and modification times of every file under the folders: what a changed data folder
// changes, without reading the bytes.
std::string folder_fingerprint(const std::vector<std::string>& folders) {
  uint64_t h = fnv1a64("folders");
  int64_t files = 0;
  for (const auto& folder : folders) {
    std::error_code ec;
    std::vector<std::string> entries;
    for (fs::recursive_directory_iterator it(folder, fs::directory_options::follow_directory_symlink, ec), end;
         !ec && it != end; it.increment(ec)) {
      struct stat st {};
      if (::stat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      entries.push_back(fmt::format("{}|{}|{}.{}", it->path().lexically_relative(folder).generic_string(),
                                    static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
                                    static_cast<long long>(st.st_mtim.tv_nsec)));
    }
    std::sort(entries.begin(), entries.end());
    files += static_cast<int64_t>(entries.size());
    h ^= fnv1a64(folder);
    for (const auto& e : entries) h = fnv1a64(fmt::format("{:016x}{}", h, e));
  }
  return fmt::format("{} files, {:016x}", files, h);
}

std::set<std::string> keys_of(const json& j) {
  std::set<std::string> keys;
  for (const auto& [k, v] : j.items()) keys.insert(k);
  return keys;
}

void check_keys(Component c, const json& config, const std::set<std::string>& allowed) {
  for (const auto& [key, value] : config.items()) {
    HISTOCNN_CHECK(allowed.count(key), "{}: unknown option '{}'; its options are {}", component_name(c), key,
                   fmt::join(allowed, ", "));
  }
}

void check_number(Component c, const json& config, const std::string& key, double lo, double hi) {
  if (!config.contains(key) || config[key].is_null()) return;
  HISTOCNN_CHECK(config[key].is_number(), "{}: '{}' must be a number, got {}", component_name(c), key,
                 config[key].dump());
  const double v = config[key].get<double>();
  HISTOCNN_CHECK(v >= lo && v <= hi, "{}: '{}' must be in [{}, {}], got {}", component_name(c), key, lo, hi, v);
}

void check_string(Component c, const json& config, const std::string& key, const std::vector<std::string>& choices = {}) {
  if (!config.contains(key) || config[key].is_null()) return;
  HISTOCNN_CHECK(config[key].is_string(), "{}: '{}' must be a string, got {}", component_name(c), key,
                 config[key].dump());
  if (!choices.empty()) {
    const auto v = config[key].get<std::string>();
    HISTOCNN_CHECK(std::count(choices.begin(), choices.end(), v), "{}: '{}' must be one of {}, got '{}'",
                   component_name(c), key, fmt::join(choices, ", "), v);
  }
}

}  // namespace

void validate_component_config(Component c, const std::string& config_json) {
  json config;
  try {
    config = json::parse(config_json);
  } catch (const json::exception& e) {
    HISTOCNN_FAIL("{}: the configuration is not valid JSON ({})", component_name(c), e.what());
  }
  HISTOCNN_CHECK(config.is_object(), "{}: the configuration must be a mapping, got {}", component_name(c),
                 config.dump());
  switch (c) {
    case Component::example_gen: {
      check_keys(c, config, {"data_dirs", "manifest", "synthetic", "split", "balance_per_class", "data_fingerprint"});
      const bool dirs = config.contains("data_dirs") && !config["data_dirs"].empty();
      const bool manifest = config.contains("manifest") && config["manifest"].is_string() &&
                            !config["manifest"].get<std::string>().empty();
      const bool synthetic = config.contains("synthetic") && config["synthetic"].is_object();
      HISTOCNN_CHECK(dirs + manifest + synthetic == 1,
                     "ExampleGen needs exactly one source of data: data_dirs (folders in the Kaggle layout), manifest "
                     "(a CSV) or synthetic (generated patches: patients, patches_per_patient, seed)");
      if (synthetic) {
        const auto& s = config["synthetic"];
        check_keys(c, s, {"patients", "patches_per_patient", "positive_fraction", "patch_size", "seed", "difficulty",
                          "border_patches"});
        check_number(c, s, "patients", 3, 100000);
        check_number(c, s, "patches_per_patient", 1, 1e7);
        check_number(c, s, "positive_fraction", 0, 1);
        check_number(c, s, "difficulty", 0, 1);
      }
      if (config.contains("split")) {
        HISTOCNN_CHECK(config["split"].is_object(), "ExampleGen: 'split' must be a mapping (train, val, test, seed, by_patch)");
        check_keys(c, config["split"], {"train", "val", "test", "seed", "by_patch"});
        for (const char* k : {"train", "val", "test"}) check_number(c, config["split"], k, 0, 1);
      }
      check_number(c, config, "balance_per_class", 0, 1e12);
      break;
    }
    case Component::statistics_gen:
      check_keys(c, config, {"threads"});
      check_number(c, config, "threads", 0, 1024);
      break;
    case Component::schema_gen:
      check_keys(c, config, {"schema_file"});
      check_string(c, config, "schema_file");
      break;
    case Component::example_validator:
      check_keys(c, config, {"drift_thresholds", "drift_severity", "reference_statistics", "use_served_reference",
                             "model_base_path", "reference"});
      check_string(c, config, "drift_severity", {"error", "warning"});
      check_string(c, config, "reference_statistics");
      if (config.contains("drift_thresholds")) {
        HISTOCNN_CHECK(config["drift_thresholds"].is_object(),
                       "ExampleValidator: 'drift_thresholds' must be a mapping (label_linf, intensity_js, background_diff)");
        check_keys(c, config["drift_thresholds"], {"label_linf", "intensity_js", "background_diff"});
        for (const char* k : {"label_linf", "intensity_js", "background_diff"}) {
          check_number(c, config["drift_thresholds"], k, 0, 1);
        }
      }
      break;
    case Component::transform:
      check_keys(c, config, std::set<std::string>(preprocessing_option_names().begin(), preprocessing_option_names().end()));
      break;
    case Component::trainer:
      break;  // run options: checked by the options table when the spec is read and when it runs
    case Component::evaluator: {
      check_keys(c, config, {"value_thresholds", "change_thresholds", "stain_shift", "seed", "model_base_path",
                             "use_baseline", "baseline", "workers", "device"});
      check_number(c, config, "stain_shift", 0, 1);
      const auto rule = BlessingRule::from_json(config.dump());  // names a bad metric or bound
      if (config.value("stain_shift", 0.0) <= 0) {
        for (const auto& list : {rule.value_thresholds, rule.change_thresholds}) {
          for (const auto& t : list) {
            HISTOCNN_CHECK(t.metric.rfind("restained.", 0) != 0,
                           "Evaluator: '{}' needs the restained evaluation; set stain_shift > 0 (0.1 is strong)",
                           t.metric);
          }
        }
      }
      break;
    }
    case Component::pusher:
      check_keys(c, config, {"model_base_path"});
      check_string(c, config, "model_base_path");
      HISTOCNN_CHECK(config.contains("model_base_path") && !config["model_base_path"].get<std::string>().empty(),
                     "Pusher: model_base_path is required (the serving base path, histocnn serve --model-base-path)");
      break;
  }
}

std::string resolve_runtime_config(Component c, const std::string& config_json, const MetadataStore* store) {
  json config = json::parse(config_json);
  switch (c) {
    case Component::example_gen:
      if (!config.contains("data_fingerprint")) {
        if (config.contains("data_dirs") && !config["data_dirs"].empty()) {
          config["data_fingerprint"] = folder_fingerprint(config["data_dirs"].get<std::vector<std::string>>());
        } else if (config.contains("manifest") && config["manifest"].is_string()) {
          const fs::path m = config["manifest"].get<std::string>();
          HISTOCNN_CHECK_FOUND(fs::exists(m), "ExampleGen: manifest '{}' does not exist", m.string());
          config["data_fingerprint"] = detail::hex16(fnv1a64(io::read_file(m)));
        }
      }
      break;
    case Component::example_validator:
      if (!config.contains("reference")) {
        const std::string file = config.value("reference_statistics", "");
        json reference = nullptr;
        if (!file.empty()) {
          HISTOCNN_CHECK_FOUND(fs::exists(file), "ExampleValidator: reference_statistics '{}' does not exist", file);
          reference = {{"file", file}, {"from", "reference_statistics"}};
        } else if (store && config.value("use_served_reference", true)) {
          // The statistics of the data the served version was trained on, through its lineage.
          const auto live = detail::live_version(config.value("model_base_path", ""));
          if (live) {
            if (auto pushed = store->pushed_model(config.value("model_base_path", ""), live->version)) {
              for (const auto& row : store->lineage_of(pushed->id)) {
                if (row.artifact.type == "ExampleStatistics" && fs::exists(fs::path(row.artifact.uri) / "statistics.json")) {
                  reference = {{"file", (fs::path(row.artifact.uri) / "statistics.json").string()},
                               {"from", fmt::format("served version {}", live->version)}};
                  break;
                }
              }
            }
          }
        }
        config["reference"] = reference;
      }
      break;
    case Component::evaluator:
      if (!config.contains("baseline")) {
        json baseline = nullptr;
        if (config.value("use_baseline", true)) {
          if (const auto live = detail::live_version(config.value("model_base_path", ""))) {
            baseline = {{"version", live->version}, {"dir", live->dir.string()}, {"model_json_hash", live->model_json_hash}};
          }
        }
        config["baseline"] = baseline;
      }
      break;
    default:
      break;
  }
  return config.dump();
}

ComponentCall parse_component_args(const std::vector<std::string>& args) {
  HISTOCNN_CHECK(!args.empty(), "pipeline component: name the component ({})",
                 [] {
                   std::vector<std::string> names;
                   for (auto c : all_components()) names.push_back(component_name(c));
                   return fmt::format("{}", fmt::join(names, ", "));
                 }());
  ComponentCall call;
  call.component = parse_component(args[0]);
  auto pair = [](const std::string& flag, const std::string& text) {
    const auto eq = text.find('=');
    HISTOCNN_CHECK(eq != std::string::npos && eq > 0, "{} '{}' must read NAME=PATH", flag, text);
    return std::make_pair(text.substr(0, eq), fs::path(text.substr(eq + 1)));
  };
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& {
      HISTOCNN_CHECK(i + 1 < args.size(), "pipeline component: {} needs a value", a);
      return args[++i];
    };
    if (a == "--config") {
      call.config_json = value();
    } else if (a == "--input") {
      call.inputs.insert(pair(a, value()));
    } else if (a == "--output") {
      call.outputs.insert(pair(a, value()));
    } else if (a == "--progress") {
      call.progress = true;
    } else {
      HISTOCNN_FAIL("pipeline component {}: unknown argument '{}' (--config JSON, --input NAME=PATH, --output NAME=PATH, "
                    "--progress)", args[0], a);
    }
  }
  return call;
}

ComponentResult run_component(const ComponentCall& call) {
  const auto& sig = signature(call.component);
  const std::string name = component_name(call.component);
  validate_component_config(call.component, call.config_json);
  for (const auto& in : sig.inputs) {
    const fs::path dir = detail::input_dir(call, in.name);
    HISTOCNN_CHECK_FOUND(fs::is_directory(dir), "{}: input '{}' folder '{}' does not exist; run the component that "
                         "writes it first", name, in.name, dir.string());
  }
  for (const auto& [k, v] : call.inputs) {
    HISTOCNN_CHECK(std::any_of(sig.inputs.begin(), sig.inputs.end(), [&](const ArtifactSlot& s) { return s.name == k; }),
                   "{} has no input '{}'", name, k);
  }
  for (const auto& [k, v] : call.outputs) {
    HISTOCNN_CHECK(std::any_of(sig.outputs.begin(), sig.outputs.end(), [&](const ArtifactSlot& s) { return s.name == k; }),
                   "{} has no output '{}'", name, k);
  }
  for (const auto& out : sig.outputs) fs::create_directories(detail::output_dir(call, out.name));
  const json config = json::parse(call.config_json);
  switch (call.component) {
    case Component::example_gen: return detail::run_example_gen(call, config);
    case Component::statistics_gen: return detail::run_statistics_gen(call, config);
    case Component::schema_gen: return detail::run_schema_gen(call, config);
    case Component::example_validator: return detail::run_example_validator(call, config);
    case Component::transform: return detail::run_transform(call, config);
    case Component::trainer: return detail::run_trainer(call, config);
    case Component::evaluator: return detail::run_evaluator(call, config);
    case Component::pusher: return detail::run_pusher(call, config);
  }
  HISTOCNN_FAIL("unknown component");
}

}  // namespace histocnn::pipeline
