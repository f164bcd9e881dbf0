#include "histocnn/pipeline/kfp.h"

#include "histocnn/core/error.h"
#include "histocnn/core/version.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/pipeline/components.h"

#include "json_yaml.h"

#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <regex>
#include <set>

namespace histocnn::pipeline {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kSchemaVersion = "2.1.0";
constexpr const char* kArtifactSchemaVersion = "0.0.1";

// Kubeflow's names: lower case letters, digits and '-'.
std::string kfp_name(const std::string& name) {
  std::string s;
  for (char c : name) s += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '-';
  return s;
}

json artifact_type(const std::string& schema_title) {
  return {{"schemaTitle", schema_title}, {"schemaVersion", kArtifactSchemaVersion}};
}

}  // namespace

std::string compile_kfp(const PipelineSpec& spec) {
  json components = json::object(), executors = json::object(), tasks = json::object();
  for (const auto& task : spec.tasks) {
    const auto& sig = signature(task.component);
    const std::string comp = "comp-" + task.name, exec = "exec-" + task.name;
    json c = {{"executorLabel", exec}};
    c["inputDefinitions"]["parameters"] = {
        {"config", {{"parameterType", "STRING"}, {"description", "the component's configuration (JSON)"}}},
        {"pipeline_version", {{"parameterType", "STRING"}}}};
    std::vector<std::string> args = {"pipeline", "component", component_name(task.component), "--config",
                                     "{{$.inputs.parameters['config']}}"};
    for (const auto& in : sig.inputs) {
      c["inputDefinitions"]["artifacts"][in.name] = {{"artifactType", artifact_type(in.kfp_schema_title)}};
      args.push_back("--input");
      args.push_back(fmt::format("{}={{{{$.inputs.artifacts['{}'].path}}}}", in.name, in.name));
    }
    for (const auto& out : sig.outputs) {
      c["outputDefinitions"]["artifacts"][out.name] = {{"artifactType", artifact_type(out.kfp_schema_title)}};
      args.push_back("--output");
      args.push_back(fmt::format("{}={{{{$.outputs.artifacts['{}'].path}}}}", out.name, out.name));
    }
    components[comp] = c;
    executors[exec] = {{"container", {{"image", spec.image}, {"command", {"histocnn"}}, {"args", args}}}};

    json t = {{"cachingOptions", {{"enableCache", true}}},
              {"componentRef", {{"name", comp}}},
              {"taskInfo", {{"name", task.name}}}};
    t["inputs"]["parameters"] = {{"config", {{"runtimeValue", {{"constant", task.config_json}}}}},
                                 {"pipeline_version", {{"componentInputParameter", "pipeline_version"}}}};
    std::set<std::string> dependencies;
    for (const auto& in : task.inputs) {
      t["inputs"]["artifacts"][in.name] = {
          {"taskOutputArtifact", {{"outputArtifactKey", in.output}, {"producerTask", in.producer}}}};
      dependencies.insert(in.producer);
    }
    if (!dependencies.empty()) t["dependentTasks"] = std::vector<std::string>(dependencies.begin(), dependencies.end());
    tasks[task.name] = t;
  }
  json ir = {
      {"components", components},
      {"deploymentSpec", {{"executors", executors}}},
      {"pipelineInfo",
       {{"name", kfp_name(spec.name)},
        {"displayName", spec.name},
        {"description", fmt::format("histocnn pipeline {} (version {})", spec.name, spec.version)}}},
      {"root",
       {{"dag", {{"tasks", tasks}}},
        {"inputDefinitions",
         {{"parameters", {{"pipeline_version", {{"parameterType", "STRING"}, {"defaultValue", spec.version}}}}}}}}},
      {"defaultPipelineRoot", spec.pipeline_root.string()},
      {"schemaVersion", kSchemaVersion},
      {"sdkVersion", fmt::format("histocnn-{}", version())}};
  return fmt::format("# PIPELINE DEFINITION\n# Name: {}\n# Version: {}\n# Inputs:\n#    pipeline_version: str [Default: '{}']\n{}",
                     kfp_name(spec.name), spec.version, spec.version, detail::json_to_yaml(ir));
}

