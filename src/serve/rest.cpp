#include "histocnn/serve/rest.h"

#include "histocnn/core/error.h"
#include "histocnn/inference/explain.h"
#include "histocnn/io/atomic_file.h"
#include "histocnn/io/image.h"
#include "histocnn/serve/errors.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>

namespace histocnn::serve {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json error_body(const std::string& message) { return json{{"error", message}}; }

HttpResponse json_response(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

// A 200 answer from one model version, labelled with it (body and X-Model-Version header).
HttpResponse versioned_response(const json& body, const std::string& model, int64_t version) {
  auto r = json_response(200, body);
  r.model = model;
  r.version = std::to_string(version);
  r.headers["X-Model-Version"] = r.version;
  return r;
}

json version_status_json(const VersionStatus& s) {
  return {{"version", std::to_string(s.version)},
          {"state", state_name(s.state)},
          {"status", {{"error_code", s.error.empty() ? "OK" : "UNKNOWN"}, {"error_message", s.error}}}};
}

int64_t parse_version(const std::string& text) {
  HISTOCNN_CHECK(!text.empty() && text.size() <= 18 && text.find_first_not_of("0123456789") == std::string::npos,
                 "'{}' is not a version number", text);
  return std::stoll(text);
}

const char* content_type_of(const fs::path& p) {
  const auto ext = p.extension().string();
  if (ext == ".css") return "text/css";
  if (ext == ".js") return "application/javascript";
  if (ext == ".map") return "application/json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".woff2") return "font/woff2";
  return "application/octet-stream";
}

}  // namespace

RestApi::RestApi(ModelManager& models, Options options) : models_(models), options_(std::move(options)) {}

HttpResponse RestApi::handle(const HttpRequest& request) const {
  try {
    if (options_.limits.max_body_bytes > 0 && static_cast<int64_t>(request.body.size()) > options_.limits.max_body_bytes) {
      throw PayloadTooLarge(fmt::format("the request body is {} bytes, more than the limit of {}; send fewer or "
                                        "smaller images per request", request.body.size(),
                                        options_.limits.max_body_bytes));
    }
    return route(request);
  } catch (const std::invalid_argument& e) {
    return json_response(400, error_body(e.what()));
  } catch (const NotFound& e) {
    return json_response(404, error_body(e.what()));
  } catch (const PayloadTooLarge& e) {
    return json_response(413, error_body(e.what()));
  } catch (const Unauthorized& e) {
    return json_response(401, error_body(e.what()));
  } catch (const Unavailable& e) {
    return json_response(503, error_body(e.what()));
  } catch (const std::exception& e) {
    return json_response(500, error_body(fmt::format("internal error: {}", e.what())));
  }
}

HttpResponse RestApi::static_file(const std::string& relative) const {
  HISTOCNN_CHECK(relative.find("..") == std::string::npos && !relative.empty() && relative[0] != '/',
                 "bad static path '{}'", relative);
  const fs::path file = options_.static_dir / relative;
  if (!fs::is_regular_file(file)) throw NotFound(fmt::format("no static file '{}'", relative));
  HttpResponse r;
  r.body = io::read_file(file);
  r.content_type = content_type_of(file);
  r.headers["Cache-Control"] = "max-age=3600";
  return r;
}

HttpResponse RestApi::route(const HttpRequest& request) const {
  const std::string& path = request.path;
  const bool get = request.method == "GET" || request.method == "HEAD";
  if (get && path == "/healthz") return json_response(200, {{"status", "alive"}});
  if (get && path == "/readyz") {
    const bool ready = models_.ready();
    return json_response(ready ? 200 : 503, {{"status", ready ? "ready" : "no model version is AVAILABLE yet"}});
  }
  if (get && (path == "/" || path == "/index.html")) {
    HttpResponse r;
    r.body = options_.page_html;
    r.content_type = "text/html; charset=utf-8";
    r.headers["Cache-Control"] = "no-cache";
    return r;
  }
  const std::string static_prefix = "/static/bootstrap5/";
  if (get && path.rfind(static_prefix, 0) == 0) return static_file(path.substr(static_prefix.size()));
  if (get && path == "/monitoring/prometheus/metrics") {
    HttpResponse r;
    r.body = options_.metrics_text ? options_.metrics_text() : "";
    r.content_type = "text/plain; version=0.0.4";
    return r;
  }
  if (path.rfind("/v1/", 0) == 0 && !options_.api_key.empty()) {
    const std::string expected = "Bearer " + options_.api_key;
    // Compare every byte, so the time taken does not reveal how much of the key matched.
    unsigned char diff = request.authorization.size() == expected.size() ? 0 : 1;
    for (size_t i = 0; i < std::min(expected.size(), request.authorization.size()); ++i) {
      diff |= static_cast<unsigned char>(expected[i] ^ request.authorization[i]);
    }
    if (diff != 0) throw Unauthorized("missing or wrong API key: send \"Authorization: Bearer <key>\"");
  }
  if (get && path == "/v1/histocnn/models") {
    json models = json::array();
    for (const auto& name : models_.model_names()) {
      json versions = json::array();
      json default_version = nullptr;
      for (const auto& s : models_.status(name)) {
        versions.push_back({{"version", std::to_string(s.version)}, {"state", state_name(s.state)},
                            {"error_message", s.error}});
        if (s.state == VersionState::available) default_version = std::to_string(s.version);
      }
      json labels = json::object();
      for (const auto& [label, v] : models_.labels(name)) labels[label] = std::to_string(v);
      models.push_back({{"name", name}, {"default_version", default_version}, {"versions", versions}, {"labels", labels}});
    }
    return json_response(200, {{"models", models}});
  }
  const std::string model_prefix = "/v1/models/";
  if (path.rfind(model_prefix, 0) == 0) return model_request(request, path.substr(model_prefix.size()));
  throw NotFound(fmt::format("no such endpoint: {} {}; see docs/serving.md", request.method, path));
}

HttpResponse RestApi::model_request(const HttpRequest& request, const std::string& rest) const {
  std::string route = rest, verb;
  if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    route = rest.substr(0, colon);
    verb = rest.substr(colon + 1);
  }
  std::vector<std::string> parts;
  for (size_t start = 0; start <= route.size();) {
    const size_t slash = route.find('/', start);
    parts.push_back(route.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  HISTOCNN_CHECK(!parts.empty() && !parts[0].empty(), "the request names no model: /v1/models/<name>...");
  const std::string name = parts[0];
  std::optional<int64_t> version;
  std::optional<std::string> label;
  size_t next = 1;
  if (parts.size() >= 3 && parts[1] == "versions") {
    version = parse_version(parts[2]);
    next = 3;
  } else if (parts.size() >= 3 && parts[1] == "labels") {
    HISTOCNN_CHECK(!parts[2].empty(), "empty version label");
    label = parts[2];
    next = 3;
  }
  const bool metadata = parts.size() == next + 1 && parts[next] == "metadata";
  if (parts.size() != next && !metadata) {
    throw NotFound(fmt::format("no such endpoint: {} /v1/models/{}; see docs/serving.md", request.method, rest));
  }

  if (verb.empty()) {
    if (request.method != "GET") {
      throw NotFound(fmt::format("{} /v1/models/{} is not an endpoint; POST to :predict, :classify or :explain",
                                 request.method, rest));
    }
    if (metadata) {
      const auto loaded = models_.resolve(name, version, label);
      const auto& card = loaded->predictor->card();
      json card_json = json::parse(card.to_json());
      const int64_t size = card.preprocessing.image_size;
      json signature = {
          {"inputs", {{"image", {{"dtype", "DT_STRING"}, {"tensor_shape", {{"dim", {{{"size", "-1"}}}}}}, {"name", "image"}}}}},
          {"outputs", {{"probabilities", {{"dtype", "DT_FLOAT"},
                                          {"tensor_shape", {{"dim", {{{"size", "-1"}}, {{"size", "2"}}}}}},
                                          {"name", "probabilities"}}}}},
          {"method_name", "tensorflow/serving/predict"}};
      json body = {{"model_spec", {{"name", name}, {"signature_name", ""}, {"version", std::to_string(loaded->version)}}},
                   {"metadata",
                    {{"signature_def", {{"signature_def", {{"serving_default", signature}}}}},
                     {"model_card", card_json},
                     {"input", {{"image_size", size}, {"value_range", "RGB 0..255 (HxWx3 arrays) or b64 images"}}}}}};
      return versioned_response(body, name, loaded->version);
    }
    json statuses = json::array();
    if (version || label) {
      const int64_t v = version ? *version : models_.label_version(name, *label);
      for (const auto& s : models_.status(name)) {
        if (s.version == v) statuses.push_back(version_status_json(s));
      }
      if (statuses.empty()) throw NotFound(fmt::format("Could not find version {} of model {}", v, name));
    } else {
      for (const auto& s : models_.status(name)) statuses.push_back(version_status_json(s));
      if (statuses.empty()) throw NotFound(fmt::format("Could not find any versions of model {}", name));
    }
    return json_response(200, {{"model_version_status", statuses}});
  }

  if (request.method != "POST") {
    throw NotFound(fmt::format("{} is not an endpoint for :{}; use POST", request.method, verb));
  }
  HISTOCNN_CHECK(!metadata, "metadata takes GET, not :{}", verb);
  HISTOCNN_CHECK(verb == "predict" || verb == "classify" || verb == "explain",
                 "':{}' is not supported; use :predict, :classify or :explain", verb);
  const bool classify = verb == "classify";
  // The model first, so an unknown model is a 404 whatever the body holds.
  const auto loaded = models_.resolve(name, version, label);
  if (verb == "explain") return explain(request, *loaded);
  auto parsed = parse_instances(request.body, options_.limits, classify);
  const auto& predictor = *loaded->predictor;
  const auto probs = loaded->predict(predictor.prepare(parsed.images)).to(torch::kFloat64).contiguous();
  const auto* p = probs.data_ptr<double>();
  const int64_t n = probs.size(0), k = probs.size(1);
  json rows = json::array();
  for (int64_t i = 0; i < n; ++i) {
    json row = json::array();
    for (int64_t c = 0; c < k; ++c) {
      if (classify) {
        row.push_back(json::array({predictor.class_names()[static_cast<size_t>(c)], p[i * k + c]}));
      } else {
        row.push_back(p[i * k + c]);
      }
    }
    rows.push_back(std::move(row));
  }
  json body;
  if (classify) {
    body = {{"results", rows}};
  } else {
    body = parsed.columnar ? json{{"outputs", rows}} : json{{"predictions", rows}};
  }
  return versioned_response(body, name, loaded->version);
}

HttpResponse RestApi::explain(const HttpRequest& request, const LoadedVersion& loaded) const {
  const auto parsed = parse_explain_request(request.body, options_.limits);
  const auto& wanted = parsed.parameters;
  inference::ExplainOptions options;
  options.method = inference::parse_cam_method(wanted.method);
  options.target_class = wanted.target_class;
  options.layer = wanted.layer;
  const auto& predictor = *loaded.predictor;
  const auto& images = parsed.instances.images;
  const auto maps = loaded.explain(predictor.prepare(images), options);  // [n, h, w]: the layer's resolution
  const int64_t size = predictor.preprocessing().image_size;
  const auto full = inference::upsample_maps(maps, size, size);
  // Rows of numbers rounded to 4 decimals: enough for a map in [0, 1], and a quarter of the text.
  const auto rows_of = [](const torch::Tensor& map) {
    const auto m = map.to(torch::kFloat64).contiguous();
    const auto* v = m.data_ptr<double>();
    json rows = json::array();
    for (int64_t y = 0; y < m.size(0); ++y) {
      json row = json::array();
      for (int64_t x = 0; x < m.size(1); ++x) row.push_back(std::round(v[y * m.size(1) + x] * 1e4) / 1e4);
      rows.push_back(std::move(row));
    }
    return rows;
  };
  json explanations = json::array();
  for (size_t i = 0; i < images.size(); ++i) {
    const auto k = static_cast<int64_t>(i);
    json e = json::object();
    if (wanted.overlay) {
      // Under the map, the patch as the model saw it: padded with white when small.
      const auto overlay = inference::cam_overlay(predictor.preprocessing().pad(images[i]), full[k]);
      e["overlay"] = {{"b64", base64_encode(io::encode_png(overlay))}};
    }
    if (wanted.map) e["map"] = rows_of(full[k]);
    if (wanted.layer_map) e["layer_map"] = rows_of(maps[k]);
    explanations.push_back(std::move(e));
  }
  const std::string layer = options.layer.empty() ? predictor.model()->backbone()->feature_layer() : options.layer;
  return versioned_response({{"explanations", explanations},
                             {"method", core::choice_name(options.method)},
                             {"target_class", options.target_class},
                             {"layer", layer},
                             {"layer_size", {maps.size(1), maps.size(2)}}}, loaded.model, loaded.version);
}

}  // namespace histocnn::serve
