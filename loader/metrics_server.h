// The socket side of the metrics endpoint: one thread, one poll() loop, every
// connection at once, each with a deadline and byte limits, answers made by
// loader/metrics_http.h. It knows one resource, whose text `render` returns;
// loader/metrics_exporter.h makes that text.
//
// Why not a thread per connection (civetweb's model, used before): a client
// that sends a byte every few seconds held a thread each, and a dozen of them
// held up every scrape. Here a slow client costs a slot and a few KiB; the
// slots are many, a new connection at the cap closes the oldest one still
// sending its request (failing that, one done with its answer, then one
// not reading it), and every connection is closed at its deadline however
// it trickles.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"
#include "loader/metrics_http.h"

namespace genomed::loader {

struct MetricsServerOptions {
  // From accept to close: receiving the request, sending the answer and
  // discarding what the client sends after it. A connection whose request
  // is not complete by then gets 408; one not reading its answer is closed.
  std::chrono::milliseconds request_timeout{10'000};
  // Connections served at once (each costs at most the head limit plus its
  // answer). At the cap a new one closes the oldest still sending its
  // request, or if none, the oldest draining, or the oldest writing, so
  // whoever sends a whole request at once is served.
  std::size_t max_connections = 64;
  http::Limits limits;
};

class MetricsServer {
 public:
  // The metrics text; called on the server's thread for each GET or HEAD of
  // /metrics. An exception becomes a 500 answer.
  using Render = std::function<std::string()>;

  // Binds `listen` ("HOST:PORT", "[::1]:PORT"; port 0 picks a free one) and
  // serves until destroyed. environment if it cannot bind.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& listen, Render render,
                                                      MetricsServerOptions options);
  ~MetricsServer();  // stops the thread, closes every connection

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  std::uint16_t port() const;

 private:
  struct Loop;
  explicit MetricsServer(std::unique_ptr<Loop> loop);
  std::unique_ptr<Loop> loop_;
};

}  // namespace genomed::loader
