#include "histocnn/pipeline/runner.h"

#include "histocnn/core/error.h"
#include "histocnn/core/hash.h"
#include "histocnn/core/log.h"
#include "histocnn/core/version.h"
#include "histocnn/io/folder_lock.h"
#include "histocnn/pipeline/components.h"
#include "histocnn/pipeline/kfp.h"
#include "histocnn/pipeline/metadata.h"

#include <nlohmann/json.hpp>

#include <chrono>

namespace histocnn::pipeline {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string hex16(uint64_t v) { return fmt::format("{:016x}", v); }

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A task from a compiled file: its container command with the placeholders resolved, run the way
// the container would run it (in this process when it is histocnn's own component command).
ComponentResult run_command(const Task& task, const std::string& config, const std::string& version,
                            const std::map<std::string, ArtifactRecord>& inputs,
                            const std::map<std::string, fs::path>& outputs, bool progress) {
  std::map<std::string, std::string> parameters = {{"config", config}, {"pipeline_version", version}};
  std::map<std::string, std::string> in, out;
  for (const auto& [name, a] : inputs) in[name] = a.uri;
  for (const auto& [name, p] : outputs) out[name] = p.string();
  std::vector<std::string> argv;
  for (const auto& part : task.command) argv.push_back(resolve_placeholders(part, parameters, in, out));
  HISTOCNN_CHECK(argv.size() >= 4 && fs::path(argv[0]).filename() == "histocnn" && argv[1] == "pipeline" &&
                     argv[2] == "component",
                 "task '{}' runs '{}': the local runner executes only `histocnn pipeline component ...` commands",
                 task.name, argv.empty() ? std::string() : argv[0]);
  ComponentCall call = parse_component_args(std::vector<std::string>(argv.begin() + 3, argv.end()));
  HISTOCNN_CHECK(call.component == task.component, "task '{}' is a {} but its command runs {}", task.name,
                 component_name(task.component), component_name(call.component));
  call.progress = call.progress || progress;
  return run_component(call);
}

}  // namespace

