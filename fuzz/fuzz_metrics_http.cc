// A metrics request, as the endpoint (--metrics-listen) reads it from
// anyone who reaches its port: the head parser on every prefix the server
// could see (it parses what has arrived so far), the route of a complete
// head and its answer. Checks what the server relies on: a complete head
// lies within the bytes and the limit, every rejection has a status and a
// reason, and the answer is one well-formed status line.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "loader/metrics_http.h"

namespace http = genomed::loader::http;

namespace {

void check(std::string_view in, const http::Limits& limits) {
  const http::HeadParse p = http::parse_request_head(in, limits);
  switch (p.state) {
    case http::HeadState::incomplete:
      if (in.size() >= limits.max_head_bytes) std::abort();  // the limit must end it
      break;
    case http::HeadState::rejected: {
      if (p.status < 400 || p.status > 505 || p.reason.empty()) std::abort();
      const std::string a = http::render_error(p.status, p.reason);
      if (!a.starts_with("HTTP/1.1 " + std::to_string(p.status) + " ")) std::abort();
      break;
    }
    case http::HeadState::complete: {
      if (p.head_bytes == 0 || p.head_bytes > in.size() || p.head_bytes > limits.max_head_bytes) {
        std::abort();
      }
      if (p.head.content_length > limits.max_body_bytes) std::abort();
      const http::Route r = http::route(p.head);
      const std::string a = http::render_answer(r.status, http::kMetricsContentType, "m 1\n",
                                                r.send_body);
      if (!a.starts_with("HTTP/1.1 " + std::to_string(r.status) + " ")) std::abort();
      if (r.metrics != (r.status == 200)) std::abort();
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  // A small limit too, so the limit paths are reached by short inputs.
  for (const http::Limits& limits : {http::Limits{}, http::Limits{.max_head_bytes = 64,
                                                                  .max_body_bytes = 16}}) {
    check(in, limits);
    // The prefix the server would parse when the head could first have ended.
    for (std::size_t i = 1; i < in.size() && i < 4096; ++i) {
      if (http::head_may_end(in.substr(0, i), i - 1)) {
        check(in.substr(0, i), limits);
        break;
      }
    }
  }
  return 0;
}
