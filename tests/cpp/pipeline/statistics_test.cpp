#include "test_prelude.h"

#include "histocnn/data/split.h"
#include "histocnn/data/synthetic.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/image.h"
#include "histocnn/pipeline/components.h"
#include "histocnn/pipeline/statistics.h"

#include "test_support.h"

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include <cmath>

using namespace histocnn;
using namespace histocnn::pipeline;
using json = nlohmann::json;
namespace fs = std::filesystem;

TEST_CASE("Drift measures match hand-computed values", "[pipeline]") {
  CHECK(linf_distance({1, 3}, {2, 2}) == Approx(0.25));
  CHECK(linf_distance({5, 5}, {1, 1}) == 0.0);
  CHECK(jensen_shannon({1, 0}, {0, 1}) == Approx(1.0));
  CHECK(jensen_shannon({2, 2}, {1, 1}) == Approx(0.0).margin(1e-12));
  // p = (1, 0), q = (0.5, 0.5), m = (0.75, 0.25): JS = (log2(4/3) + 0.5 * (log2(2/3) + 1)) / 2.
  const double expected = 0.5 * (std::log2(1 / 0.75) + 0.5 * std::log2(0.5 / 0.75) + 0.5 * std::log2(0.5 / 0.25));
  CHECK(jensen_shannon({1, 0}, {1, 1}) == Approx(expected).epsilon(1e-12));
  CHECK_THROWS(jensen_shannon({1, 2}, {1}));
}

namespace {

// Synthetic patches plus a white patch, a copy of a training file in the test split, a file that
// does not decode and a patient in two splits: each thing the statistics must find.
struct Dataset {
  test::TempDir dir{"histocnn-pipeline-stats"};
  data::Manifest manifest;
  Dataset() {
    data::generate_synthetic(dir / "data", test::synthetic_options(4, 10));
    auto rows = data::scan_directory(dir / "data").manifest.rows();
    for (auto& r : rows) {
      r.split = r.patient == "90001" || r.patient == "90002" ? "train" : (r.patient == "90003" ? "val" : "test");
    }
    const fs::path root = dir / "data";
    io::write_png(root / "90001/0/90001_idx5_x2001_y2001_class0.png", cv::Mat(50, 50, CV_8UC3, cv::Scalar(250, 250, 250)));
    rows.push_back({"90001/0/90001_idx5_x2001_y2001_class0.png", "90001", 0, 2001, 2001, "train"});
    fs::copy_file(root / rows[0].path, root / "90004/0/90004_idx5_x3001_y3001_class0.png");
    rows.push_back({"90004/0/90004_idx5_x3001_y3001_class0.png", "90004", 0, 3001, 3001, "test"});
    io::write_file_atomic(root / "90004/1/90004_idx5_x4001_y4001_class1.png", "not an image");
    rows.push_back({"90004/1/90004_idx5_x4001_y4001_class1.png", "90004", 1, 4001, 4001, "test"});
    REQUIRE(rows[1].patient == "90001");
    rows[1].split = "val";  // patient 90001 in two splits
    manifest = data::Manifest(root, rows);
  }
};

}  // namespace

TEST_CASE("Statistics count what is there and agree with a direct computation", "[pipeline]") {
  Dataset d;
  const json s = json::parse(compute_statistics(d.manifest, 2));
  CHECK(s["patches"] == d.manifest.size());
  const auto& all = s["splits"]["all"];
  CHECK(all["patches"] == d.manifest.size());
  CHECK(all["class_counts"][0].get<int64_t>() + all["class_counts"][1].get<int64_t>() == int64_t(d.manifest.size()));
  CHECK(all["undecodable"] == 1);
  REQUIRE(s["undecodable"].size() == 1);
  CHECK(s["undecodable"][0]["path"] == "90004/1/90004_idx5_x4001_y4001_class1.png");
  CHECK(s["duplicates"]["across_splits"] == 1);
  REQUIRE(s["patients_in_several_splits"].size() == 1);
  CHECK(s["patients_in_several_splits"][0]["patient"] == "90001");
  CHECK(all["sizes"]["50x50"] == int64_t(d.manifest.size()) - 1);

  // The oracle: OpenCV over the decoded training images.
  const auto train = d.manifest.subset("train");
  cv::Scalar sum(0, 0, 0);
  double pixels = 0, background = 0;
  for (size_t i = 0; i < train.size(); ++i) {
    const cv::Mat rgb = io::read_image_rgb(train.absolute_path(i));
    const double n = static_cast<double>(rgb.total());
    sum += cv::mean(rgb) * n;
    pixels += n;
    cv::Mat white;
    cv::inRange(rgb, cv::Scalar(kBackgroundLevel, kBackgroundLevel, kBackgroundLevel), cv::Scalar(255, 255, 255), white);
    background += cv::countNonZero(white);
  }
  const auto& st = s["splits"]["train"];
  for (int c = 0; c < 3; ++c) CHECK(st["channel_mean"][c].get<double>() == Approx(sum[c] / pixels / 255.0).epsilon(1e-9));
  CHECK(st["background_fraction"].get<double>() == Approx(background / pixels).epsilon(1e-9));
  CHECK(st["background_fraction"].get<double>() > 0.0);
  double mass = 0;
  for (double v : st["intensity_histogram"][0].get<std::vector<double>>()) mass += v;
  CHECK(mass == Approx(1.0));
  // The same statistics do not drift from themselves.
  const std::string text = s.dump();
  const json self = json::parse(compare_statistics(text, text, "train", "train"));
  CHECK(self["label_linf"] == 0.0);
  CHECK(self["intensity_js_max"].get<double>() == Approx(0.0).margin(1e-12));
  CHECK(s["skew"].contains("test"));
}

