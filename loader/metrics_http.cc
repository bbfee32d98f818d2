#include "loader/metrics_http.h"

#include <algorithm>
#include <optional>

namespace genomed::loader::http {
namespace {

// RFC 9110 5.6.2: the characters of a method or a header name.
bool is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_token(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(),
                                   [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

bool is_vchar(unsigned char c) { return c >= 0x21 && c <= 0x7e; }

// A byte a request line may hold: visible ASCII and the two separating spaces.
bool request_line_byte(unsigned char c) { return is_vchar(c) || c == ' '; }

// A byte a header line may hold: field-content (RFC 9110 5.5), name and colon.
bool header_line_byte(unsigned char c) { return is_vchar(c) || c >= 0x80 || c == ' ' || c == '\t'; }

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return ascii_lower(x) == ascii_lower(y);
         });
}

bool istarts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

enum class LineState { complete, incomplete, bad };

struct Line {
  LineState state;
  std::string_view text;  // without its CRLF or LF; incomplete: what there is
  std::size_t next = 0;   // complete: where the next line starts
};

// The line at `pos`. A CR anywhere but right before the LF is bad (a bare CR
// is how requests get smuggled past proxies); one at the very end may be the
// first half of a CRLF still on its way.
Line line_at(std::string_view in, std::size_t pos) {
  const std::size_t lf = in.find('\n', pos);
  std::string_view text = in.substr(pos, lf == std::string_view::npos ? std::string_view::npos
                                                                       : lf - pos);
  if (lf != std::string_view::npos && !text.empty() && text.back() == '\r') text.remove_suffix(1);
  const std::size_t cr = text.find('\r');
  if (lf == std::string_view::npos) {
    if (cr != std::string_view::npos && cr + 1 < text.size()) return {LineState::bad, text};
    if (cr != std::string_view::npos) text.remove_suffix(1);
    return {LineState::incomplete, text};
  }
  if (cr != std::string_view::npos) return {LineState::bad, text};
  return {LineState::complete, text, lf + 1};
}

HeadParse reject(int status, std::string_view reason) {
  HeadParse p;
  p.state = HeadState::rejected;
  p.status = status;
  p.reason = reason;
  return p;
}

// What a line tells before its meaning: a byte `allowed` refuses rejects
// it, complete or not (so a TLS hello is turned away at its first bytes);
// an incomplete line asks for more, or at the limit is rejected with
// `limit_status` (414 in the request line, 431 after it).
std::optional<HeadParse> screen(const Line& line, bool (*allowed)(unsigned char), bool at_limit,
                                int limit_status) {
  if (line.state == LineState::bad) return reject(400, "a bare CR in the request header");
  if (!std::all_of(line.text.begin(), line.text.end(),
                   [&](char c) { return allowed(static_cast<unsigned char>(c)); })) {
    return reject(400, "a byte HTTP/1.x does not allow there");
  }
  if (line.state == LineState::complete) return std::nullopt;
  if (!at_limit) return HeadParse{};
  return reject(limit_status, limit_status == 414 ? "the request line exceeds the header limit"
                                                  : "the request header exceeds its limit");
}

// The path of a request target: origin form ("/metrics?x=1"), absolute form
// ("http://host:9464/metrics"), or anything else as it is ("*", "host:443").
std::string_view target_path(std::string_view target) {
  std::string_view rest = target;
  if (istarts_with(rest, "http://") || istarts_with(rest, "https://")) {
    rest.remove_prefix(rest.find("//") + 2);
    const std::size_t slash = rest.find_first_of("/?#");
    if (slash == std::string_view::npos || rest[slash] != '/') return "/";
    rest.remove_prefix(slash);
  }
  if (rest.empty() || rest.front() != '/') return rest;
  return rest.substr(0, rest.find_first_of("?#"));
}

// "HTTP/1.1" -> 1; -1 if not HTTP-version syntax; 100 + major for another
// major version.
int http_minor(std::string_view v) {
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || v[6] != '.') return -1;
  if (v[5] < '0' || v[5] > '9' || v[7] < '0' || v[7] > '9') return -1;
  if (v[5] != '1') return 100 + (v[5] - '0');
  return v[7] - '0';
}

}  // namespace

