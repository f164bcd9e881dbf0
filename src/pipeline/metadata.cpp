#include "histocnn/pipeline/metadata.h"

#include "histocnn/core/error.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <csignal>
#include <deque>
#include <set>
#include <thread>
#include <unistd.h>

namespace histocnn::pipeline {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int kSchemaVersion = 1;

const char* const kSchema = R"sql(
CREATE TABLE IF NOT EXISTS contexts(
  id INTEGER PRIMARY KEY, type TEXT NOT NULL, name TEXT NOT NULL, properties TEXT NOT NULL DEFAULT '{}',
  state TEXT, pid INTEGER, host TEXT, create_time REAL NOT NULL, end_time REAL, UNIQUE(type, name));
CREATE TABLE IF NOT EXISTS parent_contexts(
  child_id INTEGER NOT NULL REFERENCES contexts(id), parent_id INTEGER NOT NULL REFERENCES contexts(id),
  PRIMARY KEY(child_id, parent_id));
CREATE TABLE IF NOT EXISTS executions(
  id INTEGER PRIMARY KEY, type TEXT NOT NULL, task TEXT NOT NULL,
  state TEXT NOT NULL CHECK(state IN ('NEW', 'RUNNING', 'COMPLETE', 'FAILED', 'CACHED', 'CANCELED')),
  cache_key TEXT NOT NULL, config TEXT NOT NULL, pid INTEGER, host TEXT, error TEXT, summary TEXT,
  cached_from INTEGER REFERENCES executions(id), start_time REAL NOT NULL, end_time REAL);
CREATE INDEX IF NOT EXISTS executions_by_key ON executions(type, cache_key, state);
CREATE TABLE IF NOT EXISTS artifacts(
  id INTEGER PRIMARY KEY, type TEXT NOT NULL, uri TEXT NOT NULL, name TEXT NOT NULL, fingerprint TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'LIVE', create_time REAL NOT NULL);
CREATE TABLE IF NOT EXISTS artifact_properties(
  artifact_id INTEGER NOT NULL REFERENCES artifacts(id), name TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY(artifact_id, name));
CREATE INDEX IF NOT EXISTS artifact_properties_by_value ON artifact_properties(name, value);
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY, artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  execution_id INTEGER NOT NULL REFERENCES executions(id), type TEXT NOT NULL CHECK(type IN ('INPUT', 'OUTPUT')),
  name TEXT NOT NULL, time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_by_execution ON events(execution_id);
CREATE INDEX IF NOT EXISTS events_by_artifact ON events(artifact_id);
CREATE TABLE IF NOT EXISTS attributions(
  context_id INTEGER NOT NULL REFERENCES contexts(id), artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  PRIMARY KEY(context_id, artifact_id));
CREATE TABLE IF NOT EXISTS associations(
  context_id INTEGER NOT NULL REFERENCES contexts(id), execution_id INTEGER NOT NULL REFERENCES executions(id),
  PRIMARY KEY(context_id, execution_id));
)sql";

double now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string host_name() {
  char buf[256] = {};
  ::gethostname(buf, sizeof buf - 1);
  return buf;
}

bool process_alive(int64_t pid) {
  if (pid <= 0) return false;
  return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

std::string text_or_empty(const SQLite::Column& c) { return c.isNull() ? std::string() : c.getString(); }
double double_or_zero(const SQLite::Column& c) { return c.isNull() ? 0.0 : c.getDouble(); }

}  // namespace

struct MetadataStore::Impl {
  fs::path file;
  std::unique_ptr<SQLite::Database> db;
  std::string host = host_name();
  int64_t pid = ::getpid();

