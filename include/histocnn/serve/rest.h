#pragma once
// TensorFlow Serving's REST API over a ModelManager, as plain functions of a request: the HTTP
// server (serve/server.h) only moves bytes, so this is what the tests and the fuzzer drive.
//
//   histocnn::serve::RestApi api(manager, limits);
//   auto response = api.handle({"POST", "/v1/models/idc:predict", R"({"instances": [{"b64": "..."}]})"});
//   // response.status == 200, response.body == {"predictions": [[0.93, 0.07]]}
//   api.handle({"POST", "/v1/models/idc:explain", R"({"instances": [{"b64": "..."}]})"});
//   // {"explanations": [{"overlay": {"b64": "<PNG>"}}], "method": "gradcam", "layer": "features", ...}
//
// The contract, with examples, is docs/serving.md.
#include "histocnn/serve/model_manager.h"
#include "histocnn/serve/request.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace histocnn::serve {

struct HttpRequest {
  std::string method;  ///< GET, POST, ...
  std::string path;    ///< without the query string
  std::string body;
  std::string authorization;  ///< the Authorization header ("" when absent)
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::map<std::string, std::string> headers;
  /// For metrics and logs: the model and version that answered ("" when none).
  std::string model, version;
};

class RestApi {
 public:
  struct Options {
    RequestLimits limits;
    std::string api_key;        ///< non-empty: /v1/ requests need "Authorization: Bearer <key>"
    std::string page_html;      ///< served at /
    std::filesystem::path static_dir = "/usr/share/javascript/bootstrap5";  ///< served at /static/bootstrap5/
    /// Prometheus text for /monitoring/prometheus/metrics.
    std::function<std::string()> metrics_text;
  };

  RestApi(ModelManager& models, Options options);
  /// Answers one request; never throws (a bug answers 500 with its message).
  HttpResponse handle(const HttpRequest& request) const;

 private:
  HttpResponse route(const HttpRequest& request) const;
  HttpResponse model_request(const HttpRequest& request, const std::string& rest) const;
  HttpResponse explain(const HttpRequest& request, const LoadedVersion& loaded) const;
  HttpResponse static_file(const std::string& relative) const;

  ModelManager& models_;
  Options options_;
};

}  // namespace histocnn::serve
