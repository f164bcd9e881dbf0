#include "test_prelude.h"

#include "histocnn/pipeline/metadata.h"

#include <fmt/format.h>

#include "test_support.h"

#include <thread>

using namespace histocnn;
using namespace histocnn::pipeline;
namespace fs = std::filesystem;

namespace {

ArtifactRecord artifact(const std::string& type, const fs::path& uri, const std::string& name,
                        std::map<std::string, std::string> properties = {}) {
  fs::create_directories(uri);
  ArtifactRecord a;
  a.type = type;
  a.uri = uri.string();
  a.name = name;
  a.fingerprint = "fp-" + name;
  a.properties = std::move(properties);
  return a;
}

}  // namespace

TEST_CASE("The metadata store records executions, serves the cache and walks lineage", "[pipeline]") {
  test::TempDir dir("histocnn-metadata");
  MetadataStore store(dir / "meta" / "metadata.sqlite");
  CHECK(store.health().at("journal_mode") == "wal");
  const int64_t run = store.begin_run("demo", "demo_0123456789ab", "pipeline.yaml");

  const int64_t gen = store.start_execution(run, "ExampleGen", "examplegen", "k1", "{}", {});
  CHECK_FALSE(store.find_cached("ExampleGen", "k1"));  // RUNNING is not a cache hit
  const auto gen_out = store.complete_execution(gen, {artifact("Examples", dir / "a" / "examples", "examples")}, "ok");
  const int64_t train = store.start_execution(run, "Trainer", "trainer", "k2", "{\"epochs\": 1}",
                                              {{"examples", gen_out.at("examples")}});
  const auto model = store.complete_execution(train, {artifact("Model", dir / "a" / "model", "model")}, "trained");
  const int64_t push = store.start_execution(run, "Pusher", "pusher", "k3", "{}", {{"model", model.at("model")}});
  const auto base = dir / "models" / "idc";
  store.complete_execution(push, {artifact("PushedModel", dir / "a" / "pushed", "pushed_model",
                                           {{"pushed", "1"}, {"version", "3"},
                                            {"base_path", fs::weakly_canonical(base).string()}})},
                           "pushed as version 3");
  const int64_t failed = store.start_execution(run, "Evaluator", "evaluator", "k4", "{}", {});
  store.fail_execution(failed, "boom");
  store.end_run(run, "FAILED");

  // The cache: the newest COMPLETE execution of the key, while its folders exist.
  auto hit = store.find_cached("Trainer", "k2");
  REQUIRE(hit);
  CHECK(hit->execution.id == train);
  CHECK(hit->outputs.at("model").uri == (dir / "a" / "model").string());
  CHECK(hit->outputs.at("model").fingerprint == "fp-model");
  CHECK_FALSE(store.find_cached("Trainer", "other-key"));
  CHECK_FALSE(store.find_cached("Evaluator", "k4"));  // FAILED is not a hit

  // A second run reuses it as CACHED, linked to the same artifacts.
  const int64_t run2 = store.begin_run("demo", "demo_0123456789ab", "pipeline.yaml");
  const int64_t cached = store.cached_execution(run2, "Trainer", "trainer", "k2", "{\"epochs\": 1}",
                                                {{"examples", gen_out.at("examples")}}, *hit);
  store.end_run(run2, "COMPLETE");
  CHECK(store.execution(cached).state == "CACHED");
  CHECK(store.execution(cached).cached_from == train);

  const auto runs = store.runs();
  REQUIRE(runs.size() == 2);
  CHECK(runs[0].id == run2);  // newest first
  CHECK(runs[0].state == "COMPLETE");
  CHECK(runs[1].state == "FAILED");
  REQUIRE(runs[1].executions.size() == 4);
  CHECK(runs[1].executions[3].state == "FAILED");
  CHECK(runs[1].executions[3].error == "boom");
  CHECK(runs[1].pipeline_version == "demo_0123456789ab");
  CHECK(format_runs(runs).find("reused execution") != std::string::npos);

  // Lineage from the pushed version, found by its base path written another way.
  const auto rows = store.lineage(dir / "models" / "." / "idc", 3);
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].component == "Pusher");
  CHECK(rows[0].depth == 0);
  CHECK(rows[1].component == "Trainer");  // the COMPLETE execution, not the CACHED one
  CHECK(rows[1].execution_id == train);
  CHECK(rows[2].component == "ExampleGen");
  CHECK(rows[2].depth == 2);
  CHECK(rows[2].run == runs[1].name);
  CHECK_THROWS_WITH(store.lineage(base, 4), Catch::Contains("no record of version 4"));

  // An output folder removed: the cache misses.
  fs::remove_all(dir / "a" / "model");
  CHECK_FALSE(store.find_cached("Trainer", "k2"));
  CHECK(store.health().at("integrity_check") == "ok");
}

TEST_CASE("Connections writing one store at once lose nothing", "[pipeline]") {
  test::TempDir dir("histocnn-metadata-threads");
  const fs::path file = dir / "metadata.sqlite";
  { MetadataStore created(file); }
  constexpr int kPerWriter = 40;
  auto writer = [&](int w) {
    MetadataStore store(file);  // its own connection, as another process would have
    const int64_t run = store.begin_run(fmt::format("p{}", w), "v", "");
    for (int i = 0; i < kPerWriter; ++i) {
      const int64_t e = store.start_execution(run, "StatisticsGen", "s", fmt::format("{}-{}", w, i), "{}", {});
      store.complete_execution(e, {artifact("ExampleStatistics", dir / fmt::format("o{}-{}", w, i), "statistics")}, "");
    }
    store.end_run(run, "COMPLETE");
  };
  std::thread a(writer, 0), b(writer, 1), c(writer, 2);
  a.join();
  b.join();
  c.join();
  MetadataStore store(file);
  const auto h = store.health();
  CHECK(h.at("executions") == std::to_string(3 * kPerWriter));
  CHECK(h.at("artifacts") == std::to_string(3 * kPerWriter));
  CHECK(h.at("events") == std::to_string(3 * kPerWriter));
  CHECK(h.at("integrity_check") == "ok");
  for (const auto& r : store.runs()) CHECK(r.executions.size() == size_t(kPerWriter));
}