  // A write: one IMMEDIATE transaction (the write lock is taken at BEGIN, so two writers never
  // deadlock upgrading read locks), retried while another process holds the lock past the timeout.
  template <typename F>
  auto write(F&& f) -> decltype(f()) {
    for (int attempt = 0;; ++attempt) {
      try {
        SQLite::Transaction tx(*db, SQLite::TransactionBehavior::IMMEDIATE);
        if constexpr (std::is_void_v<decltype(f())>) {
          f();
          tx.commit();
          return;
        } else {
          auto result = f();
          tx.commit();
          return result;
        }
      } catch (const SQLite::Exception& e) {
        const int code = e.getErrorCode();
        if ((code == SQLITE_BUSY || code == SQLITE_LOCKED) && attempt < 20) {
          std::this_thread::sleep_for(std::chrono::milliseconds(50 * (attempt + 1)));
          continue;
        }
        HISTOCNN_FAIL_IO("metadata store '{}': {}", file.string(), e.what());
      }
    }
  }

  ArtifactRecord read_artifact(int64_t id) const {
    SQLite::Statement q(*db, "SELECT type, uri, name, fingerprint FROM artifacts WHERE id = ?");
    q.bind(1, id);
    HISTOCNN_CHECK(q.executeStep(), "metadata store '{}' has no artifact {}", file.string(), id);
    ArtifactRecord a;
    a.id = id;
    a.type = q.getColumn(0).getString();
    a.uri = q.getColumn(1).getString();
    a.name = q.getColumn(2).getString();
    a.fingerprint = q.getColumn(3).getString();
    SQLite::Statement p(*db, "SELECT name, value FROM artifact_properties WHERE artifact_id = ?");
    p.bind(1, id);
    while (p.executeStep()) a.properties[p.getColumn(0).getString()] = p.getColumn(1).getString();
    return a;
  }

  ExecutionRecord read_execution(int64_t id) const {
    SQLite::Statement q(*db,
                        "SELECT type, task, state, cache_key, config, error, summary, cached_from, start_time, end_time "
                        "FROM executions WHERE id = ?");
    q.bind(1, id);
    HISTOCNN_CHECK(q.executeStep(), "metadata store '{}' has no execution {}", file.string(), id);
    ExecutionRecord e;
    e.id = id;
    e.component = q.getColumn(0).getString();
    e.task = q.getColumn(1).getString();
    e.state = q.getColumn(2).getString();
    e.cache_key = q.getColumn(3).getString();
    e.config_json = q.getColumn(4).getString();
    e.error = text_or_empty(q.getColumn(5));
    e.summary = text_or_empty(q.getColumn(6));
    e.cached_from = q.getColumn(7).isNull() ? 0 : q.getColumn(7).getInt64();
    e.start_time = double_or_zero(q.getColumn(8));
    e.end_time = double_or_zero(q.getColumn(9));
    return e;
  }