PyTorchJobOptions trainer_pytorchjob(const PipelineSpec& spec, int workers, const std::string& volume_claim) {
  PyTorchJobOptions job;
  job.name = kfp_name(spec.name) + "-trainer";
  if (job.name.size() > 63) job.name = job.name.substr(job.name.size() - 63);
  job.image = spec.image;
  job.workers = workers;
  job.volume_claim = volume_claim;
  const std::string dir = job.mount_path + "/" + job.name;
  job.command = {"histocnn", "pipeline", "component", "Trainer", "--config", spec.task(Component::trainer).config_json,
                 "--input", "examples=" + dir + "/examples", "--input", "transform_graph=" + dir + "/transform_graph",
                 "--output", "model=" + dir + "/model"};
  return job;
}

std::string resolve_placeholders(const std::string& text, const std::map<std::string, std::string>& parameters,
                                 const std::map<std::string, std::string>& input_artifacts,
                                 const std::map<std::string, std::string>& output_artifacts) {
  static const std::regex placeholder(R"(\{\{\$\.(inputs|outputs)\.(parameters|artifacts)\['([^']+)'\](\.(path|uri))?\}\})");
  std::string out;
  auto begin = std::sregex_iterator(text.begin(), text.end(), placeholder);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const auto& m = *it;
    out += text.substr(last, m.position() - last);
    const std::string side = m[1], kind = m[2], name = m[3], field = m[5];
    const std::map<std::string, std::string>* source = nullptr;
    if (side == "inputs" && kind == "parameters" && field.empty()) source = &parameters;
    if (side == "inputs" && kind == "artifacts" && !field.empty()) source = &input_artifacts;
    if (side == "outputs" && kind == "artifacts" && !field.empty()) source = &output_artifacts;
    HISTOCNN_CHECK(source != nullptr, "placeholder '{}' is not one this runner resolves (input parameters, and the "
                   ".path or .uri of input and output artifacts)", m.str());
    auto found = source->find(name);
    HISTOCNN_CHECK(found != source->end(), "placeholder '{}' names '{}', which the task does not have", m.str(), name);
    out += found->second;
    last = m.position() + m.length();
  }
  out += text.substr(last);
  HISTOCNN_CHECK(out.find("{{$") == std::string::npos,
                 "'{}' holds a placeholder that is not one this runner resolves (input parameters, and the .path or "
                 ".uri of input and output artifacts)", text);
  return out;
}

namespace {

const json& field(const json& j, const std::string& key, const std::string& where) {
  HISTOCNN_CHECK(j.is_object() && j.contains(key), "{}: missing '{}'", where, key);
  return j[key];
}

std::string as_string(const json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); }

}  // namespace

