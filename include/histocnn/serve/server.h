#pragma once
// `histocnn serve`: TensorFlow Serving's REST API (serve/rest.h) over HTTP, with model versions
// polled from base paths, micro-batching, Prometheus metrics and the upload page.
//
//   histocnn::serve::ServerOptions opt;
//   opt.model_base_path = "models/idc";   // numeric version folders
//   opt.model_name = "idc";
//   opt.port = 0;                         // any free port
//   histocnn::serve::Server server(opt);
//   server.start();                       // returns once listening, with the first versions loaded
//   // ... POST http://127.0.0.1:<server.port()>/v1/models/idc:predict
//   server.stop();                        // stops accepting, finishes requests in flight
#include "histocnn/serve/batcher.h"
#include "histocnn/serve/model_config.h"
#include "histocnn/serve/model_manager.h"
#include "histocnn/serve/rest.h"

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace histocnn::serve {

/// The policy file `histocnn models promote|rollback` writes beside the version folders when the
/// server runs on one base path: {"model_version_policy": ..., "version_labels": ...}.
inline constexpr const char* kPolicyFileName = "serving_policy.json";

struct ServerOptions {
  std::string host = "127.0.0.1";  ///< "0.0.0.0" to expose beyond this machine
  int port = 8501;                 ///< 0: any free port (see Server::port())
  std::filesystem::path model_base_path;  ///< one model: its version folders
  std::string model_name = "default";
  std::filesystem::path model_config_file;  ///< several models (TF Serving's ModelServerConfig, JSON)
  double file_system_poll_wait_seconds = 1;  ///< how often base paths and config files are rescanned
  std::optional<BatchingOptions> batching;   ///< none: no batching
  RequestLimits limits;
  double request_timeout_seconds = 30;  ///< reading or writing a request slower than this fails
  std::string api_key;                  ///< non-empty: /v1/ needs "Authorization: Bearer <key>"
  std::string device = "auto";
  int http_threads = 64;     ///< connections served at once (keep-alive clients hold one each)
  bool access_log = true;    ///< one line per request on stderr
  void validate() const;
};

/// The configuration a server starts from: the config file, or one model on a base path (with
/// its policy file applied when there is one).
ServingConfig serving_config(const ServerOptions& options);

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Loads what the configuration serves, binds and starts serving in background threads. Throws
  /// std::runtime_error when the port cannot be bound.
  void start();
  /// Stops accepting connections, finishes the requests in flight, stops the threads. Idempotent;
  /// safe from another thread (not from a signal handler: use request_stop()).
  void stop();
  /// Asks the server to stop soon; async-signal-safe.
  void request_stop() { stop_requested_ = true; }
  /// Asks for the configuration to be read again at the next poll; async-signal-safe (SIGHUP).
  void request_reload() { reload_requested_ = true; }
  /// Blocks until stop() or request_stop().
  void wait();

  int port() const { return port_; }
  std::string url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ServerOptions options_;
  int port_ = 0;
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> reload_requested_{false};
};

}  // namespace histocnn::serve