  int64_t insert_execution(int64_t run_id, const std::string& component, const std::string& task,
                           const std::string& state, const std::string& key, const std::string& config,
                           const std::map<std::string, int64_t>& inputs) {
    const double t = now();
    SQLite::Statement ins(*db,
                          "INSERT INTO executions(type, task, state, cache_key, config, pid, host, start_time) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    ins.bind(1, component);
    ins.bind(2, task);
    ins.bind(3, state);
    ins.bind(4, key);
    ins.bind(5, config);
    ins.bind(6, pid);
    ins.bind(7, host);
    ins.bind(8, t);
    ins.exec();
    const int64_t id = db->getLastInsertRowid();
    for (const auto& [name, artifact] : inputs) add_event(artifact, id, "INPUT", name, t);
    SQLite::Statement assoc(*db, "INSERT OR IGNORE INTO associations(context_id, execution_id) VALUES (?, ?)");
    assoc.bind(1, run_id);
    assoc.bind(2, id);
    assoc.exec();
    return id;
  }

  void add_event(int64_t artifact, int64_t execution, const char* type, const std::string& name, double t) {
    SQLite::Statement ev(*db, "INSERT INTO events(artifact_id, execution_id, type, name, time) VALUES (?, ?, ?, ?, ?)");
    ev.bind(1, artifact);
    ev.bind(2, execution);
    ev.bind(3, type);
    ev.bind(4, name);
    ev.bind(5, t);
    ev.exec();
  }

  void attribute(int64_t context, int64_t artifact) {
    SQLite::Statement q(*db, "INSERT OR IGNORE INTO attributions(context_id, artifact_id) VALUES (?, ?)");
    q.bind(1, context);
    q.bind(2, artifact);
    q.exec();
  }

  std::vector<RunRecord> read_runs(SQLite::Statement& q) const;

  int64_t run_of_execution(int64_t execution) const {
    SQLite::Statement q(*db,
                        "SELECT c.id FROM associations a JOIN contexts c ON c.id = a.context_id "
                        "WHERE a.execution_id = ? AND c.type = 'run' ORDER BY c.id LIMIT 1");
    q.bind(1, execution);
    return q.executeStep() ? q.getColumn(0).getInt64() : 0;
  }
};

MetadataStore::MetadataStore(const fs::path& file, int busy_timeout_ms) : impl_(std::make_unique<Impl>()) {
  impl_->file = file;
  if (!file.parent_path().empty()) fs::create_directories(file.parent_path());
  try {
    impl_->db = std::make_unique<SQLite::Database>(file.string(), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE,
                                                   busy_timeout_ms);
    // WAL: readers never block the writer, and a crash leaves the last committed state.
    for (int attempt = 0;; ++attempt) {
      try {
        impl_->db->exec("PRAGMA journal_mode = WAL");
        break;
      } catch (const SQLite::Exception& e) {
        if (attempt >= 20) throw;
        std::this_thread::sleep_for(std::chrono::milliseconds(50 * (attempt + 1)));
      }
    }
    impl_->db->exec("PRAGMA synchronous = NORMAL");
    impl_->db->exec("PRAGMA foreign_keys = ON");
  } catch (const SQLite::Exception& e) {
    HISTOCNN_FAIL_IO("cannot open the metadata store '{}': {}", file.string(), e.what());
  }
  impl_->write([&] {
    const int version = impl_->db->execAndGet("PRAGMA user_version").getInt();
    HISTOCNN_CHECK_IO(version <= kSchemaVersion,
                      "metadata store '{}' has schema version {}, newer than this histocnn's {}; use a newer histocnn",
                      file.string(), version, kSchemaVersion);
    impl_->db->exec(kSchema);
    impl_->db->exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion));
  });
}

MetadataStore::~MetadataStore() = default;

const fs::path& MetadataStore::file() const { return impl_->file; }

int64_t MetadataStore::put_context(const std::string& type, const std::string& name, const std::string& properties) {
  return impl_->write([&] {
    SQLite::Statement ins(*impl_->db,
                          "INSERT OR IGNORE INTO contexts(type, name, properties, create_time) VALUES (?, ?, ?, ?)");
    ins.bind(1, type);
    ins.bind(2, name);
    ins.bind(3, properties);
    ins.bind(4, now());
    ins.exec();
    SQLite::Statement q(*impl_->db, "SELECT id FROM contexts WHERE type = ? AND name = ?");
    q.bind(1, type);
    q.bind(2, name);
    q.executeStep();
    return q.getColumn(0).getInt64();
  });
}

