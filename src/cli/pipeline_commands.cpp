// `histocnn pipeline`: run, compile for Kubeflow, run one component (what a Kubeflow step runs),
// list runs, and walk the lineage of a served version.
#include "commands.h"

#include "histocnn/core/error.h"
#include "histocnn/core/progress.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/pipeline/components.h"
#include "histocnn/pipeline/kfp.h"
#include "histocnn/pipeline/metadata.h"
#include "histocnn/pipeline/runner.h"
#include "histocnn/pipeline/spec.h"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

namespace histocnn::cli {

namespace {

namespace fs = std::filesystem;
using namespace histocnn::pipeline;

// A component's start goes to stderr, its end (the run's record) to stdout.
void print_event(const ComponentEvent& e) {
  std::fprintf(e.state == "RUNNING" ? stderr : stdout, "%s\n", format_event(e).c_str());
  std::fflush(stdout);
}

fs::path store_path(const fs::path& metadata, const fs::path& pipeline_file) {
  if (!metadata.empty()) return metadata;
  if (!pipeline_file.empty()) return load_pipeline_spec(pipeline_file).metadata;
  return fs::path("pipeline-root") / "metadata.sqlite";
}

}  // namespace

void add_pipeline_commands(CLI::App& app) {
  auto* group = app.add_subcommand("pipeline", "Validated data to a blessed, pushed model: run, compile for Kubeflow, "
                                               "list runs, lineage");
  group->require_subcommand(1);

  struct Run {
    fs::path file, root, metadata;
    bool no_cache = false, ir = false;
    std::vector<std::string> overrides;
  };
  auto r = std::make_shared<Run>();
  auto* run = group->add_subcommand("run", "Run a pipeline.yaml (or, with --ir, a compiled Kubeflow file) locally");
  run->add_option("file", r->file, "pipeline.yaml, or the compiled pipeline with --ir")->required();
  run->add_flag("--no-cache", r->no_cache, "Run every component again, into fresh folders");
  run->add_flag("--ir", r->ir, "FILE is a compiled Kubeflow PipelineSpec (histocnn pipeline compile): run that file");
  run->add_option("--set", r->overrides, "Override a key of pipeline.yaml: Section.key=value (YAML value), repeatable");
  run->add_option("--pipeline-root", r->root, "Artifacts folder (default: the file's pipeline_root)");
  run->add_option("--metadata", r->metadata, "SQLite metadata store (default: the file's, or <pipeline_root>/metadata.sqlite)");
  run->callback([r] {
    HISTOCNN_CHECK(!r->ir || r->overrides.empty(), "--set changes a pipeline.yaml; a compiled file runs as compiled");
    const PipelineSpec spec = r->ir ? load_kfp(r->file) : load_pipeline_spec(r->file, r->overrides);
    RunnerOptions o;
    o.use_cache = !r->no_cache;
    o.progress = progress_enabled_by_default();
    o.pipeline_root = r->root;
    o.metadata = r->metadata;
    o.on_event = print_event;
    std::printf("pipeline %s (%zu components), artifacts in %s\n", spec.version.c_str(), spec.tasks.size(),
                (r->root.empty() ? spec.pipeline_root : r->root).string().c_str());
    const auto result = run_pipeline(spec, o);
    std::printf("run %s %s", result.run_name.c_str(), result.state.c_str());
    if (result.blessed) std::printf(": %s", *result.blessed ? "BLESSED" : "NOT_BLESSED");
    if (result.pushed_version) {
      std::printf(", version %lld of %s serves this model\n", static_cast<long long>(*result.pushed_version),
                  result.model_base_path.string().c_str());
    } else {
      std::printf(", nothing pushed\n");
    }
    std::printf("metadata: %s\n", result.metadata.string().c_str());
  });

  struct Compile {
    fs::path file, out, pytorchjob;
    std::string image, claim = "histocnn-workspace";
    int workers = 1;
    std::vector<std::string> overrides;
  };
  auto c = std::make_shared<Compile>();
  auto* compile = group->add_subcommand("compile", "Compile a pipeline.yaml to a Kubeflow Pipelines v2 PipelineSpec");
  compile->add_option("file", c->file, "pipeline.yaml")->required();
  compile->add_option("-o,--output", c->out, "The compiled file to write (e.g. pipeline.kfp.yaml)")->required();
  compile->add_option("--image", c->image, "Container image of every step (default: the file's image, else histocnn:<version>)");
  compile->add_option("--set", c->overrides, "Override a key of pipeline.yaml: Section.key=value, repeatable");
  compile->add_option("--pytorchjob", c->pytorchjob,
                      "Also write a Kubeflow PyTorchJob manifest that runs the Trainer step data-parallel");
  compile->add_option("--workers", c->workers, "PyTorchJob Worker replicas (the Master is one more)")->capture_default_str();
  compile->add_option("--volume-claim", c->claim, "PyTorchJob: the PersistentVolumeClaim holding the Trainer's artifacts")
      ->capture_default_str();
  compile->callback([c] {
    auto overrides = c->overrides;
    if (!c->image.empty()) overrides.push_back("image=" + c->image);
    const PipelineSpec spec = load_pipeline_spec(c->file, overrides);
    const std::string job = c->pytorchjob.empty() ? "" : pytorchjob_manifest(trainer_pytorchjob(spec, c->workers, c->claim));
    io::write_file_atomic(c->out, compile_kfp(spec));
    std::printf("wrote %s: pipeline %s, version %s, %zu tasks, image %s\n", c->out.string().c_str(), spec.name.c_str(),
                spec.version.c_str(), spec.tasks.size(), spec.image.c_str());
    if (!job.empty()) {
      io::write_file_atomic(c->pytorchjob, job);
      std::printf("wrote %s: PyTorchJob for the Trainer, 1 Master + %d Workers\n", c->pytorchjob.string().c_str(),
                  c->workers);
    }
  });

  auto* component = group->add_subcommand(
      "component", "Run one component: what a Kubeflow step runs (NAME --config JSON --input NAME=PATH ... "
                   "--output NAME=PATH ...)");
  component->prefix_command();
  {
    std::string footer = "Components (inputs -> outputs):\n";
    for (auto c : all_components()) {
      std::string ins, outs;
      for (const auto& in : signature(c).inputs) ins += (ins.empty() ? "" : ", ") + in.name;
      for (const auto& out : signature(c).outputs) outs += (outs.empty() ? "" : ", ") + out.name;
      footer += "  " + component_name(c) + ": " + (ins.empty() ? "-" : ins) + " -> " + outs + "\n";
    }
    component->footer(footer);
  }
  component->callback([component] {
    auto args = component->remaining();
    auto call = parse_component_args(args);
    call.progress = call.progress || progress_enabled_by_default();
    const auto result = run_component(call);
    std::printf("%s: %s\n", component_name(call.component).c_str(), result.summary.c_str());
  });

  struct Runs {
    fs::path metadata, pipeline;
    int64_t limit = 20;
  };
  auto rs = std::make_shared<Runs>();
  auto* runs = group->add_subcommand("runs", "List runs with their status and each component's state and duration");
  runs->add_option("--metadata", rs->metadata, "SQLite metadata store (default: pipeline-root/metadata.sqlite)");
  runs->add_option("--pipeline", rs->pipeline, "Take the metadata store from this pipeline.yaml");
  runs->add_option("--limit", rs->limit, "Newest N runs (0: all)")->capture_default_str();
  runs->callback([rs] {
    const auto file = store_path(rs->metadata, rs->pipeline);
    HISTOCNN_CHECK_FOUND(fs::exists(file), "metadata store '{}' does not exist; give --metadata or --pipeline",
                         file.string());
    MetadataStore store(file);
    store.cancel_orphans();
    std::cout << format_runs(store.runs(rs->limit));
  });

  struct Lineage {
    fs::path metadata, pipeline, base;
    int64_t version = 0;
  };
  auto l = std::make_shared<Lineage>();
  auto* lineage = group->add_subcommand(
      "lineage", "From a served version back to its evaluation, training run, statistics, schema and data");
  lineage->add_option("--model-base-path", l->base, "The serving base path")->required();
  lineage->add_option("--version", l->version, "The version number")->required();
  lineage->add_option("--metadata", l->metadata, "SQLite metadata store (default: pipeline-root/metadata.sqlite)");
  lineage->add_option("--pipeline", l->pipeline, "Take the metadata store from this pipeline.yaml");
  lineage->callback([l] {
    const auto file = store_path(l->metadata, l->pipeline);
    HISTOCNN_CHECK_FOUND(fs::exists(file), "metadata store '{}' does not exist; give --metadata or --pipeline",
                         file.string());
    MetadataStore store(file);
    std::cout << format_lineage(store.lineage(l->base, l->version));
  });
}

}  // namespace histocnn::cli
