#include "histocnn/serve/server.h"

#include "histocnn/core/device.h"
#include "histocnn/core/error.h"
#include "histocnn/core/log.h"
#include "histocnn/io/atomic_file.h"
#include "page.h"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <thread>

namespace histocnn::serve {

namespace fs = std::filesystem;

void ServerOptions::validate() const {
  HISTOCNN_CHECK(model_base_path.empty() != model_config_file.empty(),
                 "give either --model-base-path (one model) or --model-config-file (several), not {}",
                 model_base_path.empty() ? "neither" : "both");
  HISTOCNN_CHECK(port >= 0 && port <= 65535, "port must be in 0..65535, got {}", port);
  HISTOCNN_CHECK(file_system_poll_wait_seconds > 0, "file_system_poll_wait_seconds must be > 0, got {}",
                 file_system_poll_wait_seconds);
  HISTOCNN_CHECK(request_timeout_seconds > 0, "request_timeout_seconds must be > 0, got {}", request_timeout_seconds);
  HISTOCNN_CHECK(http_threads >= 1, "http_threads must be >= 1, got {}", http_threads);
  HISTOCNN_CHECK(limits.max_body_bytes >= 1 && limits.max_instances >= 1 && limits.max_image_pixels >= 1,
                 "request limits must be positive");
  if (batching) batching->validate();
}

ServingConfig serving_config(const ServerOptions& options) {
  if (!options.model_config_file.empty()) return load_model_config(options.model_config_file);
  HISTOCNN_CHECK_FOUND(fs::exists(options.model_base_path), "model base path '{}' does not exist; pass the folder "
                       "that holds numeric version folders (1/, 2/, ...), e.g. a run's model/ folder",
                       options.model_base_path.string());
  HISTOCNN_CHECK(fs::is_directory(options.model_base_path),
                 "model base path '{}' is not a folder; it should hold numeric version folders (1/, 2/, ...) "
                 "with model.json and model.safetensors, e.g. a run's model/ folder",
                 options.model_base_path.string());
  nlohmann::json entry = {{"name", options.model_name}, {"base_path", fs::absolute(options.model_base_path).string()}};
  const fs::path policy = options.model_base_path / kPolicyFileName;
  if (fs::exists(policy)) {
    nlohmann::json p;
    try {
      p = nlohmann::json::parse(io::read_file(policy));
    } catch (const std::exception& e) {
      HISTOCNN_FAIL("'{}' is not valid JSON ({})", policy.string(), e.what());
    }
    HISTOCNN_CHECK(p.is_object(), "'{}' must be an object with model_version_policy and version_labels",
                   policy.string());
    for (const auto& [key, value] : p.items()) entry[key] = value;
  }
  return parse_model_config(nlohmann::json{{"model_config_list", {{"config", {entry}}}}}.dump(), policy.string());
}

namespace {

std::optional<fs::file_time_type> mtime(const fs::path& p) {
  std::error_code ec;
  auto t = fs::last_write_time(p, ec);
  if (ec) return std::nullopt;
  return t;
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
  prometheus::Family<prometheus::Counter>& requests =
      prometheus::BuildCounter().Name("histocnn_requests_total").Help("Requests by model, version, endpoint and HTTP status").Register(*registry);
  prometheus::Family<prometheus::Histogram>& latency =
      prometheus::BuildHistogram().Name("histocnn_request_latency_seconds").Help("Time from request to answer, by endpoint").Register(*registry);
  prometheus::Histogram& batch_sizes =
      prometheus::BuildHistogram().Name("histocnn_batch_size").Help("Patches per batch run through a model").Register(*registry)
          .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128});
  prometheus::Gauge& queue_depth =
      prometheus::BuildGauge().Name("histocnn_queue_depth").Help("Patches waiting in batch queues").Register(*registry).Add({});
  prometheus::Family<prometheus::Counter>& loads =
      prometheus::BuildCounter().Name("histocnn_model_loads_total").Help("Model version load attempts by result").Register(*registry);

