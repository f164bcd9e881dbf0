#include "histocnn/inference/saved_model.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/bundle.h"
#include "histocnn/io/image.h"
#include "histocnn/serve/batcher.h"
#include "histocnn/serve/errors.h"
#include "histocnn/serve/model_manager.h"
#include "histocnn/serve/rest.h"
#include "histocnn/serve/server.h"
#include "histocnn/serve/versions.h"

#include "test_support.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <torch/torch.h>

#include <atomic>
#include <thread>

using namespace histocnn;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A small real model bundle: simple_cnn with seeded random weights, 32 px input.
void write_version(const fs::path& base, int64_t version, uint64_t seed, double threshold = 0.5) {
  torch::manual_seed(seed);
  models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").hidden1(16).hidden2(8));
  inference::ModelCard card;
  card.preprocessing.image_size = 32;
  card.threshold = threshold;
  card.metrics_json = R"({"test": {"roc_auc": 0.875}})";
  inference::save_model(model, card, base / std::to_string(version));
}

std::string base64(const std::string& bytes) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t n = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    out += {a[n >> 18], a[(n >> 12) & 63], a[(n >> 6) & 63], a[n & 63]};
  }
  if (i + 1 == bytes.size()) {
    const uint32_t n = uint8_t(bytes[i]) << 16;
    out += {a[n >> 18], a[(n >> 12) & 63], '=', '='};
  } else if (i + 2 == bytes.size()) {
    const uint32_t n = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8);
    out += {a[n >> 18], a[(n >> 12) & 63], a[(n >> 6) & 63], '='};
  }
  return out;
}

cv::Mat patch(int label, int seed) { return data::render_synthetic_patch(label, seed, data::SyntheticOptions{}); }

std::string b64_instance(const cv::Mat& rgb) { return json{{"b64", base64(io::encode_png(rgb))}}.dump(); }

struct Fixture {
  test::TempDir dir{"histocnn-serve"};
  fs::path base = dir / "idc";
  std::unique_ptr<serve::ModelManager> manager;
  std::unique_ptr<serve::RestApi> api;

  explicit Fixture(std::optional<serve::BatchingOptions> batching = std::nullopt,
                   serve::VersionPolicy::Kind policy = serve::VersionPolicy::Kind::all) {
    write_version(base, 1, 11, 0.4);
    write_version(base, 2, 22, 0.6);
    serve::ModelConfig m;
    m.name = "idc";
    m.base_path = base;
    m.policy.kind = policy;
    serve::ServingConfig config;
    config.models.push_back(m);
    serve::ModelManagerOptions mo;
    mo.device = "cpu";
    mo.batching = batching;
    manager = std::make_unique<serve::ModelManager>(config, mo);
    manager->poll();
    serve::RestApi::Options ro;
    ro.page_html = "<html>page</html>";
    api = std::make_unique<serve::RestApi>(*manager, ro);
  }
  serve::HttpResponse get(const std::string& path) const { return api->handle({"GET", path, "", ""}); }
  serve::HttpResponse post(const std::string& path, const std::string& body) const {
    return api->handle({"POST", path, body, ""});
  }
};

// The probabilities of a version computed without the server: the oracle.
torch::Tensor direct(const fs::path& version_dir, const std::vector<cv::Mat>& images) {
  inference::Predictor p(version_dir, "cpu");
  return p.predict_proba(images);
}

}  // namespace

TEST_CASE("base64 decoding follows RFC 4648 and says when the text is not base64", "[serve]") {
  CHECK(serve::base64_decode("aGlzdG9jbm4=") == "histocnn");
  CHECK(serve::base64_decode("aGlzdG9jbm4") == "histocnn");  // padding optional
  CHECK(serve::base64_decode("aGlz\ndG9j bm4=") == "histocnn");
  CHECK(serve::base64_decode("") == "");
  const std::string all = [] { std::string s; for (int i = 0; i < 256; ++i) s.push_back(char(i)); return s; }();
  CHECK(serve::base64_decode(base64(all)) == all);
  CHECK_THROWS_WITH(serve::base64_decode("aGl*"), Catch::Contains("Unable to base64 decode"));
  CHECK_THROWS_WITH(serve::base64_decode("aGlzd"), Catch::Contains("Unable to base64 decode"));
  CHECK_THROWS_WITH(serve::base64_decode("aG=l"), Catch::Contains("Unable to base64 decode"));
}

