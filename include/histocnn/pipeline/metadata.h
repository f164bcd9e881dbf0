#pragma once
// The pipeline's metadata store: ML Metadata's concepts in one SQLite file. Artifacts (typed
// folders with properties), executions (one per component run: state, configuration, cache key,
// duration), events (which execution read or wrote which artifact) and contexts (the pipeline, its
// versions and each run), linked by attributions and associations.
//
//   histocnn::pipeline::MetadataStore store("pipeline-root/metadata.sqlite");
//   for (const auto& run : store.runs()) fmt::print("{} {}\n", run.name, run.state);
//   auto rows = store.lineage("models/idc", 3);   // from a served version back to the data
//
// The file is in WAL mode and every change is one IMMEDIATE transaction, so several processes
// (pipelines running at once) read and write it safely; a writer waits up to `busy_timeout_ms`
// for another. Execution states are ML Metadata's: NEW, RUNNING, COMPLETE, FAILED, CACHED, and
// CANCELED for an execution whose process died (found by its process id on this host).
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace histocnn::pipeline {

struct ArtifactRecord {
  int64_t id = 0;
  std::string type;   ///< "Examples", "Model", ...
  std::string uri;    ///< the artifact's folder
  std::string name;   ///< the output name ("examples")
  /// The artifact's identity for cache keys: a hash of the producing execution's cache key and the
  /// output name (the same work gives the same fingerprint).
  std::string fingerprint;
  std::map<std::string, std::string> properties;
};

struct ExecutionRecord {
  int64_t id = 0;
  std::string component;  ///< "Trainer"
  std::string task;       ///< the task name in the pipeline
  std::string state;      ///< NEW, RUNNING, COMPLETE, FAILED, CACHED, CANCELED
  std::string cache_key;
  std::string config_json;
  std::string error;
  std::string summary;
  int64_t cached_from = 0;  ///< the COMPLETE execution a CACHED one reused
  double start_time = 0, end_time = 0;  ///< seconds since the epoch (end 0: not ended)
  double seconds() const { return end_time > 0 ? end_time - start_time : 0; }
};

struct RunRecord {
  int64_t id = 0;             ///< the run context's id
  std::string name;           ///< "<pipeline>-<UTC time>-<pid>"
  std::string pipeline, pipeline_version, source;
  std::string state;          ///< RUNNING, COMPLETE, FAILED, CANCELED
  double start_time = 0, end_time = 0;
  std::vector<ExecutionRecord> executions;  ///< in the order they started
};

/// One step of a lineage walk: an execution and one artifact it wrote.
struct LineageRow {
  int depth = 0;               ///< 0: the execution that wrote the starting artifact
  int64_t execution_id = 0;
  std::string component, state, run, pipeline_version;
  double seconds = 0;
  ArtifactRecord artifact;
};

class MetadataStore {
 public:
  /// Opens (creating when missing, with its folder) the store.
  explicit MetadataStore(const std::filesystem::path& file, int busy_timeout_ms = 60000);
  ~MetadataStore();
  MetadataStore(const MetadataStore&) = delete;
  MetadataStore& operator=(const MetadataStore&) = delete;

  const std::filesystem::path& file() const;

  // ---- contexts -----------------------------------------------------------------------------
  /// The id of the context (type, name), created when missing with these properties.
  int64_t put_context(const std::string& type, const std::string& name, const std::string& properties_json = "{}");
  /// Starts a run of `pipeline` (version, source file): a "run" context under the "pipeline" and
  /// "pipeline_version" contexts. Returns the run's context id; its name is in runs().
  int64_t begin_run(const std::string& pipeline, const std::string& version, const std::string& source);
  void end_run(int64_t run_id, const std::string& state);

  // ---- executions ---------------------------------------------------------------------------
  /// The newest COMPLETE execution of `component` with this cache key whose output folders all
  /// still exist, with its outputs by name.
  struct CacheHit {
    ExecutionRecord execution;
    std::map<std::string, ArtifactRecord> outputs;
  };
  std::optional<CacheHit> find_cached(const std::string& component, const std::string& cache_key) const;

  /// Records a RUNNING execution in the run, with its input artifacts (INPUT events).
  int64_t start_execution(int64_t run_id, const std::string& component, const std::string& task,
                          const std::string& cache_key, const std::string& config_json,
                          const std::map<std::string, int64_t>& input_artifacts);
  /// COMPLETE: registers the outputs (OUTPUT events, attributed to the run) and ends it.
  std::map<std::string, int64_t> complete_execution(int64_t execution_id, const std::vector<ArtifactRecord>& outputs,
                                                    const std::string& summary);
  /// FAILED (or CANCELED) with the error text.
  void fail_execution(int64_t execution_id, const std::string& error, const std::string& state = "FAILED");
  /// A CACHED execution in the run: it reads the same inputs and links the cached outputs.
  int64_t cached_execution(int64_t run_id, const std::string& component, const std::string& task,
                           const std::string& cache_key, const std::string& config_json,
                           const std::map<std::string, int64_t>& input_artifacts, const CacheHit& hit);
  /// Executions and runs left RUNNING by a process of this host that no longer exists become
  /// CANCELED; returns how many executions changed.
  int64_t cancel_orphans();

  // ---- queries ------------------------------------------------------------------------------
  ArtifactRecord artifact(int64_t id) const;
  ExecutionRecord execution(int64_t id) const;
  /// One run with its executions.
  RunRecord run(int64_t run_id) const;
  /// Runs, newest first (at most `limit`; 0 = all), each with its executions.
  std::vector<RunRecord> runs(int64_t limit = 0) const;
  /// The PushedModel artifact recording `version` pushed to `base_path`, if any.
  std::optional<ArtifactRecord> pushed_model(const std::filesystem::path& base_path, int64_t version) const;
  /// From an artifact back through the executions that wrote it and their inputs, breadth first:
  /// one row per (execution, artifact written), each execution once.
  std::vector<LineageRow> lineage_of(int64_t artifact_id) const;
  /// lineage_of the PushedModel artifact of a served version; std::invalid_argument when this
  /// store never pushed that version there.
  std::vector<LineageRow> lineage(const std::filesystem::path& base_path, int64_t version) const;
  /// Counts of the tables (artifacts, executions, events, contexts) and SQLite's integrity check.
  std::map<std::string, std::string> health() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// A table of runs: name, version, state, duration, then each component's state and seconds.
std::string format_runs(const std::vector<RunRecord>& runs);
/// A table of a lineage walk.
std::string format_lineage(const std::vector<LineageRow>& rows);

}  // namespace histocnn::pipeline
