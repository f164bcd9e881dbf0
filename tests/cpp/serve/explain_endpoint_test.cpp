#include "test_prelude.h"

#include "histocnn/data/synthetic.h"
#include "histocnn/inference/explain.h"
#include "histocnn/inference/saved_model.h"
#include "histocnn/io/image.h"
#include "histocnn/serve/batcher.h"
#include "histocnn/serve/model_manager.h"
#include "histocnn/serve/request.h"
#include "histocnn/serve/rest.h"

#include "test_support.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <atomic>
#include <mutex>
#include <thread>

using namespace histocnn;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kSize = 32;

struct Served {
  test::TempDir dir{"histocnn-serve-explain"};
  fs::path base = dir / "idc";
  std::unique_ptr<serve::ModelManager> manager;
  std::unique_ptr<serve::RestApi> api;

  explicit Served(std::optional<serve::BatchingOptions> batching = std::nullopt) {
    torch::manual_seed(5);
    models::Classifier model(models::ClassifierOptions().backbone("simple_cnn").hidden1(16).hidden2(8));
    inference::ModelCard card;
    card.preprocessing.image_size = kSize;
    inference::save_model(model, card, base / "1");
    serve::ModelConfig m;
    m.name = "idc";
    m.base_path = base;
    serve::ServingConfig config;
    config.models.push_back(m);
    serve::ModelManagerOptions mo;
    mo.device = "cpu";
    mo.batching = batching;
    manager = std::make_unique<serve::ModelManager>(config, mo);
    manager->poll();
    api = std::make_unique<serve::RestApi>(*manager, serve::RestApi::Options{});
  }
  serve::HttpResponse post(const std::string& path, const std::string& body) const {
    return api->handle({"POST", path, body, ""});
  }
};

cv::Mat patch(int label, int seed) { return data::render_synthetic_patch(label, seed, data::SyntheticOptions{}); }

std::string body_of(const std::vector<cv::Mat>& images, const json& parameters = nullptr) {
  json j;
  j["instances"] = json::array();
  for (const auto& img : images) j["instances"].push_back({{"b64", serve::base64_encode(io::encode_png(img))}});
  if (!parameters.is_null()) j["parameters"] = parameters;
  return j.dump();
}

torch::Tensor tensor_of(const json& rows) {
  std::vector<float> values;
  for (const auto& row : rows) {
    for (const auto& v : row) values.push_back(v.get<float>());
  }
  return torch::tensor(values).view({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())});
}

}  // namespace

TEST_CASE("base64 encoding is RFC 4648's and decodes back", "[serve-explain]") {
  CHECK(serve::base64_encode("") == "");
  CHECK(serve::base64_encode("f") == "Zg==");
  CHECK(serve::base64_encode("fo") == "Zm8=");
  CHECK(serve::base64_encode("foobar") == "Zm9vYmFy");
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  CHECK(serve::base64_decode(serve::base64_encode(bytes)) == bytes);
}