TEST_CASE("Image headers give the size before decoding; a huge image is refused without allocating it", "[serve][io]") {
  const cv::Mat img(7, 13, CV_8UC3, cv::Scalar(10, 20, 30));
  auto png = io::encode_png(img);
  auto h = io::image_header(png);
  REQUIRE(h);
  CHECK(h->format == "png");
  CHECK(h->width == 13);
  CHECK(h->height == 7);
  for (const char* ext : {".jpg", ".bmp", ".tiff"}) {
    std::vector<uchar> buf;
    REQUIRE(cv::imencode(ext, img, buf));
    auto hh = io::image_header(std::string(buf.begin(), buf.end()));
    REQUIRE(hh);
    CHECK(hh->width == 13);
    CHECK(hh->height == 7);
  }
  CHECK_FALSE(io::image_header("GIF89a...."));
  CHECK_FALSE(io::image_header(png.substr(0, 20)));
  // A PNG header declaring 30,000 x 30,000 pixels (2.7 GB decoded) in a few bytes.
  std::string bomb = png;
  const uint32_t side = 30000;
  for (int k = 0; k < 4; ++k) bomb[16 + k] = bomb[20 + k] = char((side >> (24 - 8 * k)) & 0xff);
  CHECK_THROWS_WITH(io::decode_image_rgb(bomb, "bomb.png", 4096 * 4096),
                    Catch::Contains("30000x30000") && Catch::Contains("limit"));
  CHECK(io::decode_image_rgb(png, "ok.png", 4096 * 4096).size() == img.size());
}

TEST_CASE("The REST API answers TF Serving's status, metadata, predict and classify", "[serve]") {
  Fixture f;
  // Status: every version, as strings, AVAILABLE.
  auto status = f.get("/v1/models/idc");
  REQUIRE(status.status == 200);
  auto s = json::parse(status.body);
  REQUIRE(s["model_version_status"].size() == 2);
  CHECK(s["model_version_status"][1] ==
        json::parse(R"({"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}})"));
  CHECK(json::parse(f.get("/v1/models/idc/versions/1").body)["model_version_status"].size() == 1);

  // Metadata: the model card of the version asked for.
  auto meta = json::parse(f.get("/v1/models/idc/versions/1/metadata").body);
  CHECK(meta["model_spec"]["name"] == "idc");
  CHECK(meta["model_spec"]["version"] == "1");
  CHECK(meta["metadata"]["model_card"]["threshold"] == 0.4);
  CHECK(meta["metadata"]["model_card"]["preprocessing"]["image_size"] == 32);
  CHECK(meta["metadata"]["signature_def"]["signature_def"].contains("serving_default"));

  // Predict, row format: the newest version, the same numbers as the model run directly.
  std::vector<cv::Mat> images = {patch(0, 1), patch(1, 2), patch(1, 3)};
  std::string body = R"({"instances": [)" + b64_instance(images[0]) + "," + b64_instance(images[1]) + "," +
                     b64_instance(images[2]) + "]}";
  auto r = f.post("/v1/models/idc:predict", body);
  REQUIRE(r.status == 200);
  CHECK(r.headers.at("X-Model-Version") == "2");
  auto pred = json::parse(r.body)["predictions"];
  REQUIRE(pred.size() == 3);
  const auto expected2 = direct(f.base / "2", images), expected1 = direct(f.base / "1", images);
  for (int i = 0; i < 3; ++i) {
    CHECK(pred[i].size() == 2);
    CHECK(pred[i][1].get<double>() == Approx(expected2[i][1].item<double>()).margin(1e-6));
  }
  // A pinned version answers with its own weights.
  auto r1 = f.post("/v1/models/idc/versions/1:predict", body);
  CHECK(r1.headers.at("X-Model-Version") == "1");
  CHECK(json::parse(r1.body)["predictions"][0][1].get<double>() ==
        Approx(expected1[0][1].item<double>()).margin(1e-6));
  CHECK(std::abs(expected1[0][1].item<double>() - expected2[0][1].item<double>()) > 1e-4);

  // Columnar, and an HxWx3 array of 0..255 values.
  json array = json::array();
  for (int y = 0; y < images[0].rows; ++y) {
    json row = json::array();
    for (int x = 0; x < images[0].cols; ++x) {
      auto px = images[0].at<cv::Vec3b>(y, x);
      row.push_back({px[0], px[1], px[2]});
    }
    array.push_back(row);
  }
  auto col = json::parse(f.post("/v1/models/idc:predict", json{{"inputs", {array}}}.dump()).body);
  REQUIRE(col.contains("outputs"));
  CHECK(col["outputs"][0][1].get<double>() == Approx(expected2[0][1].item<double>()).margin(1e-6));

  // Classify: TF Serving's "results" with class names.
  auto cls = json::parse(f.post("/v1/models/idc:classify", body).body);
  CHECK(cls["results"][0][0][0] == "IDC-negative");
  CHECK(cls["results"][0][1][0] == "IDC-positive");
  CHECK(cls["results"][0][1][1].get<double>() == Approx(expected2[0][1].item<double>()).margin(1e-6));

  // The page, health and readiness.
  auto page = f.get("/");
  CHECK(page.status == 200);
  CHECK(page.content_type.find("text/html") == 0);
  CHECK(f.get("/healthz").status == 200);
  CHECK(f.get("/readyz").status == 200);
  auto listing = json::parse(f.get("/v1/histocnn/models").body);
  CHECK(listing["models"][0]["default_version"] == "2");
}