HeadParse parse_request_head(std::string_view received, const Limits& limits) {
  const std::string_view in = received.substr(0, limits.max_head_bytes);
  const bool at_limit = received.size() >= limits.max_head_bytes;
  std::size_t pos = 0;

  // RFC 9112 2.2: a server should ignore at least one empty line before the
  // request line. Two; more is not a client that means HTTP.
  Line line = line_at(in, pos);
  for (int empty = 0; line.state == LineState::complete && line.text.empty(); ++empty) {
    if (empty == 2) return reject(400, "empty lines instead of a request line");
    pos = line.next;
    line = line_at(in, pos);
  }
  if (auto early = screen(line, request_line_byte, at_limit, 414)) return *early;

  HeadParse parsed;
  RequestHead& head = parsed.head;
  const std::size_t sp1 = line.text.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.text.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.text.find(' ', sp2 + 1) != std::string_view::npos) {
    return reject(400, "expected METHOD TARGET HTTP/1.x");
  }
  head.method = line.text.substr(0, sp1);
  const std::string_view target = line.text.substr(sp1 + 1, sp2 - sp1 - 1);
  const int minor = http_minor(line.text.substr(sp2 + 1));
  if (!is_token(head.method) || target.empty() || minor < 0) {
    return reject(400, "expected METHOD TARGET HTTP/1.x");
  }
  if (minor >= 100) return reject(505, "only HTTP/1.x is served");
  head.minor_version = minor;
  head.path = target_path(target);

  bool content_length_seen = false;
  bool transfer_encoding = false;
  for (pos = line.next;;) {
    line = line_at(in, pos);
    if (auto early = screen(line, header_line_byte, at_limit, 431)) return *early;
    pos = line.next;
    if (line.text.empty()) break;
    if (line.text.front() == ' ' || line.text.front() == '\t') {
      return reject(400, "a folded header line");  // RFC 9112 5.2: obsolete
    }
    const std::size_t colon = line.text.find(':');
    // RFC 9112 5.1: no whitespace between the name and the colon.
    if (colon == std::string_view::npos || !is_token(line.text.substr(0, colon))) {
      return reject(400, "a header line is not NAME: VALUE");
    }
    const std::string_view name = line.text.substr(0, colon);
    const std::string_view value = trim_ows(line.text.substr(colon + 1));
    if (iequals(name, "Transfer-Encoding")) {
      transfer_encoding = true;
    } else if (iequals(name, "Content-Length")) {
      if (value.empty() || value.find_first_not_of("0123456789") != std::string_view::npos) {
        return reject(400, "Content-Length is not a number");
      }
      if (value.size() > 18) return reject(413, "this endpoint reads no request body");
      std::uint64_t n = 0;
      for (char c : value) n = n * 10 + static_cast<std::uint64_t>(c - '0');
      if (content_length_seen && n != head.content_length) {
        return reject(400, "two different Content-Length values");
      }
      content_length_seen = true;
      head.content_length = n;
    }
  }
  // RFC 9112 6.1: both framings at once is a request to refuse.
  if (transfer_encoding && content_length_seen) {
    return reject(400, "both Transfer-Encoding and Content-Length");
  }
  if (head.content_length > limits.max_body_bytes) {
    return reject(413, "this endpoint reads no request body");
  }
  head.has_body = transfer_encoding || head.content_length > 0;
  parsed.state = HeadState::complete;
  parsed.head_bytes = pos;
  return parsed;
}

bool head_may_end(std::string_view received, std::size_t from) {
  for (std::size_t i = from >= 2 ? from - 2 : 0; i < received.size(); ++i) {
    if (received[i] != '\n') continue;
    const std::string_view after = received.substr(i + 1);
    if (after.starts_with('\n') || after.starts_with("\r\n")) return true;
  }
  return false;
}

Route route(const RequestHead& head) {
  const bool is_head = head.method == "HEAD";
  if (head.path != "/metrics") return {404, !is_head, false};
  if (head.method == "GET" || is_head) return {200, !is_head, true};
  return {405, true, false};
}

namespace {

std::string_view reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

}  // namespace

std::string render_answer(int status, std::string_view content_type, std::string_view body,
                          bool send_body) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " ";
  out += reason_phrase(status);
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (status == 405) out += "Allow: GET, HEAD\r\n";
  out += "Connection: close\r\n\r\n";
  if (send_body) out += body;
  return out;
}

std::string render_error(int status, std::string_view reason, bool send_body) {
  std::string body = std::to_string(status) + " ";
  body += reason_phrase(status);
  body += ": ";
  body += reason;
  body += "\n";
  return render_answer(status, "text/plain; charset=utf-8", body, send_body);
}

}  // namespace genomed::loader::http