int64_t MetadataStore::begin_run(const std::string& pipeline, const std::string& version, const std::string& source) {
  const int64_t pipeline_id = put_context("pipeline", pipeline, json{{"source", source}}.dump());
  const int64_t version_id = put_context("pipeline_version", version, json{{"pipeline", pipeline}, {"source", source}}.dump());
  return impl_->write([&] {
    const double t = now();
    const std::time_t secs = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    std::string name;
    for (int i = 0;; ++i) {
      name = fmt::format("{}-{}-{}{}", pipeline, stamp, impl_->pid, i ? fmt::format("-{}", i) : "");
      SQLite::Statement q(*impl_->db, "SELECT 1 FROM contexts WHERE type = 'run' AND name = ?");
      q.bind(1, name);
      if (!q.executeStep()) break;
    }
    SQLite::Statement ins(*impl_->db,
                          "INSERT INTO contexts(type, name, properties, state, pid, host, create_time) "
                          "VALUES ('run', ?, ?, 'RUNNING', ?, ?, ?)");
    ins.bind(1, name);
    ins.bind(2, json{{"pipeline", pipeline}, {"pipeline_version", version}, {"source", source}}.dump());
    ins.bind(3, impl_->pid);
    ins.bind(4, impl_->host);
    ins.bind(5, t);
    ins.exec();
    const int64_t run_id = impl_->db->getLastInsertRowid();
    for (int64_t parent : {pipeline_id, version_id}) {
      SQLite::Statement p(*impl_->db, "INSERT OR IGNORE INTO parent_contexts(child_id, parent_id) VALUES (?, ?)");
      p.bind(1, run_id);
      p.bind(2, parent);
      p.exec();
    }
    return run_id;
  });
}

void MetadataStore::end_run(int64_t run_id, const std::string& state) {
  impl_->write([&] {
    SQLite::Statement q(*impl_->db, "UPDATE contexts SET state = ?, end_time = ? WHERE id = ?");
    q.bind(1, state);
    q.bind(2, now());
    q.bind(3, run_id);
    q.exec();
  });
}

std::optional<MetadataStore::CacheHit> MetadataStore::find_cached(const std::string& component,
                                                                  const std::string& cache_key) const {
  SQLite::Statement q(*impl_->db,
                      "SELECT id FROM executions WHERE type = ? AND cache_key = ? AND state = 'COMPLETE' ORDER BY id DESC");
  q.bind(1, component);
  q.bind(2, cache_key);
  while (q.executeStep()) {
    CacheHit hit;
    hit.execution = impl_->read_execution(q.getColumn(0).getInt64());
    SQLite::Statement out(*impl_->db, "SELECT artifact_id, name FROM events WHERE execution_id = ? AND type = 'OUTPUT'");
    out.bind(1, hit.execution.id);
    bool present = true;
    while (out.executeStep()) {
      auto a = impl_->read_artifact(out.getColumn(0).getInt64());
      present = present && fs::exists(a.uri);
      hit.outputs[out.getColumn(1).getString()] = a;
    }
    if (present && !hit.outputs.empty()) return hit;
  }
  return std::nullopt;
}

int64_t MetadataStore::start_execution(int64_t run_id, const std::string& component, const std::string& task,
                                       const std::string& cache_key, const std::string& config_json,
                                       const std::map<std::string, int64_t>& inputs) {
  return impl_->write(
      [&] { return impl_->insert_execution(run_id, component, task, "RUNNING", cache_key, config_json, inputs); });
}

std::map<std::string, int64_t> MetadataStore::complete_execution(int64_t execution_id,
                                                                 const std::vector<ArtifactRecord>& outputs,
                                                                 const std::string& summary) {
  return impl_->write([&] {
    const double t = now();
    const int64_t run = impl_->run_of_execution(execution_id);
    std::map<std::string, int64_t> ids;
    for (const auto& a : outputs) {
      SQLite::Statement ins(*impl_->db,
                            "INSERT INTO artifacts(type, uri, name, fingerprint, create_time) VALUES (?, ?, ?, ?, ?)");
      ins.bind(1, a.type);
      ins.bind(2, a.uri);
      ins.bind(3, a.name);
      ins.bind(4, a.fingerprint);
      ins.bind(5, t);
      ins.exec();
      const int64_t id = impl_->db->getLastInsertRowid();
      for (const auto& [k, v] : a.properties) {
        SQLite::Statement p(*impl_->db, "INSERT INTO artifact_properties(artifact_id, name, value) VALUES (?, ?, ?)");
        p.bind(1, id);
        p.bind(2, k);
        p.bind(3, v);
        p.exec();
      }
      impl_->add_event(id, execution_id, "OUTPUT", a.name, t);
      if (run) impl_->attribute(run, id);
      ids[a.name] = id;
    }
    SQLite::Statement up(*impl_->db, "UPDATE executions SET state = 'COMPLETE', end_time = ?, summary = ? WHERE id = ?");
    up.bind(1, t);
    up.bind(2, summary);
    up.bind(3, execution_id);
    up.exec();
    return ids;
  });
}