TEST_CASE("Every bad request gets TF Serving's status code and a message that says what to fix", "[serve]") {
  Fixture f;
  const auto ok = b64_instance(patch(1, 5));
  struct Case {
    std::string path, body;
    int status;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"/v1/models/idc:predict", "{not json", 400, "JSON Parse error"},
      {"/v1/models/idc:predict", "[1, 2]", 400, "JSON object"},
      // Found by the fuzzer: a number too large for a double is a parse error (400), not a bug (500).
      {"/v1/models/idc:predict", R"({"instances": [[[[1, 2, 5e5555]]]]})", 400, "JSON Parse error"},
      {"/v1/models/idc:predict", R"({"instances": [], "inputs": []})", 400, "only one of"},
      {"/v1/models/idc:predict", R"({"images": []})", 400, "Missing \"instances\""},
      {"/v1/models/idc:predict", R"({"instances": []})", 400, "is empty"},
      {"/v1/models/idc:predict", R"({"instances": [{"b64": "***"}]})", 400, "Unable to base64 decode"},
      {"/v1/models/idc:predict", R"({"instances": [{"b64": "aGVsbG8gd29ybGQ="}]})", 400, "instance 0"},
      {"/v1/models/idc:predict", R"({"instances": [[[1, 2]]]})", 400, "[R, G, B]"},
      {"/v1/models/idc:predict", R"({"instances": [[[[1, 2, 300]]]]})", 400, "0..255"},
      {"/v1/models/idc:predict", R"({"instances": [[[[1, 2, 3]], [[1, 2, 3], [4, 5, 6]]]]})", 400, "row"},
      {"/v1/models/idc:predict", R"({"signature_name": "other", "instances": [)" + ok + "]}", 400, "signature"},
      {"/v1/models/idc/labels/nope:predict", R"({"instances": [)" + ok + "]}", 400, "Unrecognized servable version label"},
      {"/v1/models/idc:regress", R"({"instances": [)" + ok + "]}", 400, ":predict, :classify or :explain"},
      {"/v1/models/other:predict", R"({"instances": [)" + ok + "]}", 404, "Servable not found"},
      {"/v1/models/idc/versions/7:predict", R"({"instances": [)" + ok + "]}", 404, "Specific(idc, 7)"},
      {"/v1/models/idc/versions/x:predict", R"({"instances": [)" + ok + "]}", 400, "not a version number"},
      {"/v1/nothing", "", 404, "no such endpoint"},
  };
  for (const auto& c : cases) {
    INFO(c.path << " " << c.body.substr(0, 80));
    auto r = f.post(c.path, c.body);
    CHECK(r.status == c.status);
    auto j = json::parse(r.body);
    REQUIRE(j.contains("error"));
    CHECK_THAT(j["error"].get<std::string>(), Catch::Contains(c.message));
  }
  CHECK(f.get("/v1/models/other").status == 404);
  CHECK(f.get("/v1/models/idc/versions/9").status == 404);

  // Limits: body size (413), images per request, pixels from the header.
  serve::RestApi::Options small;
  small.limits.max_body_bytes = 100;
  small.limits.max_instances = 2;
  small.limits.max_image_pixels = 30 * 30;
  serve::RestApi limited(*f.manager, small);
  CHECK(limited.handle({"POST", "/v1/models/idc:predict", std::string(101, ' '), ""}).status == 413);
  serve::RestApi::Options few;
  few.limits.max_instances = 2;
  few.limits.max_image_pixels = 30 * 30;
  serve::RestApi limited2(*f.manager, few);
  auto three = limited2.handle({"POST", "/v1/models/idc:predict", R"({"instances": [)" + ok + "," + ok + "," + ok + "]}", ""});
  CHECK(three.status == 400);
  CHECK_THAT(three.body, Catch::Contains("limit of 2"));
  auto big = limited2.handle({"POST", "/v1/models/idc:predict", R"({"instances": [)" + ok + "]}", ""});
  CHECK(big.status == 400);  // 50 x 50 > 900 pixels
  CHECK_THAT(big.body, Catch::Contains("50x50"));

  // The API key.
  serve::RestApi::Options keyed;
  keyed.api_key = "s3cret";
  serve::RestApi secured(*f.manager, keyed);
  CHECK(secured.handle({"GET", "/v1/models/idc", "", ""}).status == 401);
  CHECK(secured.handle({"GET", "/v1/models/idc", "", "Bearer wrong!"}).status == 401);
  CHECK(secured.handle({"GET", "/v1/models/idc", "", "Bearer s3cret"}).status == 200);
  CHECK(secured.handle({"GET", "/healthz", "", ""}).status == 200);
}

