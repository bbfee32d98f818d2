#include "tools/testkit/http_probe.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cctype>

namespace genomed::testkit {

HttpProbe::HttpProbe(std::uint16_t port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd_ < 0 || ::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    return;
  }
  timeval tv{30, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

HttpProbe::~HttpProbe() {
  if (fd_ >= 0) ::close(fd_);
}

bool HttpProbe::send(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void HttpProbe::shut_write() { ::shutdown(fd_, SHUT_WR); }

HttpProbe::Received HttpProbe::read_to_end() {
  Received r;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      r.bytes.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    r.closed = n == 0 || errno == ECONNRESET;
    return r;
  }
}

bool HttpProbe::quiet() {
  char c;
  const ssize_t n = ::recv(fd_, &c, 1, MSG_DONTWAIT | MSG_PEEK);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

std::string HttpAnswer::header(std::string_view name) const {
  std::size_t pos = 0;
  while (pos < headers.size()) {
    const std::size_t end = headers.find("\r\n", pos);
    const std::string_view line(headers.data() + pos, end - pos);
    const std::size_t colon = line.find(':');
    if (colon == name.size()) {
      bool same = true;
      for (std::size_t i = 0; i < colon; ++i) {
        same = same && std::tolower(static_cast<unsigned char>(line[i])) ==
                           std::tolower(static_cast<unsigned char>(name[i]));
      }
      if (same) {
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        return std::string(value);
      }
    }
    pos = end + 2;
  }
  return "";
}

HttpAnswer parse_answer(const std::string& bytes, bool head_request) {
  HttpAnswer a;
  const std::size_t line_end = bytes.find("\r\n");
  const std::size_t head_end = bytes.find("\r\n\r\n");
  if (line_end == std::string::npos || head_end == std::string::npos) return a;
  const std::string line = bytes.substr(0, line_end);
  if (line.size() < 13 || !line.starts_with("HTTP/1.1 ") || line[12] != ' ' ||
      !std::isdigit(static_cast<unsigned char>(line[9])) ||
      !std::isdigit(static_cast<unsigned char>(line[10])) ||
      !std::isdigit(static_cast<unsigned char>(line[11]))) {
    return a;
  }
  a.status = std::stoi(line.substr(9, 3));
  a.headers = line_end == head_end ? "" : bytes.substr(line_end + 2, head_end - line_end);
  a.body = bytes.substr(head_end + 4);
  const std::string length = a.header("Content-Length");
  if (length.empty() || length.find_first_not_of("0123456789") != std::string::npos) return a;
  a.content_length = std::stoull(length);
  a.well_formed = a.body.size() == (head_request ? 0 : a.content_length);
  return a;
}

HttpAnswer http_exchange(std::uint16_t port, std::string_view request, bool head_request) {
  HttpProbe probe(port);
  if (probe.fd() < 0 || !probe.send(request)) return {};
  return parse_answer(probe.read_to_end().bytes, head_request);
}

}  // namespace genomed::testkit