PipelineSpec parse_kfp(const std::string& yaml_text, const std::string& source) {
  const json ir = detail::parse_yaml(yaml_text, source);
  HISTOCNN_CHECK(ir.is_object(), "'{}' is not a Kubeflow PipelineSpec (a YAML mapping)", source);
  const std::string schema = as_string(field(ir, "schemaVersion", source));
  HISTOCNN_CHECK(schema.rfind("2.", 0) == 0, "{}: schemaVersion {} is not a Kubeflow Pipelines v2 spec (2.x)", source,
                 schema);
  PipelineSpec spec;
  spec.source = source;
  const auto& info = field(ir, "pipelineInfo", source);
  spec.name = info.contains("displayName") ? as_string(info["displayName"]) : as_string(field(info, "name", source + ": pipelineInfo"));
  spec.pipeline_root = ir.contains("defaultPipelineRoot") ? fs::path(as_string(ir["defaultPipelineRoot"]))
                                                          : fs::absolute("pipeline-root").lexically_normal();
  spec.metadata = spec.pipeline_root / "metadata.sqlite";
  const auto& root = field(ir, "root", source);
  const auto& dag_tasks = field(field(root, "dag", source + ": root"), "tasks", source + ": root.dag");
  const auto& components = field(ir, "components", source);
  const auto& executors = field(field(ir, "deploymentSpec", source), "executors", source + ": deploymentSpec");

  std::map<std::string, Task> by_name;
  std::map<std::string, std::set<std::string>> depends;
  for (const auto& [name, t] : dag_tasks.items()) {
    const std::string where = fmt::format("{}: root.dag.tasks.{}", source, name);
    const std::string comp = as_string(field(field(t, "componentRef", where), "name", where + ".componentRef"));
    const auto& c = field(components, comp, source + ": components");
    const std::string exec = as_string(field(c, "executorLabel", source + ": components." + comp));
    const auto& container = field(field(executors, exec, source + ": deploymentSpec.executors"), "container",
                                  source + ": deploymentSpec.executors." + exec);
    Task task;
    task.name = name;
    for (const char* part : {"command", "args"}) {
      if (container.contains(part)) {
        for (const auto& a : container[part]) task.command.push_back(as_string(a));
      }
    }
    if (spec.image.empty() && container.contains("image")) spec.image = as_string(container["image"]);
    const auto at = std::find(task.command.begin(), task.command.end(), "component");
    HISTOCNN_CHECK(at != task.command.end() && at + 1 != task.command.end(),
                   "{}: the executor '{}' does not run `histocnn pipeline component NAME`", where, exec);
    task.component = parse_component(*(at + 1));
    const json inputs = t.value("inputs", json::object());
    const json params = inputs.value("parameters", json::object());
    HISTOCNN_CHECK(params.contains("config") && params["config"].contains("runtimeValue"),
                   "{}: inputs.parameters.config.runtimeValue.constant (the component's configuration) is missing", where);
    task.config_json = as_string(field(params["config"]["runtimeValue"], "constant", where));
    try {
      validate_component_config(task.component, task.config_json);
    } catch (const std::invalid_argument& e) {
      HISTOCNN_FAIL("{}: {}", where, e.what());
    }
    const json artifacts = inputs.value("artifacts", json::object());
    for (const auto& [in, spec_in] : artifacts.items()) {
      const auto& producer = field(spec_in, "taskOutputArtifact", where + ".inputs.artifacts." + in);
      task.inputs.push_back({in, as_string(field(producer, "producerTask", where)),
                             as_string(field(producer, "outputArtifactKey", where))});
      depends[name].insert(task.inputs.back().producer);
    }
    // In the component's signature order (a YAML mapping has none).
    const auto& slots = signature(task.component).inputs;
    auto rank = [&](const TaskInput& in) {
      for (size_t i = 0; i < slots.size(); ++i) {
        if (slots[i].name == in.name) return i;
      }
      HISTOCNN_FAIL("{}: {} has no input '{}'", where, component_name(task.component), in.name);
    };
    std::stable_sort(task.inputs.begin(), task.inputs.end(),
                     [&](const TaskInput& a, const TaskInput& b) { return rank(a) < rank(b); });
    for (const auto& d : t.value("dependentTasks", json::array())) depends[name].insert(as_string(d));
    by_name[name] = std::move(task);
  }
  for (const auto& [name, deps] : depends) {
    for (const auto& d : deps) {
      HISTOCNN_CHECK(by_name.count(d), "{}: task '{}' depends on '{}', which is not a task", source, name, d);
    }
  }
  // Dependency order (Kahn); among ready tasks the pipeline's component order, then the name.
  std::set<std::string> done;
  while (done.size() < by_name.size()) {
    const Task* next = nullptr;
    for (const auto& [name, task] : by_name) {
      if (done.count(name)) continue;
      bool ready = true;
      for (const auto& d : depends[name]) ready = ready && done.count(d);
      if (ready && (!next || task.component < next->component)) next = &task;
    }
    HISTOCNN_CHECK(next != nullptr, "{}: the tasks' dependencies form a cycle", source);
    spec.tasks.push_back(*next);
    done.insert(next->name);
  }
  const json& versions = root.value("inputDefinitions", json::object()).value("parameters", json::object());
  spec.version = versions.contains("pipeline_version") && versions["pipeline_version"].contains("defaultValue")
                     ? as_string(versions["pipeline_version"]["defaultValue"])
                     : pipeline_version(spec.name, spec.tasks);
  if (spec.image.empty()) spec.image = fmt::format("histocnn:{}", version());
  return spec;
}

PipelineSpec load_kfp(const fs::path& file) {
  HISTOCNN_CHECK_FOUND(fs::exists(file), "compiled pipeline '{}' does not exist; write one with histocnn pipeline compile",
                       file.string());
  return parse_kfp(io::read_file(file), file.string());
}

}  // namespace histocnn::pipeline