TEST_CASE("A broken new version never replaces a working one; policies and labels pick versions", "[serve]") {
  Fixture f(std::nullopt, serve::VersionPolicy::Kind::latest);
  CHECK(f.manager->resolve("idc", std::nullopt, std::nullopt)->version == 2);
  // Version 3: model.json present but weights corrupt.
  fs::create_directories(f.base / "3");
  io::write_file_atomic(f.base / "3" / "model.safetensors", "garbage");
  io::write_file_atomic(f.base / "3" / "model.json", io::read_file(f.base / "2" / "model.json"));
  f.manager->poll();
  CHECK(f.manager->resolve("idc", std::nullopt, std::nullopt)->version == 2);
  // The latest policy serves one version: 1 was never loaded, 2 serves, 3 shows its error.
  auto status = f.manager->status("idc");
  REQUIRE(status.size() == 2);
  CHECK(status[0].version == 2);
  CHECK(status[0].state == serve::VersionState::available);
  CHECK(status[1].state == serve::VersionState::end);
  CHECK_FALSE(status[1].error.empty());
  auto j = json::parse(f.get("/v1/models/idc/versions/3").body);
  CHECK(j["model_version_status"][0]["state"] == "END");
  CHECK(j["model_version_status"][0]["status"]["error_message"].get<std::string>().size() > 0);

  // Fixed in place (a new model.json): loaded at the next poll, and served.
  fs::remove_all(f.base / "3");
  write_version(f.base, 3, 33);
  f.manager->poll();
  CHECK(f.manager->resolve("idc", std::nullopt, std::nullopt)->version == 3);

  // Rollback through the policy file, labels, and unpinning.
  serve::pin_version(f.base, 1);
  serve::ServerOptions so;
  so.model_base_path = f.base;
  so.model_name = "idc";
  f.manager->set_config(serve::serving_config(so));
  f.manager->poll();
  CHECK(f.manager->resolve("idc", std::nullopt, std::nullopt)->version == 1);
  CHECK_THROWS_AS(f.manager->resolve("idc", 3, std::nullopt), serve::NotFound);
  serve::set_label(f.base, "canary", 3);
  f.manager->set_config(serve::serving_config(so));
  f.manager->poll();
  CHECK(f.manager->resolve("idc", std::nullopt, std::string("canary"))->version == 3);
  serve::unpin(f.base);
  f.manager->set_config(serve::serving_config(so));
  f.manager->poll();
  CHECK(f.manager->resolve("idc", std::nullopt, std::nullopt)->version == 3);
  CHECK_THROWS_WITH(serve::pin_version(f.base, 9), Catch::Contains("no complete version 9"));

  // A version in use survives unloading until its requests finish.
  serve::pin_version(f.base, 1);
  f.manager->set_config(serve::serving_config(so));
  f.manager->poll();
  auto held = f.manager->resolve("idc", 1, std::nullopt);
  serve::pin_version(f.base, 3);
  f.manager->set_config(serve::serving_config(so));
  f.manager->poll();
  CHECK_THROWS_AS(f.manager->resolve("idc", 1, std::nullopt), serve::NotFound);
  CHECK(held->predictor->predict({patch(0, 9)}).size() == 1);

  // Push: the next version number, complete on arrival.
  const auto v = serve::push_bundle(f.base / "2", f.base);
  CHECK(v == 4);
  CHECK(io::list_versions(f.base).back() == 4);
  auto listing = serve::list_served_versions(f.base);
  REQUIRE(listing.size() == 4);
  CHECK(listing[2].live);  // 3 is pinned
  CHECK(*listing[0].test_auc == 0.875);
}