TEST_CASE("The ExampleValidator stops on error-level anomalies and writes them all", "[pipeline]") {
  Dataset d;
  const fs::path out = d.dir / "artifacts";
  d.manifest.save_csv(out / "examples" / "manifest.csv");
  ComponentCall stats;
  stats.component = Component::statistics_gen;
  stats.inputs["examples"] = out / "examples";
  stats.outputs["statistics"] = out / "statistics";
  run_component(stats);
  CHECK(fs::exists(out / "statistics" / "statistics.png"));
  ComponentCall schema;
  schema.component = Component::schema_gen;
  schema.inputs["statistics"] = out / "statistics";
  schema.outputs["schema"] = out / "schema";
  run_component(schema);
  const json inferred = json::parse(io::read_file(out / "schema" / "schema.json"));
  CHECK(inferred["patient_id_pattern"] == "^[0-9]+$");
  CHECK(inferred["image"]["width"]["max"] == 50);

  ComponentCall validate;
  validate.component = Component::example_validator;
  validate.inputs = {{"statistics", out / "statistics"}, {"schema", out / "schema"}};
  validate.outputs["anomalies"] = out / "anomalies";
  CHECK_THROWS_AS(run_component(validate), AnomaliesFound);
  const json a = json::parse(io::read_file(out / "anomalies" / "anomalies.json"));
  std::set<std::string> kinds;
  for (const auto& x : a["anomalies"]) {
    if (x["severity"] == "error") kinds.insert(x["kind"].get<std::string>());
  }
  for (const char* kind : {"undecodable", "duplicates_across_splits", "patient_in_several_splits"}) {
    CHECK(kinds.count(kind));
  }
  CHECK_FALSE(kinds.count("wrong_size"));
  CHECK_FALSE(kinds.count("patient_id"));

  // A curated schema that allows only 60 px patches and other patient ids: wrong sizes and ids too.
  json curated = inferred;
  curated["image"]["width"] = {{"min", 60}, {"max", 60}};
  curated["patient_id_pattern"] = "^P[0-9]+$";
  io::write_file_atomic(d.dir / "curated.json", curated.dump());
  schema.config_json = json{{"schema_file", (d.dir / "curated.json").string()}}.dump();
  run_component(schema);
  CHECK(json::parse(io::read_file(out / "schema" / "schema.json"))["source"].get<std::string>().rfind("pinned", 0) == 0);
  try {
    run_component(validate);
    FAIL("no anomalies found");
  } catch (const AnomaliesFound& e) {
    CHECK(std::string(e.what()).find("wrong_size") != std::string::npos);
    CHECK(std::string(e.what()).find("patient_id") != std::string::npos);
  }
}

TEST_CASE("Drift against reference statistics is an anomaly at the configured severity", "[pipeline]") {
  test::TempDir dir("histocnn-pipeline-drift");
  data::generate_synthetic(dir / "data", test::synthetic_options(8, 20));
  const auto m = data::split_manifest(data::scan_directory(dir / "data").manifest, data::SplitOptions{});
  m.save_csv(dir / "examples" / "manifest.csv");
  ComponentCall stats{Component::statistics_gen, "{}", {{"examples", dir / "examples"}}, {{"statistics", dir / "stats"}}};
  run_component(stats);
  ComponentCall schema{Component::schema_gen, "{}", {{"statistics", dir / "stats"}}, {{"schema", dir / "schema"}}};
  run_component(schema);
  // The reference: the same data, as if its training split were all negatives on white glass.
  json reference = json::parse(io::read_file(dir / "stats" / "statistics.json"));
  reference["splits"]["train"]["class_counts"] = {100, 0};
  for (int c = 0; c < 3; ++c) {
    std::vector<double> h(kHistogramBins, 0.0);
    h.back() = 1.0;
    reference["splits"]["train"]["intensity_histogram"][c] = h;
  }
  io::write_file_atomic(dir / "reference.json", reference.dump());
  ComponentCall validate{Component::example_validator,
                         json{{"reference_statistics", (dir / "reference.json").string()}}.dump(),
                         {{"statistics", dir / "stats"}, {"schema", dir / "schema"}},
                         {{"anomalies", dir / "anomalies"}}};
  // The runner resolves the reference before running (as it does for the served version's).
  validate.config_json = resolve_runtime_config(Component::example_validator, validate.config_json, nullptr);
  CHECK_THROWS_WITH(run_component(validate), Catch::Contains("drift (train)") && Catch::Contains("L-infinity"));
  auto config = json::parse(validate.config_json);
  config["drift_severity"] = "warning";
  validate.config_json = config.dump();
  const auto r = run_component(validate);
  CHECK(r.properties.at("anomalies").at("errors") == "0");
  const json a = json::parse(io::read_file(dir / "anomalies" / "anomalies.json"));
  // All negatives against the data's own shares: the distance is the share of positives.
  const json own = json::parse(io::read_file(dir / "stats" / "statistics.json"));
  CHECK(a["drift"]["label_linf"].get<double>() ==
        Approx(own["splits"]["train"]["label_distribution"][1].get<double>()));
  CHECK(a["drift"]["intensity_js_max"].get<double>() > 0.5);
  // Without a reference the same data passes.
  ComponentCall plain{Component::example_validator, "{}", validate.inputs, {{"anomalies", dir / "anomalies2"}}};
  CHECK(run_component(plain).properties.at("anomalies").at("errors") == "0");
}
