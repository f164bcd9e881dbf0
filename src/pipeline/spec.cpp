#include "histocnn/pipeline/spec.h"

#include "histocnn/core/error.h"
#include "histocnn/core/hash.h"
#include "histocnn/core/version.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/pipeline/components.h"
#include "histocnn/train/options.h"

#include "json_yaml.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <regex>

namespace histocnn::pipeline {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::vector<Component>& all_components() {
  static const std::vector<Component> all = {Component::example_gen,       Component::statistics_gen,
                                             Component::schema_gen,        Component::example_validator,
                                             Component::transform,         Component::trainer,
                                             Component::evaluator,         Component::pusher};
  return all;
}

std::string component_name(Component c) {
  switch (c) {
    case Component::example_gen: return "ExampleGen";
    case Component::statistics_gen: return "StatisticsGen";
    case Component::schema_gen: return "SchemaGen";
    case Component::example_validator: return "ExampleValidator";
    case Component::transform: return "Transform";
    case Component::trainer: return "Trainer";
    case Component::evaluator: return "Evaluator";
    case Component::pusher: return "Pusher";
  }
  return "?";
}

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::vector<std::string> component_names() {
  std::vector<std::string> names;
  for (auto c : all_components()) names.push_back(component_name(c));
  return names;
}

}  // namespace

Component parse_component(const std::string& name) {
  for (auto c : all_components()) {
    if (lower(component_name(c)) == lower(name)) return c;
  }
  HISTOCNN_FAIL("unknown pipeline component '{}'; the components are {}", name, fmt::join(component_names(), ", "));
}

const Task& PipelineSpec::task(Component c) const {
  for (const auto& t : tasks) {
    if (t.component == c) return t;
  }
  HISTOCNN_FAIL("pipeline '{}' has no {} task", name, component_name(c));
}

namespace {

json task_json(const Task& t) {
  json inputs = json::array();
  for (const auto& in : t.inputs) inputs.push_back({{"name", in.name}, {"producer", in.producer}, {"output", in.output}});
  json j = {{"name", t.name},
            {"component", component_name(t.component)},
            {"config", json::parse(t.config_json)},
            {"inputs", inputs}};
  if (!t.command.empty()) j["command"] = t.command;
  return j;
}

}  // namespace

std::string PipelineSpec::to_json() const {
  json tasks_json = json::array();
  for (const auto& t : tasks) tasks_json.push_back(task_json(t));
  return json{{"name", name},
              {"version", version},
              {"pipeline_root", pipeline_root.string()},
              {"metadata", metadata.string()},
              {"image", image},
              {"source", source},
              {"tasks", tasks_json}}
      .dump(2);
}

std::string pipeline_version(const std::string& name, const std::vector<Task>& tasks) {
  // What the tasks do, not how a compiled file spells their commands.
  json j = json::array();
  for (const auto& t : tasks) {
    auto tj = task_json(t);
    tj.erase("command");
    j.push_back(tj);
  }
  return fmt::format("{}_{:012x}", name, fnv1a64(j.dump()) & 0xffffffffffffULL);
}

namespace {

const std::vector<std::string> kTopLevelKeys = {"name", "description", "pipeline_root", "metadata", "image"};

std::string absolute(const std::string& p) {
  if (p.empty()) return p;
  return fs::absolute(p).lexically_normal().string();
}

// Sets doc[a][b]... = value for an override "a.b=value".
void apply_override(json& doc, const std::string& text, const std::string& source) {
  const auto eq = text.find('=');
  HISTOCNN_CHECK(eq != std::string::npos && eq > 0,
                 "override '{}' must read KEY=VALUE, e.g. Trainer.epochs=1 or ExampleGen.data_dirs=[data/idc]", text);
  const std::string key = text.substr(0, eq);
  const json value = detail::parse_yaml(text.substr(eq + 1), fmt::format("the value of override '{}'", text));
  json* node = &doc;
  size_t start = 0;
  while (true) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    HISTOCNN_CHECK(!part.empty(), "override '{}' has an empty key part", text);
    if (dot == std::string::npos) {
      (*node)[part] = value;
      break;
    }
    if (!node->contains(part) || (*node)[part].is_null()) (*node)[part] = json::object();
    HISTOCNN_CHECK((*node)[part].is_object(), "override '{}': '{}' in {} is not a mapping", text, part, source);
    node = &(*node)[part];
    start = dot + 1;
  }
}

