// A raw TCP connection to a local HTTP port, for tests of the metrics
// endpoint that send what no well-behaved client sends: any bytes, in any
// pieces, at any pace. Reads carry a 30 s bound so a server that never
// answers fails a test instead of hanging it (a liveness bound, not a timing
// assertion).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace genomed::testkit {

class HttpProbe {
 public:
  // Connects to 127.0.0.1:port; fd() < 0 if it could not.
  explicit HttpProbe(std::uint16_t port);
  ~HttpProbe();
  HttpProbe(const HttpProbe&) = delete;
  HttpProbe& operator=(const HttpProbe&) = delete;

  int fd() const { return fd_; }
  // False if the server closed or reset the connection.
  bool send(std::string_view bytes);
  // Stops sending (the server sees EOF).
  void shut_write();
  // Everything until the server closes (or the bound passes: then
  // `closed` is false).
  struct Received {
    std::string bytes;
    bool closed = false;  // EOF or reset seen
  };
  Received read_to_end();
  // Neither data nor EOF is waiting now (does not block).
  bool quiet();

 private:
  int fd_ = -1;
};

// An answer split into its parts; well_formed when it has a status line
// "HTTP/1.1 NNN Reason", CRLF header lines, a blank line, and exactly
// Content-Length body bytes (zero for a HEAD, whose Content-Length is that
// of the body it would have had).
struct HttpAnswer {
  bool well_formed = false;
  int status = 0;
  std::string headers;  // the header lines, each ending in CRLF
  std::string body;
  std::uint64_t content_length = 0;
  std::string header(std::string_view name) const;  // "" if absent (case-insensitive)
};
HttpAnswer parse_answer(const std::string& bytes, bool head_request = false);

// One request on a new connection: sends it, then reads the whole answer.
HttpAnswer http_exchange(std::uint16_t port, std::string_view request, bool head_request = false);

}  // namespace genomed::testkit
