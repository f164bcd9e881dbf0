// Minimal cpp-httplib server (Debian's 0.11, a compiled library: link with pkg-config
// cpp-httplib) for bench/http_layer/run.sh. Answers POST /v1/models/idc:predict with a fixed JSON
// body after reading the request body, with the socket settings of histocnn serve
// (src/serve/server.cpp).
//   httplib_server PORT THREADS [DELAY_MS]
// DELAY_MS makes each request take that long, so a shutdown test has requests in flight.
// SIGTERM calls Server::stop(); at exit the server prints how many requests it started and
// answered, from how many client ports, and how many of those got a single answer (a
// connection that waited for a worker the whole run gets at most one, after the client left).
// It exits 0.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PORT THREADS [DELAY_MS]\n", argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const size_t threads = static_cast<size_t>(std::atoi(argv[2]));
  const auto delay = std::chrono::milliseconds(argc > 3 ? std::atoi(argv[3]) : 0);

  // Block SIGTERM/SIGINT in every thread; a dedicated thread takes them with sigwait, where
  // calling stop() is safe (it is not async-signal-safe inside a handler).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::atomic<long> started{0}, answered{0};
  std::mutex per_port_mutex;
  std::map<int, long> per_port;  // answers per client port: shows whether every connection is served
  httplib::Server server;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_keep_alive_max_count(100000);
  server.set_keep_alive_timeout(5);
  server.set_read_timeout(30, 0);
  server.set_write_timeout(30, 0);
  server.set_payload_max_length(64u << 20);
  server.set_tcp_nodelay(true);
  server.Post("/v1/models/idc:predict", [&](const httplib::Request& req, httplib::Response& res) {
    // httplib has read the whole body into req.body before calling the handler.
    ++started;
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    if (req.body.empty()) {
      res.status = 400;
      res.set_content("{\"error\": \"empty body\"}", "application/json");
      return;
    }
    res.set_content("{\"predictions\": [[0.25, 0.75]]}", "application/json");
  });
  // The logger runs after the response has been written to the socket.
  server.set_logger([&](const httplib::Request& req, const httplib::Response&) {
    ++answered;
    std::lock_guard<std::mutex> lock(per_port_mutex);
    ++per_port[req.remote_port];
  });

  if (!server.bind_to_port("127.0.0.1", port)) {
    std::fprintf(stderr, "cannot bind 127.0.0.1:%d\n", port);
    return 1;
  }
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    server.stop();
  });
  std::printf("listening on %d\n", port);
  std::fflush(stdout);
  if (!server.listen_after_bind()) {
    std::fprintf(stderr, "listen failed on 127.0.0.1:%d\n", port);
    std::_Exit(1);  // the stopper thread still waits for a signal
  }
  stopper.join();
  long single = 0;
  for (const auto& [client_port, n] : per_port) single += n == 1;
  std::printf("requests: started %ld, answered %ld, client ports %zu, single-answer ports %ld\n",
              started.load(), answered.load(), per_port.size(), single);
  return 0;
}