  std::unique_ptr<ModelManager> manager;
  std::unique_ptr<RestApi> api;
  httplib::Server http;
  std::thread listener, poller;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;  ///< set once, by stop()
  std::optional<fs::file_time_type> config_time;

  fs::path config_path() const {
    return options.model_config_file.empty() ? options.model_base_path / kPolicyFileName : options.model_config_file;
  }

  static std::string endpoint_of(const std::string& method, const std::string& path) {
    if (path.rfind("/v1/models/", 0) == 0) {
      auto colon = path.rfind(':');
      if (colon != std::string::npos && method == "POST") return path.substr(colon + 1);
      return path.size() >= 9 && path.compare(path.size() - 9, 9, "/metadata") == 0 ? "metadata" : "status";
    }
    if (path == "/" || path.rfind("/static/", 0) == 0) return "page";
    return path.substr(1);
  }
};

Server::Server(ServerOptions options) : options_(std::move(options)) { options_.validate(); }

Server::~Server() { stop(); }

std::string Server::url() const { return fmt::format("http://{}:{}", options_.host, port_); }

void Server::start() {
  HISTOCNN_CHECK(!impl_, "the server is already started");
  configure_threads();
  impl_ = std::make_unique<Impl>();
  Impl& s = *impl_;
  s.options = options_;
  ModelManagerOptions mo;
  mo.device = options_.device;
  mo.batching = options_.batching;
  mo.on_load = [&s](const std::string& model, int64_t version, bool ok, const std::string&) {
    s.loads.Add({{"model", model}, {"version", std::to_string(version)}, {"result", ok ? "ok" : "error"}}).Increment();
  };
  mo.on_batch = [&s](int64_t rows) { s.batch_sizes.Observe(static_cast<double>(rows)); };
  s.config_time = mtime(s.config_path());
  s.manager = std::make_unique<ModelManager>(serving_config(options_), mo);
  s.manager->poll();

  RestApi::Options ro;
  ro.limits = options_.limits;
  ro.api_key = options_.api_key;
  ro.page_html = upload_page_html();
  ro.metrics_text = [&s] {
    s.queue_depth.Set(static_cast<double>(s.manager->queued_rows()));
    return prometheus::TextSerializer().Serialize(s.registry->Collect());
  };
  s.api = std::make_unique<RestApi>(*s.manager, ro);

  const int threads = options_.http_threads;
  s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  // A keep-alive connection holds an HTTP thread; handing it back after 100 requests lets clients
  // beyond --http-threads take turns instead of waiting for an idle timeout.
  s.http.set_keep_alive_max_count(100);
  s.http.set_keep_alive_timeout(5);
  const auto timeout = std::chrono::duration<double>(options_.request_timeout_seconds);
  s.http.set_read_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
  s.http.set_write_timeout(std::chrono::duration_cast<std::chrono::microseconds>(timeout));
  s.http.set_payload_max_length(static_cast<size_t>(options_.limits.max_body_bytes));
  s.http.set_tcp_nodelay(true);

  auto handler = [&s](const httplib::Request& req, httplib::Response& res) {
    const auto t0 = std::chrono::steady_clock::now();
    HttpRequest r{req.method, req.path, req.body, req.get_header_value("Authorization")};
    const HttpResponse out = s.api->handle(r);
    res.status = out.status;
    for (const auto& [k, v] : out.headers) res.set_header(k, v);
    res.set_content(out.body, out.content_type);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto endpoint = Impl::endpoint_of(req.method, req.path);
    s.requests.Add({{"model", out.model}, {"version", out.version}, {"endpoint", endpoint},
                    {"status", std::to_string(out.status)}}).Increment();
    s.latency.Add({{"endpoint", endpoint}},
                  prometheus::Histogram::BucketBoundaries{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                          2.5, 5, 10})
        .Observe(seconds);
  };
  s.http.Get(".*", handler);
  s.http.Post(".*", handler);
  // What httplib answers itself (a body over the limit: 413; a bad request line: 400) gets the
  // same JSON error body as everything else.
  s.http.set_error_handler([&s](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    std::string message = res.status == 413
                              ? fmt::format("the request body is more than the limit of {} bytes; send fewer or "
                                            "smaller images per request", s.options.limits.max_body_bytes)
                              : fmt::format("{} {}: HTTP {}", req.method, req.path, res.status);
    // cpp-httplib caps form-encoded bodies at 8 KiB whatever the limit: that is curl -d's default
    // Content-Type, so say which header to send.
    if (res.status == 413 && req.get_header_value("Content-Type") == "application/x-www-form-urlencoded") {
      message = "a form-encoded body (Content-Type: application/x-www-form-urlencoded, what curl -d sends by "
                "default) is limited to 8192 bytes; send the JSON as Content-Type: application/json "
                "(curl -H 'Content-Type: application/json' -d @request.json ...)";
    }
    if (res.status == 404) message = fmt::format("no such endpoint: {} {}; see docs/serving.md", req.method, req.path);
    if (res.status == 405) message = fmt::format("{} is not allowed on {}", req.method, req.path);
    res.set_content(nlohmann::json{{"error", message}}.dump(), "application/json");
  });
  if (options_.access_log) {
    s.http.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::fprintf(stderr, "%s \"%s %s\" %d %zu %s\n", req.remote_addr.c_str(), req.method.c_str(), req.path.c_str(),
                   res.status, res.body.size(), res.get_header_value("X-Model-Version").c_str());
    });
  }

  if (options_.port == 0) {
    port_ = s.http.bind_to_any_port(options_.host);
    HISTOCNN_CHECK_IO(port_ > 0, "could not bind to any port on {}", options_.host);
  } else {
    HISTOCNN_CHECK_IO(s.http.bind_to_port(options_.host, options_.port),
                      "could not bind to {}:{}: is another server using the port? Choose another with --port",
                      options_.host, options_.port);
    port_ = options_.port;
  }
  s.listener = std::thread([&s] { s.http.listen_after_bind(); });
  s.poller = std::thread([this, &s] {
    const auto wait = std::chrono::duration<double>(s.options.file_system_poll_wait_seconds);
    std::unique_lock<std::mutex> lock(s.mutex);
    while (!s.stopping) {
      s.wake.wait_for(lock, std::chrono::duration_cast<std::chrono::milliseconds>(wait),
                      [&] { return s.stopping || reload_requested_.load() || stop_requested_.load(); });
      if (s.stopping) break;
      if (stop_requested_) {
        s.wake.notify_all();  // wait() watches this too
        break;
      }
      lock.unlock();
      const auto t = mtime(s.config_path());
      if (reload_requested_.exchange(false) || t != s.config_time) {
        s.config_time = t;
        try {
          s.manager->set_config(serving_config(s.options));
          log_info("serve: configuration read again from {}", s.config_path().string());
        } catch (const std::exception& e) {
          log_warn("serve: the new configuration is not used, the old one stays: {}", e.what());
        }
      }
      try {
        s.manager->poll();
      } catch (const std::exception& e) {
        log_warn("serve: polling the base paths failed: {}", e.what());
      }
      lock.lock();
    }
  });
}

void Server::wait() {
  if (!impl_) return;
  {
    std::unique_lock<std::mutex> lock(impl_->mutex);
    while (!impl_->stopping && !stop_requested_) {
      impl_->wake.wait_for(lock, std::chrono::milliseconds(100));
    }
  }
  stop();
}

void Server::stop() {
  if (!impl_) return;
  Impl& s = *impl_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.stopping) return;
    s.stopping = true;
  }
  s.wake.notify_all();
  // httplib stops accepting, lets the workers finish their requests, then joins them.
  s.http.stop();
  if (s.listener.joinable()) s.listener.join();
  if (s.poller.joinable()) s.poller.join();
}

}  // namespace histocnn::serve