void MetadataStore::fail_execution(int64_t execution_id, const std::string& error, const std::string& state) {
  impl_->write([&] {
    SQLite::Statement up(*impl_->db, "UPDATE executions SET state = ?, end_time = ?, error = ? WHERE id = ?");
    up.bind(1, state);
    up.bind(2, now());
    up.bind(3, error);
    up.bind(4, execution_id);
    up.exec();
  });
}

int64_t MetadataStore::cached_execution(int64_t run_id, const std::string& component, const std::string& task,
                                        const std::string& cache_key, const std::string& config_json,
                                        const std::map<std::string, int64_t>& inputs, const CacheHit& hit) {
  return impl_->write([&] {
    const int64_t id = impl_->insert_execution(run_id, component, task, "CACHED", cache_key, config_json, inputs);
    const double t = now();
    for (const auto& [name, a] : hit.outputs) {
      impl_->add_event(a.id, id, "OUTPUT", name, t);
      impl_->attribute(run_id, a.id);
    }
    SQLite::Statement up(*impl_->db, "UPDATE executions SET end_time = ?, summary = ?, cached_from = ? WHERE id = ?");
    up.bind(1, t);
    up.bind(2, hit.execution.summary);
    up.bind(3, hit.execution.id);
    up.bind(4, id);
    up.exec();
    return id;
  });
}

int64_t MetadataStore::cancel_orphans() {
  return impl_->write([&] {
    int64_t changed = 0;
    for (const char* table : {"executions", "contexts"}) {
      std::vector<std::pair<int64_t, int64_t>> dead;
      SQLite::Statement q(*impl_->db, fmt::format("SELECT id, pid FROM {} WHERE state = 'RUNNING' AND host = ?", table));
      q.bind(1, impl_->host);
      while (q.executeStep()) {
        const int64_t pid = q.getColumn(1).isNull() ? 0 : q.getColumn(1).getInt64();
        if (pid != impl_->pid && !process_alive(pid)) dead.emplace_back(q.getColumn(0).getInt64(), pid);
      }
      for (const auto& [id, pid] : dead) {
        SQLite::Statement up(*impl_->db,
                             std::string("UPDATE ") + table +
                                 (std::string(table) == "executions"
                                      ? " SET state = 'CANCELED', end_time = ?, error = ? WHERE id = ?"
                                      : " SET state = 'CANCELED', end_time = ?, properties = json_set(properties, "
                                        "'$.error', ?) WHERE id = ?"));
        up.bind(1, now());
        up.bind(2, fmt::format("process {} on {} ended without finishing (killed?)", pid, impl_->host));
        up.bind(3, id);
        up.exec();
        if (std::string(table) == "executions") ++changed;
      }
    }
    return changed;
  });
}

ArtifactRecord MetadataStore::artifact(int64_t id) const { return impl_->read_artifact(id); }
ExecutionRecord MetadataStore::execution(int64_t id) const { return impl_->read_execution(id); }

RunRecord MetadataStore::run(int64_t run_id) const {
  SQLite::Statement q(*impl_->db,
                      "SELECT id, name, properties, state, create_time, end_time FROM contexts WHERE type = 'run' "
                      "AND id = ?");
  q.bind(1, run_id);
  auto runs = impl_->read_runs(q);
  HISTOCNN_CHECK(!runs.empty(), "metadata store '{}' has no run {}", impl_->file.string(), run_id);
  return runs.front();
}