TEST_CASE(":explain parameters are checked before any image is decoded", "[serve-explain]") {
  serve::RequestLimits limits;
  const std::string image = R"({"b64": ")" + serve::base64_encode(io::encode_png(patch(1, 1))) + R"("})";
  auto parsed = serve::parse_explain_request(R"({"instances": [)" + image + "]}", limits);
  CHECK(parsed.instances.images.size() == 1);
  CHECK(parsed.parameters.method == "gradcam");
  CHECK(parsed.parameters.overlay);
  CHECK_FALSE(parsed.parameters.map);
  parsed = serve::parse_explain_request(
      R"({"inputs": [)" + image + R"(], "parameters": {"method": "gradcam++", "target_class": 0, "layer": "features.4",
          "outputs": ["map", "layer_map"]}})", limits);
  CHECK(parsed.instances.columnar);
  CHECK(parsed.parameters.method == "gradcam++");
  CHECK(parsed.parameters.target_class == 0);
  CHECK(parsed.parameters.layer == "features.4");
  CHECK_FALSE(parsed.parameters.overlay);
  CHECK(parsed.parameters.map);
  CHECK(parsed.parameters.layer_map);
  const auto refused = [&](const std::string& parameters) {
    try {
      serve::parse_explain_request(R"({"instances": [{"b64": "not an image"}], "parameters": )" + parameters + "}",
                                   limits);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  CHECK_THAT(refused("[1]"), Catch::Contains("must be an object"));
  CHECK_THAT(refused(R"({"layers": "x"})"), Catch::Contains("unknown parameter 'layers'"));
  CHECK_THAT(refused(R"({"target_class": -1})"), Catch::Contains("class index"));
  CHECK_THAT(refused(R"({"target_class": 1.5})"), Catch::Contains("class index"));
  CHECK_THAT(refused(R"({"method": 3})"), Catch::Contains("must be a string"));
  CHECK_THAT(refused(R"({"outputs": []})"), Catch::Contains("non-empty list"));
  CHECK_THAT(refused(R"({"outputs": ["heatmap"]})"), Catch::Contains("'heatmap'"));
  CHECK_THAT(refused(R"({"layer": ")" + std::string(300, 'x') + R"("})"), Catch::Contains("longer than 256"));
  // A long name with multi-byte characters is cut on a character boundary for the message.
  std::string long_key;
  for (int i = 0; i < 40; ++i) long_key += "\xc3\xa9";  // é
  const auto message = refused(R"({")" + long_key + R"(": 1})");
  CHECK_NOTHROW(json(message).dump());
}

TEST_CASE("POST :explain answers overlays and maps that are inference::explain's", "[serve-explain]") {
  Served s;
  const std::vector<cv::Mat> images = {patch(1, 3), patch(0, 4)};
  inference::Predictor oracle(s.base / "1", "cpu");
  const auto expected = inference::explain(oracle, images);  // [2, 32, 32]

  auto r = s.post("/v1/models/idc:explain", body_of(images, {{"outputs", {"overlay", "map", "layer_map"}}}));
  REQUIRE(r.status == 200);
  CHECK(r.headers.at("X-Model-Version") == "1");
  const auto j = json::parse(r.body);
  CHECK(j["method"] == "gradcam");
  CHECK(j["layer"] == "features");
  CHECK(j["target_class"] == 1);
  CHECK(j["layer_size"] == json::array({4, 4}));  // simple_cnn: three 2x2 pools
  REQUIRE(j["explanations"].size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    const auto& e = j["explanations"][i];
    const auto overlay = io::decode_image_rgb(serve::base64_decode(e["overlay"]["b64"].get<std::string>()), "overlay");
    CHECK(overlay.rows == kSize);
    CHECK(overlay.cols == kSize + 2 + 4);  // the patch, a 2 px gap and a 4 px colour bar
    const auto drawn = inference::cam_overlay(images[i], expected[static_cast<int64_t>(i)]);
    CHECK(cv::norm(overlay, drawn, cv::NORM_INF) <= 2);
    const auto map = tensor_of(e["map"]);
    REQUIRE(map.sizes() == torch::IntArrayRef({kSize, kSize}));
    CHECK(torch::allclose(map, expected[static_cast<int64_t>(i)], 0, 1e-4 + 1e-6));
    const auto layer_map = tensor_of(e["layer_map"]);
    CHECK(layer_map.sizes() == torch::IntArrayRef({4, 4}));
  }

  // An earlier layer by name, Grad-CAM++, and the class 0 map.
  r = s.post("/v1/models/idc/versions/1:explain",
             body_of({images[0]}, {{"layer", "features.4"}, {"method", "gradcam++"}, {"target_class", 0},
                                   {"outputs", {"layer_map"}}}));
  REQUIRE(r.status == 200);
  const auto k = json::parse(r.body);
  CHECK(k["layer"] == "features.4");
  CHECK(k["layer_size"] == json::array({16, 16}));
  CHECK_FALSE(k["explanations"][0].contains("overlay"));
  inference::ExplainOptions o;
  o.layer = "features.4";
  o.method = inference::CamMethod::gradcam_plus_plus;
  o.target_class = 0;
  o.upsample = false;
  CHECK(torch::allclose(tensor_of(k["explanations"][0]["layer_map"]), inference::explain(oracle, {images[0]}, o)[0],
                        0, 1e-4 + 1e-6));
}

TEST_CASE(":explain refuses what it cannot answer with TF Serving's status codes", "[serve-explain]") {
  Served s;
  const auto body = body_of({patch(1, 3)});
  const auto error_of = [](const serve::HttpResponse& r) { return json::parse(r.body)["error"].get<std::string>(); };
  auto r = s.post("/v1/models/idc:explain", body_of({patch(1, 3)}, {{"layer", "feature.4"}}));
  CHECK(r.status == 400);
  CHECK_THAT(error_of(r), Catch::Contains("no layer 'feature.4'") && Catch::Contains("features.4"));
  r = s.post("/v1/models/idc:explain", body_of({patch(1, 3)}, {{"method", "lime"}}));
  CHECK(r.status == 400);
  CHECK_THAT(error_of(r), Catch::Contains("gradcam, gradcam++"));
  r = s.post("/v1/models/idc:explain", body_of({patch(1, 3)}, {{"target_class", 2}}));
  CHECK(r.status == 400);
  CHECK_THAT(error_of(r), Catch::Contains("target_class"));
  CHECK(s.post("/v1/models/nope:explain", body).status == 404);
  CHECK(s.post("/v1/models/idc/versions/7:explain", body).status == 404);
  CHECK(s.api->handle({"GET", "/v1/models/idc:explain", "", ""}).status == 404);
  CHECK(s.post("/v1/models/idc:explain", R"({"instances": []})").status == 400);
  CHECK(s.post("/v1/models/idc:explain", "{").status == 400);
}

TEST_CASE("Explanations share the batch queue with predictions, batched only with their own kind",
          "[serve-explain]") {
  // The batcher: rows of one kind run together, never with another kind's.
  serve::BatchingOptions b;
  b.max_batch_size = 16;
  b.batch_timeout_micros = 500000;  // all four are queued long before the first batch runs
  std::mutex mu;
  std::vector<std::pair<std::string, int64_t>> runs;
  serve::Batcher batcher(
      [&](const torch::Tensor& x) {
        std::lock_guard<std::mutex> lock(mu);
        runs.emplace_back("predict", x.size(0));
        return x;
      },
      b);
  const auto other = [&](const std::string& kind) {
    return [&, kind](const torch::Tensor& x) {
      std::lock_guard<std::mutex> lock(mu);
      runs.emplace_back(kind, x.size(0));
      return x * 10;
    };
  };
  auto a = batcher.submit(torch::ones({2, 1}), "explain/a", other("explain/a"));
  auto a2 = batcher.submit(torch::ones({3, 1}), "explain/a", other("explain/a"));
  auto p = batcher.submit(torch::ones({1, 1}));
  auto c = batcher.submit(torch::ones({1, 1}), "explain/b", other("explain/b"));
  CHECK(a.get().sum().item<double>() == 20);
  CHECK(a2.get().sum().item<double>() == 30);
  CHECK(p.get().sum().item<double>() == 1);
  CHECK(c.get().sum().item<double>() == 10);
  CHECK(runs == std::vector<std::pair<std::string, int64_t>>{{"explain/a", 5}, {"predict", 1}, {"explain/b", 1}});
  CHECK_THROWS_AS(batcher.submit(torch::ones({1, 1}), "", other("x")), std::invalid_argument);

  // Over the REST API with batching on: concurrent explanations and predictions all answer, the
  // explanations as an unbatched server gives them.
  serve::BatchingOptions rest_batching;
  rest_batching.max_batch_size = 4;
  rest_batching.batch_timeout_micros = 20000;
  Served batched(rest_batching);
  Served plain;
  const auto explain_body = body_of({patch(1, 9)}, {{"outputs", {"map"}}});
  const auto expected = tensor_of(json::parse(plain.post("/v1/models/idc:explain", explain_body).body)["explanations"][0]["map"]);
  std::atomic<int> wrong{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 3; ++i) {
        if (t % 2 == 0) {
          const auto r = batched.post("/v1/models/idc:explain", explain_body);
          if (r.status != 200 ||
              !torch::allclose(tensor_of(json::parse(r.body)["explanations"][0]["map"]), expected, 0, 2e-4)) {
            ++wrong;
          }
        } else if (batched.post("/v1/models/idc:predict", body_of({patch(0, i)})).status != 200) {
          ++wrong;
        }
      }
    });
  }
  for (auto& client : clients) client.join();
  CHECK(wrong == 0);
}
