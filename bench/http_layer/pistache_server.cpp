// Minimal Pistache server (Debian's 0.0.5) for bench/http_layer/run.sh. Answers
// POST /v1/models/idc:predict with a fixed JSON body after reading the request body.
//   pistache_server PORT THREADS [DELAY_MS]
// DELAY_MS makes each request take that long, so a shutdown test has requests in flight.
// SIGTERM calls Endpoint::shutdown(); at exit the server prints how many requests it started and
// answered, from how many client ports, and how many of those got a single answer (a
// connection that waited for a worker the whole run gets at most one, after the client left).
// It exits 0.
#include <pistache/endpoint.h>
#include <pistache/router.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

using namespace Pistache;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s PORT THREADS [DELAY_MS]\n", argv[0]);
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int threads = std::atoi(argv[2]);
  const auto delay = std::chrono::milliseconds(argc > 3 ? std::atoi(argv[3]) : 0);

  // Block SIGTERM/SIGINT before Pistache starts its threads; the main thread takes them with
  // sigwait and shuts the endpoint down.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::atomic<long> started{0}, answered{0};
  std::mutex per_port_mutex;
  std::map<int, long> per_port;  // answers per client port: shows whether every connection is served
  Rest::Router router;
  Rest::Routes::Post(router, "/v1/models/idc:predict",
                     [&](const Rest::Request& req, Http::ResponseWriter res) {
                       // Pistache has buffered the whole body before routing the request; the
                       // handler runs on the I/O thread that owns the connection.
                       ++started;
                       if (delay.count() > 0) std::this_thread::sleep_for(delay);
                       const bool empty = req.body().empty();
                       const int client_port = static_cast<uint16_t>(req.address().port());
                       // The promise resolves once the response has been written to the socket.
                       res.send(empty ? Http::Code::Bad_Request : Http::Code::Ok,
                                empty ? "{\"error\": \"empty body\"}"
                                      : "{\"predictions\": [[0.25, 0.75]]}",
                                MIME(Application, Json))
                           .then(
                               [&, client_port](ssize_t) {
                                 ++answered;
                                 std::lock_guard<std::mutex> lock(per_port_mutex);
                                 ++per_port[client_port];
                               },
                               Async::IgnoreException);
                       return Rest::Route::Result::Ok;
                     });

  Http::Endpoint endpoint(Address(Ipv4::loopback(), Port(static_cast<uint16_t>(port))));
  // maxRequestSize defaults to 4096 bytes (request line, headers and body together), too small
  // for one base64 PNG patch; raise it to the 64 MiB that histocnn serve accepts.
  endpoint.init(Http::Endpoint::options()
                    .threads(threads)
                    .flags(Tcp::Options::ReuseAddr | Tcp::Options::NoDelay)
                    .maxRequestSize(64u << 20));
  endpoint.setHandler(router.handler());
  endpoint.serveThreaded();
  std::printf("listening on %d\n", port);
  std::fflush(stdout);

  int sig = 0;
  sigwait(&signals, &sig);
  endpoint.shutdown();
  long single = 0;
  for (const auto& [client_port, n] : per_port) single += n == 1;
  std::printf("requests: started %ld, answered %ld, client ports %zu, single-answer ports %ld\n",
              started.load(), answered.load(), per_port.size(), single);
  return 0;
}
