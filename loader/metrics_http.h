// The HTTP/1.x of the metrics endpoint (--metrics-listen), as pure
// functions over bytes: the request-head parser, the choice of answer and the
// answer's bytes. loader/metrics_server.h does the sockets; nothing here
// allocates per header, blocks or keeps state, so fuzz/fuzz_metrics_http.cc
// runs it on any bytes.
//
// Whoever can reach the port sends these bytes (the port has no uid check):
// every input gets an answer of this file's own making, never an error page
// of a library (Debian's civetweb crashed genomed on each of those).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace genomed::loader::http {

struct Limits {
  // The request line, every header line and the blank line that ends them.
  // Prometheus, curl and browsers send well under 1 KiB.
  std::size_t max_head_bytes = 8192;
  // A declared body (Content-Length) larger than this gets 413: the endpoint
  // reads no body, it discards at most this much before closing.
  std::uint64_t max_body_bytes = 65536;
};

enum class HeadState {
  incomplete,  // no blank line yet and nothing wrong so far: read more
  complete,    // `head` holds the request
  rejected,    // answer `status` and close
};

struct RequestHead {
  std::string_view method;      // case-sensitive, as sent ("GET", "get", "PURGE")
  std::string_view path;        // of the target, without query: "/metrics", "*", "host:443"
  int minor_version = 1;        // HTTP/1.<minor>
  std::uint64_t content_length = 0;
  bool has_body = false;        // Content-Length > 0 or a Transfer-Encoding
};

struct HeadParse {
  HeadState state = HeadState::incomplete;
  // rejected: 400 (not HTTP/1.x syntax), 413 (body over the limit), 414
  // (request line over the limit), 431 (head over the limit), 505 (HTTP/2+).
  int status = 0;
  std::string_view reason;  // rejected: why, for the answer's body (static text)
  RequestHead head;         // complete: views into the parsed bytes
  std::size_t head_bytes = 0;  // complete: up to and including the blank line
};

// Parses the start of `received` (everything read from the connection so
// far). Strict where HTTP/1.1 (RFC 9112) says a server must reject, lenient
// where it allows: a bare LF ends a line as CRLF does, up to two empty lines
// may precede the request line. Incomplete input with a byte no request may
// hold (a control byte, a TLS handshake) is rejected at once; incomplete
// input at `limits.max_head_bytes` is rejected with 414 or 431. O(size).
HeadParse parse_request_head(std::string_view received, const Limits& limits = {});

// The end of a head ("\n\n" or "\n\r\n") lies in `received` at or after
// `from` - 2: whether a parse can now find more than before (a reader calls
// parse_request_head only then, so a client sending a byte at a time costs
// O(size), not O(size^2)).
bool head_may_end(std::string_view received, std::size_t from);

struct Route {
  int status = 200;          // 200 (the metrics), 404, 405
  bool send_body = true;     // false for HEAD: the headers only
  bool metrics = false;      // the answer carries the metrics text
};

// GET and HEAD of /metrics (query ignored, origin or absolute form) are the
// metrics; another method there is 405 (Allow: GET, HEAD); any other path 404.
Route route(const RequestHead& head);

// A whole answer with Connection: close. `body` is counted in Content-Length
// even when !send_body (HEAD). 405 carries Allow: GET, HEAD.
std::string render_answer(int status, std::string_view content_type, std::string_view body,
                          bool send_body);

// An error answer: a one-line text/plain body of the status and `reason`.
std::string render_error(int status, std::string_view reason, bool send_body = true);

inline constexpr std::string_view kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace genomed::loader::http