std::vector<RunRecord> MetadataStore::runs(int64_t limit) const {
  SQLite::Statement q(*impl_->db,
                      "SELECT id, name, properties, state, create_time, end_time FROM contexts WHERE type = 'run' "
                      "ORDER BY id DESC LIMIT ?");
  q.bind(1, limit > 0 ? limit : int64_t{-1});
  return impl_->read_runs(q);
}

std::vector<RunRecord> MetadataStore::Impl::read_runs(SQLite::Statement& q) const {
  std::vector<RunRecord> out;
  while (q.executeStep()) {
    RunRecord r;
    r.id = q.getColumn(0).getInt64();
    r.name = q.getColumn(1).getString();
    const json p = json::parse(q.getColumn(2).getString());
    r.pipeline = p.value("pipeline", "");
    r.pipeline_version = p.value("pipeline_version", "");
    r.source = p.value("source", "");
    r.state = text_or_empty(q.getColumn(3));
    r.start_time = double_or_zero(q.getColumn(4));
    r.end_time = double_or_zero(q.getColumn(5));
    SQLite::Statement e(*db, "SELECT execution_id FROM associations WHERE context_id = ? ORDER BY execution_id");
    e.bind(1, r.id);
    while (e.executeStep()) r.executions.push_back(read_execution(e.getColumn(0).getInt64()));
    out.push_back(std::move(r));
  }
  return out;
}

std::optional<ArtifactRecord> MetadataStore::pushed_model(const fs::path& base_path, int64_t version) const {
  const std::string base = fs::weakly_canonical(fs::absolute(base_path)).lexically_normal().string();
  SQLite::Statement q(*impl_->db,
                      "SELECT a.id FROM artifacts a "
                      "JOIN artifact_properties b ON b.artifact_id = a.id AND b.name = 'base_path' AND b.value = ? "
                      "JOIN artifact_properties v ON v.artifact_id = a.id AND v.name = 'version' AND v.value = ? "
                      "JOIN artifact_properties p ON p.artifact_id = a.id AND p.name = 'pushed' AND p.value = '1' "
                      "WHERE a.type = 'PushedModel' ORDER BY a.id LIMIT 1");
  q.bind(1, base);
  q.bind(2, std::to_string(version));
  if (!q.executeStep()) return std::nullopt;
  return impl_->read_artifact(q.getColumn(0).getInt64());
}

std::vector<LineageRow> MetadataStore::lineage_of(int64_t artifact_id) const {
  std::vector<LineageRow> rows;
  std::set<int64_t> seen_executions, seen_artifacts;
  std::deque<std::pair<int64_t, int>> queue = {{artifact_id, 0}};
  while (!queue.empty()) {
    const auto [artifact, depth] = queue.front();
    queue.pop_front();
    if (!seen_artifacts.insert(artifact).second) continue;
    // The execution that produced it (not a CACHED one that only reused it).
    SQLite::Statement p(*impl_->db,
                        "SELECT e.id FROM events ev JOIN executions e ON e.id = ev.execution_id "
                        "WHERE ev.artifact_id = ? AND ev.type = 'OUTPUT' ORDER BY (e.state = 'CACHED'), e.id LIMIT 1");
    p.bind(1, artifact);
    if (!p.executeStep()) continue;
    const int64_t execution = p.getColumn(0).getInt64();
    if (!seen_executions.insert(execution).second) continue;
    const auto e = impl_->read_execution(execution);
    std::string run, version;
    if (const int64_t run_id = impl_->run_of_execution(execution)) {
      SQLite::Statement r(*impl_->db, "SELECT name, properties FROM contexts WHERE id = ?");
      r.bind(1, run_id);
      if (r.executeStep()) {
        run = r.getColumn(0).getString();
        version = json::parse(r.getColumn(1).getString()).value("pipeline_version", "");
      }
    }
    SQLite::Statement outs(*impl_->db,
                           "SELECT artifact_id FROM events WHERE execution_id = ? AND type = 'OUTPUT' ORDER BY artifact_id");
    outs.bind(1, execution);
    while (outs.executeStep()) {
      LineageRow row;
      row.depth = depth;
      row.execution_id = execution;
      row.component = e.component;
      row.state = e.state;
      row.run = run;
      row.pipeline_version = version;
      row.seconds = e.seconds();
      row.artifact = impl_->read_artifact(outs.getColumn(0).getInt64());
      rows.push_back(std::move(row));
    }
    SQLite::Statement ins(*impl_->db,
                          "SELECT artifact_id FROM events WHERE execution_id = ? AND type = 'INPUT' ORDER BY artifact_id");
    ins.bind(1, execution);
    while (ins.executeStep()) queue.emplace_back(ins.getColumn(0).getInt64(), depth + 1);
  }
  return rows;
}