PipelineRunResult run_pipeline(const PipelineSpec& spec_in, const RunnerOptions& options) {
  PipelineSpec spec = spec_in;
  if (!options.pipeline_root.empty()) {
    spec.pipeline_root = fs::absolute(options.pipeline_root).lexically_normal();
    if (options.metadata.empty() && spec_in.metadata == spec_in.pipeline_root / "metadata.sqlite") {
      spec.metadata = spec.pipeline_root / "metadata.sqlite";
    }
  }
  if (!options.metadata.empty()) spec.metadata = fs::absolute(options.metadata).lexically_normal();
  fs::create_directories(spec.pipeline_root);
  MetadataStore store(spec.metadata);
  if (const auto n = store.cancel_orphans()) {
    log_info("{} executions of ended processes are marked CANCELED", n);
  }

  PipelineRunResult result;
  result.pipeline_version = spec.version;
  result.metadata = spec.metadata;
  result.run_id = store.begin_run(spec.name, spec.version, spec.source);
  result.run_name = store.run(result.run_id).name;
  const int total = static_cast<int>(spec.tasks.size());
  std::map<std::string, std::map<std::string, ArtifactRecord>> produced;  // task -> output -> artifact

  auto emit = [&](ComponentEvent e) {
    if (options.on_event) options.on_event(e);
    if (e.state != "RUNNING") result.components.push_back(std::move(e));
  };

  for (int index = 0; index < total; ++index) {
    const Task& task = spec.tasks[index];
    const auto& sig = signature(task.component);
    const std::string component = component_name(task.component);
    ComponentEvent event;
    event.index = index + 1;
    event.total = total;
    event.task = task.name;
    event.component = component;
    const auto t0 = std::chrono::steady_clock::now();
    int64_t execution = 0;
    try {
      std::map<std::string, ArtifactRecord> inputs;
      for (const auto& in : task.inputs) {
        auto p = produced.find(in.producer);
        HISTOCNN_CHECK(p != produced.end() && p->second.count(in.output),
                       "task '{}' reads '{}' of task '{}', which has not run before it", task.name, in.output,
                       in.producer);
        inputs[in.name] = p->second.at(in.output);
      }
      const std::string config = resolve_runtime_config(task.component, task.config_json, &store);
      // The cache key: what the component is, how it is configured, and which artifacts it reads.
      json key_json = {{"component", component}, {"library", version()}, {"config", json::parse(config)}};
      for (const auto& slot : sig.inputs) {
        if (!slot.gate && inputs.count(slot.name)) key_json["inputs"][slot.name] = inputs.at(slot.name).fingerprint;
      }
      const std::string key = hex16(fnv1a64(key_json.dump()));
      std::map<std::string, int64_t> input_ids;
      for (const auto& [name, a] : inputs) input_ids[name] = a.id;

      event.state = "RUNNING";
      emit(event);
      // One process at a time on a key: a second pipeline doing the same work waits and reuses it.
      const io::FolderLock lock(spec.pipeline_root / ".locks" / (component + "-" + key), "pipeline task", true);
      if (options.use_cache) {
        if (auto hit = store.find_cached(component, key)) {
          execution = store.cached_execution(result.run_id, component, task.name, key, config, input_ids, *hit);
          produced[task.name] = hit->outputs;
          event.state = "CACHED";
          event.execution_id = execution;
          event.seconds = seconds_since(t0);
          event.summary = hit->execution.summary;
          for (const auto& [name, a] : hit->outputs) event.outputs.push_back(name + "=" + a.uri);
          emit(event);
          continue;
        }
      }
      execution = store.start_execution(result.run_id, component, task.name, key, config, input_ids);
      // The same key, the same folder: a rerun after a crash continues there (the Trainer resumes
      // from its checkpoint). Without the cache a fresh folder keeps earlier results intact.
      const fs::path folder = spec.pipeline_root / component / (options.use_cache ? key : fmt::format("{}-{}", key, execution));
      std::map<std::string, fs::path> outputs;
      for (const auto& slot : sig.outputs) outputs[slot.name] = folder / slot.name;
      ComponentResult r;
      if (task.command.empty()) {
        ComponentCall call;
        call.component = task.component;
        call.config_json = config;
        for (const auto& [name, a] : inputs) call.inputs[name] = a.uri;
        call.outputs = outputs;
        call.progress = options.progress;
        r = run_component(call);
      } else {
        r = run_command(task, config, spec.version, inputs, outputs, options.progress);
      }
      std::vector<ArtifactRecord> artifacts;
      for (const auto& slot : sig.outputs) {
        ArtifactRecord a;
        a.type = slot.type;
        a.uri = outputs.at(slot.name).string();
        a.name = slot.name;
        a.fingerprint = hex16(fnv1a64(key + "/" + slot.name));
        if (r.properties.count(slot.name)) a.properties = r.properties.at(slot.name);
        artifacts.push_back(a);
      }
      const auto ids = store.complete_execution(execution, artifacts, r.summary);
      for (auto& a : artifacts) {
        a.id = ids.at(a.name);
        event.outputs.push_back(a.name + "=" + a.uri);
        produced[task.name][a.name] = a;
      }
      event.state = "COMPLETE";
      event.execution_id = execution;
      event.seconds = seconds_since(t0);
      event.summary = r.summary;
      emit(event);
    } catch (const std::exception& e) {
      if (execution) store.fail_execution(execution, e.what());
      store.end_run(result.run_id, "FAILED");
      event.state = "FAILED";
      event.execution_id = execution;
      event.seconds = seconds_since(t0);
      event.summary = e.what();
      emit(event);
      throw;
    }
  }
  store.end_run(result.run_id, "COMPLETE");
  result.state = "COMPLETE";
  for (const auto& task : spec.tasks) {
    const auto& outs = produced[task.name];
    for (const auto& [name, a] : outs) result.artifacts.emplace_back(component_name(task.component) + "." + name, a.uri);
    if (task.component == Component::evaluator && outs.count("blessing")) {
      const auto& p = outs.at("blessing").properties;
      if (p.count("blessed")) result.blessed = p.at("blessed") == "1";
    }
    if (task.component == Component::pusher && outs.count("pushed_model")) {
      const auto& p = outs.at("pushed_model").properties;
      if (p.count("version")) result.pushed_version = std::stoll(p.at("version"));
      result.model_base_path = json::parse(task.config_json).value("model_base_path", "");
    }
  }
  return result;
}

std::string format_event(const ComponentEvent& e) {
  if (e.state == "RUNNING") return fmt::format("[{}/{}] {} ...", e.index, e.total, e.component);
  const auto summary = e.state == "FAILED" ? e.summary.substr(0, e.summary.find('\n')) : e.summary;
  return fmt::format("[{}/{}] {:<17} {:<9} {:7.1f}s  {}", e.index, e.total, e.component, e.state, e.seconds, summary);
}

}  // namespace histocnn::pipeline
