// Python bindings of the pipeline module (histocnn.Pipeline's C++ core).
#include "bindings.h"

#include "histocnn/pipeline/components.h"
#include "histocnn/pipeline/kfp.h"
#include "histocnn/pipeline/metadata.h"
#include "histocnn/pipeline/runner.h"
#include "histocnn/pipeline/spec.h"

#include <pybind11/functional.h>
#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace py = pybind11;

namespace histocnn::bindings {

namespace {

py::dict event_dict(const pipeline::ComponentEvent& e) {
  py::dict d;
  d["index"] = e.index;
  d["total"] = e.total;
  d["task"] = e.task;
  d["component"] = e.component;
  d["state"] = e.state;
  d["seconds"] = e.seconds;
  d["summary"] = e.summary;
  d["execution_id"] = e.execution_id;
  d["outputs"] = e.outputs;
  d["line"] = pipeline::format_event(e);  // the progress line `histocnn pipeline run` prints
  return d;
}

py::dict execution_dict(const pipeline::ExecutionRecord& e) {
  py::dict d;
  d["id"] = e.id;
  d["component"] = e.component;
  d["task"] = e.task;
  d["state"] = e.state;
  d["cache_key"] = e.cache_key;
  d["seconds"] = e.seconds();
  d["summary"] = e.summary;
  d["error"] = e.error;
  d["cached_from"] = e.cached_from;
  d["config"] = e.config_json;
  return d;
}

}  // namespace

void init_pipeline(py::module_& root) {
  auto m = root.def_submodule("pipeline", "Components, runs, metadata and Kubeflow export (histocnn.Pipeline wraps these)");

  py::class_<pipeline::PipelineSpec>(m, "PipelineSpec")
      .def_readonly("name", &pipeline::PipelineSpec::name)
      .def_readonly("version", &pipeline::PipelineSpec::version)
      .def_readonly("pipeline_root", &pipeline::PipelineSpec::pipeline_root)
      .def_readonly("metadata", &pipeline::PipelineSpec::metadata)
      .def_readonly("image", &pipeline::PipelineSpec::image)
      .def_readonly("source", &pipeline::PipelineSpec::source)
      .def_property_readonly("components",
                             [](const pipeline::PipelineSpec& s) {
                               std::vector<std::string> names;
                               for (const auto& t : s.tasks) names.push_back(pipeline::component_name(t.component));
                               return names;
                             })
      .def("config", [](const pipeline::PipelineSpec& s, const std::string& component) {
        return s.task(pipeline::parse_component(component)).config_json;
      }, py::arg("component"), "A component's configuration as JSON text.")
      .def("to_json", &pipeline::PipelineSpec::to_json);

  m.def("load_pipeline_spec", &pipeline::load_pipeline_spec, py::arg("path"), py::arg("overrides") = std::vector<std::string>{},
        "Reads pipeline.yaml; overrides are 'Section.key=value' strings.");
  m.def("load_kfp", &pipeline::load_kfp, py::arg("path"), "Reads a compiled Kubeflow PipelineSpec file.");
  m.def("compile_kfp", &pipeline::compile_kfp, py::arg("spec"), "The Kubeflow Pipelines v2 PipelineSpec YAML.");

  m.def(
      "run_pipeline",
      [](const pipeline::PipelineSpec& spec, bool use_cache, bool progress, const std::filesystem::path& pipeline_root,
         const std::filesystem::path& metadata, std::function<void(py::dict)> on_event) {
        pipeline::RunnerOptions o;
        o.use_cache = use_cache;
        o.progress = progress;
        o.pipeline_root = pipeline_root;
        o.metadata = metadata;
        if (on_event) {
          o.on_event = [on_event](const pipeline::ComponentEvent& e) {
            py::gil_scoped_acquire gil;
            on_event(event_dict(e));
          };
        }
        pipeline::PipelineRunResult r;
        {
          py::gil_scoped_release release;
          r = pipeline::run_pipeline(spec, o);
        }
        py::dict d;
        d["run_name"] = r.run_name;
        d["run_id"] = r.run_id;
        d["pipeline_version"] = r.pipeline_version;
        d["state"] = r.state;
        d["blessed"] = r.blessed ? py::object(py::bool_(*r.blessed)) : py::object(py::none());
        d["pushed_version"] = r.pushed_version ? py::object(py::int_(*r.pushed_version)) : py::object(py::none());
        d["model_base_path"] = r.model_base_path.string();
        d["metadata"] = r.metadata.string();
        py::list components;
        for (const auto& e : r.components) components.append(event_dict(e));
        d["components"] = components;
        py::dict artifacts;
        for (const auto& [k, v] : r.artifacts) artifacts[py::str(k)] = v;
        d["artifacts"] = artifacts;
        return d;
      },
      py::arg("spec"), py::arg("use_cache") = true, py::arg("progress") = false,
      py::arg("pipeline_root") = std::filesystem::path(), py::arg("metadata") = std::filesystem::path(),
      py::arg("on_event") = nullptr,
      "Runs the pipeline; on_event(dict) is called as each component starts and ends. Returns a dict.");

  m.def(
      "run_component",
      [](const std::string& component, const std::string& config_json,
         const std::map<std::string, std::filesystem::path>& inputs,
         const std::map<std::string, std::filesystem::path>& outputs, bool progress) {
        pipeline::ComponentCall call;
        call.component = pipeline::parse_component(component);
        call.config_json = config_json;
        call.inputs = inputs;
        call.outputs = outputs;
        call.progress = progress;
        pipeline::ComponentResult r;
        {
          py::gil_scoped_release release;
          r = pipeline::run_component(call);
        }
        return py::make_tuple(r.summary, r.properties);
      },
      py::arg("component"), py::arg("config_json") = "{}", py::arg("inputs") = std::map<std::string, std::filesystem::path>{},
      py::arg("outputs") = std::map<std::string, std::filesystem::path>{}, py::arg("progress") = false,
      "Runs one component; returns (summary, properties by output).");

  py::class_<pipeline::MetadataStore>(m, "MetadataStore")
      .def(py::init<const std::filesystem::path&, int>(), py::arg("path"), py::arg("busy_timeout_ms") = 60000)
      .def("runs",
           [](pipeline::MetadataStore& s, int64_t limit) {
             py::list out;
             for (const auto& r : s.runs(limit)) {
               py::dict d;
               d["id"] = r.id;
               d["name"] = r.name;
               d["pipeline"] = r.pipeline;
               d["pipeline_version"] = r.pipeline_version;
               d["source"] = r.source;
               d["state"] = r.state;
               d["start_time"] = r.start_time;
               d["end_time"] = r.end_time;
               py::list executions;
               for (const auto& e : r.executions) executions.append(execution_dict(e));
               d["executions"] = executions;
               out.append(d);
             }
             return out;
           },
           py::arg("limit") = 0, "Runs, newest first, each with its executions (dicts).")
      .def("lineage",
           [](pipeline::MetadataStore& s, const std::filesystem::path& base_path, int64_t version) {
             py::list out;
             for (const auto& r : s.lineage(base_path, version)) {
               py::dict d;
               d["depth"] = r.depth;
               d["execution_id"] = r.execution_id;
               d["component"] = r.component;
               d["state"] = r.state;
               d["run"] = r.run;
               d["pipeline_version"] = r.pipeline_version;
               d["seconds"] = r.seconds;
               d["artifact_id"] = r.artifact.id;
               d["artifact_type"] = r.artifact.type;
               d["artifact_name"] = r.artifact.name;
               d["uri"] = r.artifact.uri;
               d["properties"] = r.artifact.properties;
               out.append(d);
             }
             return out;
           },
           py::arg("model_base_path"), py::arg("version"),
           "From a served version back to its data: one dict per (execution, artifact written).")
      .def("health", &pipeline::MetadataStore::health)
      .def("cancel_orphans", &pipeline::MetadataStore::cancel_orphans);
}

}  // namespace histocnn::bindings