TEST_CASE("Batching gives the same answers as single requests, and a full queue answers at once", "[serve]") {
  serve::BatchingOptions b;
  b.max_batch_size = 8;
  b.batch_timeout_micros = 20000;
  Fixture batched(b);
  Fixture plain;
  const auto body = R"({"instances": [)" + b64_instance(patch(1, 7)) + "]}";
  const auto expected = json::parse(plain.post("/v1/models/idc:predict", body).body)["predictions"][0][1].get<double>();
  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 6; ++t) {
    clients.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto r = batched.post("/v1/models/idc:predict", body);
        if (r.status != 200 ||
            std::abs(json::parse(r.body)["predictions"][0][1].get<double>() - expected) > 1e-5) {
          ++wrong;
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  CHECK(wrong == 0);

  // A queue of one batch of 2 rows: a third row waiting is refused with Unavailable (503).
  std::promise<void> release;
  auto gate = release.get_future().share();
  serve::BatchingOptions tiny;
  tiny.max_batch_size = 2;
  tiny.max_enqueued_batches = 1;
  tiny.batch_timeout_micros = 0;
  serve::Batcher batcher([gate](const torch::Tensor& x) { gate.wait(); return x * 2; }, tiny);
  auto first = batcher.submit(torch::ones({2, 1}));  // taken by the batch thread, which then waits
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  auto second = batcher.submit(torch::ones({2, 1}));  // fills the queue
  CHECK_THROWS_AS(batcher.submit(torch::ones({1, 1})), serve::Unavailable);
  // A request the whole queue cannot hold is the client's to change (400), not a "retry" (503).
  CHECK_THROWS_WITH(batcher.submit(torch::ones({3, 1})), Catch::Contains("more than the batch queue holds (2"));
  release.set_value();
  CHECK(first.get().sum().item<double>() == 4);
  CHECK(second.get().sum().item<double>() == 4);
}

TEST_CASE("The model config file is TF Serving's ModelServerConfig in JSON", "[serve]") {
  auto c = serve::parse_model_config(R"({"model_config_list": {"config": [
      {"name": "idc", "base_path": "m/idc", "model_platform": "tensorflow",
       "model_version_policy": {"specific": {"versions": ["2", 3]}}, "version_labels": {"stable": "2"}},
      {"name": "other", "base_path": "/abs", "model_version_policy": {"all": {}}}]}})", "test.json", "/root");
  REQUIRE(c.models.size() == 2);
  CHECK(c.models[0].base_path == fs::path("/root/m/idc"));
  CHECK(c.models[0].policy.kind == serve::VersionPolicy::Kind::specific);
  CHECK(c.models[0].policy.versions == std::vector<int64_t>{2, 3});
  CHECK(c.models[0].labels.at("stable") == 2);
  CHECK(c.models[1].policy.kind == serve::VersionPolicy::Kind::all);
  auto back = serve::parse_model_config(serve::to_json(c), "again");
  CHECK(back.models[0].policy.versions == c.models[0].policy.versions);
  CHECK_THROWS_WITH(serve::parse_model_config(R"({"model_config_list": {"config": [{"name": "a", "base_path": "x", "colour": 1}]}})", "f.json"),
                    Catch::Contains("unknown field 'colour'"));
  CHECK_THROWS_WITH(serve::parse_model_config(R"({"model_config_list": {"config": [{"name": "a", "base_path": "x"}, {"name": "a", "base_path": "y"}]}})", "f.json"),
                    Catch::Contains("twice"));
}