std::vector<LineageRow> MetadataStore::lineage(const fs::path& base_path, int64_t version) const {
  const auto pushed = pushed_model(base_path, version);
  HISTOCNN_CHECK(pushed.has_value(),
                 "the metadata store '{}' has no record of version {} pushed to '{}'; name the store of the pipeline "
                 "that pushed it (--metadata)", impl_->file.string(), version, base_path.string());
  return lineage_of(pushed->id);
}

std::map<std::string, std::string> MetadataStore::health() const {
  std::map<std::string, std::string> h;
  for (const char* table : {"artifacts", "executions", "events", "contexts", "attributions", "associations"}) {
    h[table] = std::to_string(impl_->db->execAndGet(fmt::format("SELECT COUNT(*) FROM {}", table)).getInt64());
  }
  h["integrity_check"] = impl_->db->execAndGet("PRAGMA integrity_check").getString();
  h["journal_mode"] = impl_->db->execAndGet("PRAGMA journal_mode").getString();
  return h;
}

namespace {

std::string duration(double seconds) {
  if (seconds <= 0) return "-";
  if (seconds < 60) return fmt::format("{:.1f}s", seconds);
  if (seconds < 3600) return fmt::format("{:.0f}m{:02.0f}s", std::floor(seconds / 60), std::fmod(seconds, 60));
  return fmt::format("{:.0f}h{:02.0f}m", std::floor(seconds / 3600), std::fmod(seconds / 60, 60));
}

std::string utc(double t) {
  if (t <= 0) return "-";
  const std::time_t secs = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

}  // namespace

std::string format_runs(const std::vector<RunRecord>& runs) {
  std::string s;
  for (const auto& r : runs) {
    const double end = r.end_time > 0 ? r.end_time : 0;
    s += fmt::format("{}  {}  {}  started {} UTC, {}\n", r.name, r.state, r.pipeline_version, utc(r.start_time),
                     end > 0 ? duration(end - r.start_time) : "not ended");
    for (const auto& e : r.executions) {
      std::string note = e.state == "CACHED" ? fmt::format("reused execution {}", e.cached_from) : e.summary;
      if (!e.error.empty()) note = e.error.substr(0, e.error.find('\n'));
      s += fmt::format("  {:>6}  {:<17} {:<9} {:>8}  {}\n", e.id, e.component, e.state, duration(e.seconds()), note);
    }
  }
  if (s.empty()) s = "no runs recorded\n";
  return s;
}

std::string format_lineage(const std::vector<LineageRow>& rows) {
  std::string s = fmt::format("{:>5}  {:>9}  {:<17} {:<9} {:<18} {}\n", "depth", "execution", "component", "state",
                              "artifact", "uri and properties");
  for (const auto& r : rows) {
    std::string props;
    for (const auto& [k, v] : r.artifact.properties) props += fmt::format(" {}={}", k, v);
    s += fmt::format("{:>5}  {:>9}  {:<17} {:<9} {:<18} {}{}\n", r.depth, r.execution_id, r.component, r.state,
                     r.artifact.type, r.artifact.uri, props);
  }
  return s;
}

}  // namespace histocnn::pipeline