std::string string_value(const json& j, const std::string& key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return "";
  HISTOCNN_CHECK(j[key].is_string(), "{}: '{}' must be a string, got {}", where, key, j[key].dump());
  return j[key].get<std::string>();
}

// The run options a Trainer section sets, checked by the options table.
train::RunOptions trainer_options(const json& section, const std::string& where) {
  train::RunOptions o;
  for (const auto& [key, value] : section.items()) {
    try {
      train::set_run_option(o, key, value.dump());
    } catch (const std::invalid_argument& e) {
      HISTOCNN_FAIL("{}: {}", where, e.what());
    }
  }
  return o;
}

}  // namespace

PipelineSpec parse_pipeline_spec(const std::string& yaml_text, const std::string& source,
                                 const std::vector<std::string>& overrides) {
  json doc = detail::parse_yaml(yaml_text, source);
  if (doc.is_null()) doc = json::object();
  HISTOCNN_CHECK(doc.is_object(), "'{}' must be a YAML mapping (name:, pipeline_root:, ExampleGen:, ...)", source);
  for (const auto& o : overrides) apply_override(doc, o, source);

  // Every top-level key is a setting or a component's section.
  for (const auto& [key, value] : doc.items()) {
    if (std::count(kTopLevelKeys.begin(), kTopLevelKeys.end(), key)) continue;
    bool is_component = false;
    for (auto c : all_components()) is_component = is_component || component_name(c) == key;
    HISTOCNN_CHECK(is_component, "{}: unknown key '{}'; the keys are {} and the component sections {}", source, key,
                   fmt::join(kTopLevelKeys, ", "), fmt::join(component_names(), ", "));
    HISTOCNN_CHECK(value.is_object() || value.is_null(), "{}: section '{}' must be a mapping of options", source,
                   key);
  }
  // A key set to null is unset (so an override can remove one: --set ExampleGen.synthetic=null).
  auto section = [&](Component c) {
    const auto name = component_name(c);
    json s = doc.contains(name) && doc[name].is_object() ? doc[name] : json::object();
    for (auto it = s.begin(); it != s.end();) it = it->is_null() ? s.erase(it) : std::next(it);
    return s;
  };

  PipelineSpec spec;
  spec.source = source;
  spec.name = string_value(doc, "name", source);
  if (spec.name.empty()) spec.name = fs::path(source).stem().string();
  static const std::regex name_pattern("[A-Za-z0-9][A-Za-z0-9_.-]*");
  HISTOCNN_CHECK(std::regex_match(spec.name, name_pattern),
                 "{}: name '{}' must start with a letter or digit and hold only letters, digits, '-', '_' and '.'",
                 source, spec.name);
  const std::string root = string_value(doc, "pipeline_root", source);
  spec.pipeline_root = absolute(root.empty() ? "pipeline-root" : root);
  const std::string metadata = string_value(doc, "metadata", source);
  spec.metadata = metadata.empty() ? spec.pipeline_root / "metadata.sqlite" : fs::path(absolute(metadata));
  spec.image = string_value(doc, "image", source);
  if (spec.image.empty()) spec.image = fmt::format("histocnn:{}", version());

  const std::string where_trainer = fmt::format("{}: Trainer", source);
  json trainer = section(Component::trainer);
  for (const char* owned : {"data_dir", "manifest", "output_dir", "name", "checkpoint_dir", "wait_for_lock",
                            "balance_per_class", "train_fraction", "val_fraction", "test_fraction", "split_by_patch"}) {
    HISTOCNN_CHECK(!trainer.contains(owned),
                   "{}: '{}' is set by the pipeline (data, splits and balancing belong to ExampleGen: data_dirs, "
                   "manifest, split, balance_per_class; folders to pipeline_root); remove it from Trainer",
                   where_trainer, owned);
  }
  for (const char* key : {"weights", "stain_reference"}) {
    // A file named relative to here; "imagenet" and other weight names stay as they are.
    if (trainer.contains(key) && trainer[key].is_string()) {
      const std::string file = trainer[key].get<std::string>();
      if (!file.empty() && fs::exists(file)) trainer[key] = absolute(file);
    }
  }
  const train::RunOptions run = trainer_options(trainer, where_trainer);
  {
    train::RunOptions check = run;
    check.manifest = "examples/manifest.csv";  // ExampleGen's; every other option is checked now
    try {
      check.validate();
    } catch (const std::invalid_argument& e) {
      HISTOCNN_FAIL("{}: {}", where_trainer, e.what());
    }
  }

  json pusher = section(Component::pusher);
  const std::string base_path = string_value(pusher, "model_base_path", fmt::format("{}: Pusher", source));
  HISTOCNN_CHECK(!base_path.empty(),
                 "{}: Pusher.model_base_path is required: the serving base path that blessed models are pushed to "
                 "(histocnn serve --model-base-path)", source);
  pusher["model_base_path"] = absolute(base_path);

  json example_gen = section(Component::example_gen);
  if (example_gen.contains("data_dir")) {
    HISTOCNN_CHECK(!example_gen.contains("data_dirs"), "{}: ExampleGen: give data_dir or data_dirs, not both", source);
    example_gen["data_dirs"] = json::array({example_gen["data_dir"]});
    example_gen.erase("data_dir");
  }
  if (example_gen.contains("data_dirs")) {
    HISTOCNN_CHECK(example_gen["data_dirs"].is_array(), "{}: ExampleGen.data_dirs must be a list of folders", source);
    for (auto& d : example_gen["data_dirs"]) {
      HISTOCNN_CHECK(d.is_string(), "{}: ExampleGen.data_dirs must hold folder names, got {}", source, d.dump());
      d = absolute(d.get<std::string>());
    }
  }
  if (example_gen.contains("manifest") && example_gen["manifest"].is_string()) {
    example_gen["manifest"] = absolute(example_gen["manifest"].get<std::string>());
  }

  json schema_gen = section(Component::schema_gen);
  if (schema_gen.contains("schema_file") && schema_gen["schema_file"].is_string()) {
    schema_gen["schema_file"] = absolute(schema_gen["schema_file"].get<std::string>());
  }
  json validator = section(Component::example_validator);
  if (validator.contains("reference_statistics") && validator["reference_statistics"].is_string()) {
    validator["reference_statistics"] = absolute(validator["reference_statistics"].get<std::string>());
  }
  validator["model_base_path"] = pusher["model_base_path"];

  // Transform fits the preprocessing the Trainer will use: it reads the Trainer's input options.
  json transform = section(Component::transform);
  const auto option_names = train::run_option_names();
  for (const auto& key : preprocessing_option_names()) {
    HISTOCNN_CHECK(!transform.contains(key), "{}: Transform.{} is the Trainer's option; set Trainer.{}", source, key,
                   key);
    if (std::count(option_names.begin(), option_names.end(), key)) {
      transform[key] = json::parse(train::get_run_option(run, key));
    }
  }

  json evaluator = section(Component::evaluator);
  if (!evaluator.contains("stain_shift")) evaluator["stain_shift"] = run.stain_shift;
  if (!evaluator.contains("seed")) evaluator["seed"] = run.trainer.seed;
  evaluator["model_base_path"] = pusher["model_base_path"];

  std::map<Component, json> configs = {
      {Component::example_gen, example_gen},   {Component::statistics_gen, section(Component::statistics_gen)},
      {Component::schema_gen, schema_gen},     {Component::example_validator, validator},
      {Component::transform, transform},       {Component::trainer, trainer},
      {Component::evaluator, evaluator},       {Component::pusher, pusher}};

  std::map<std::string, std::string> producer_of;  // output name -> task name
  for (auto c : all_components()) {
    Task t;
    t.component = c;
    t.name = lower(component_name(c));
    t.config_json = configs[c].dump();
    try {
      validate_component_config(c, t.config_json);
    } catch (const std::invalid_argument& e) {
      HISTOCNN_FAIL("{}: {}", source, e.what());
    }
    for (const auto& in : signature(c).inputs) {
      t.inputs.push_back({in.name, producer_of.at(in.name), in.name});
    }
    for (const auto& out : signature(c).outputs) producer_of[out.name] = t.name;
    spec.tasks.push_back(std::move(t));
  }
  spec.version = pipeline_version(spec.name, spec.tasks);
  return spec;
}

PipelineSpec load_pipeline_spec(const fs::path& yaml, const std::vector<std::string>& overrides) {
  HISTOCNN_CHECK_FOUND(fs::exists(yaml), "pipeline file '{}' does not exist; examples/pipeline.yaml is one to start from",
                       yaml.string());
  return parse_pipeline_spec(io::read_file(yaml), yaml.string(), overrides);
}

}  // namespace histocnn::pipeline
