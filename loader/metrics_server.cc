#include "loader/metrics_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <exception>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

namespace genomed::loader {
namespace {

using Clock = std::chrono::steady_clock;

// After accept fails for want of descriptors or memory, the listening socket
// stays readable: wait this long before trying again instead of spinning.
constexpr auto kAcceptPause = std::chrono::milliseconds(100);

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// A last answer to a connection about to be closed (408, 503): one try, never
// waiting; a client that cannot take it now gets the close alone.
void send_once(int fd, const std::string& bytes) {
  (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

struct Connection {
  enum class Phase {
    reading,   // the request head; `in` holds it so far (at most the head limit)
    writing,   // the answer; `out[sent..]` still to go
    draining,  // answered and shut down for writing: discard what is left, then close
  };
  int fd = -1;  // -1: closed, to be erased
  Clock::time_point deadline;
  Phase phase = Phase::reading;
  std::string in;
  std::string out;
  std::size_t sent = 0;
  // draining: declared body bytes not read yet (0 also for a chunked body,
  // which is drained as far as it has arrived); all bytes discarded so far.
  std::uint64_t body_left = 0;
  std::uint64_t drained = 0;
};

}  // namespace

struct MetricsServer::Loop {
  MetricsServerOptions options;
  Render render;
  int listen_fd = -1;
  int wake_fd = -1;  // eventfd: the destructor's stop
  std::uint16_t port = 0;
  std::thread thread;
  // Only the loop's thread touches these.
  std::vector<Connection> connections;
  Clock::time_point accept_paused_until{};

  ~Loop() {
    close_fd(listen_fd);
    close_fd(wake_fd);
    for (auto& c : connections) close_fd(c.fd);
  }

  void run();
  void accept_all(Clock::time_point now);
  void on_readable(Connection& c);
  void answer(Connection& c, const http::HeadParse& parsed);
  void write_some(Connection& c);
  void drain(Connection& c);
  void expire(Connection& c);
};

void MetricsServer::Loop::run() {
  std::vector<pollfd> fds;
  for (;;) {
    const Clock::time_point now = Clock::now();
    Clock::time_point wake_at = Clock::time_point::max();
    for (auto& c : connections) {
      if (c.deadline <= now) expire(c);
      if (c.fd >= 0) wake_at = std::min(wake_at, c.deadline);
    }
    std::erase_if(connections, [](const Connection& c) { return c.fd < 0; });

    fds.clear();
    fds.push_back({wake_fd, POLLIN, 0});
    const bool accepting = accept_paused_until <= now;
    fds.push_back({accepting ? listen_fd : -1, POLLIN, 0});
    if (!accepting) wake_at = std::min(wake_at, accept_paused_until);
    for (const auto& c : connections) {
      const bool writing = c.phase == Connection::Phase::writing;
      fds.push_back({c.fd, static_cast<short>(writing ? POLLOUT : POLLIN), 0});
    }
    int timeout_ms = -1;
    if (wake_at != Clock::time_point::max()) {
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(wake_at - now).count();
      timeout_ms = static_cast<int>(std::clamp<long long>(left, 0, 60'000));
    }
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0 && errno != EINTR) {
      spdlog::error("metrics endpoint: poll failed ({}); it stops serving", std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) return;
    // Connections first: accept may close one of them to make room, and
    // appends new ones, which have no events yet.
    for (std::size_t i = 0; i < connections.size(); ++i) {
      Connection& c = connections[i];
      const short ev = fds[i + 2].revents;
      if (ev == 0) continue;
      if (c.phase == Connection::Phase::writing) {
        write_some(c);
      } else {
        on_readable(c);
      }
    }
    if (fds[1].revents != 0) accept_all(Clock::now());
  }
}

void MetricsServer::Loop::accept_all(Clock::time_point now) {
  // At most a cap's worth per turn: a flood of connections must not keep
  // the loop from reading and answering the ones it has.
  for (std::size_t turn = 0; turn < options.max_connections; ++turn) {
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) accept_paused_until = now + kAcceptPause;
      return;
    }
    std::size_t open = 0;
    Connection* oldest_reading = nullptr;
    Connection* oldest_draining = nullptr;
    Connection* oldest_writing = nullptr;
    for (auto& c : connections) {
      if (c.fd < 0) continue;
      ++open;
      Connection*& oldest = c.phase == Connection::Phase::reading    ? oldest_reading
                            : c.phase == Connection::Phase::draining ? oldest_draining
                                                                     : oldest_writing;
      if (oldest == nullptr || c.deadline < oldest->deadline) oldest = &c;
    }
    if (open >= options.max_connections) {
      static const std::string busy =
          http::render_error(503, "too many connections are still sending their request");
      // The newcomer always gets a slot, or peers that send a whole request
      // and then read nothing (or trickle a declared body) would hold every
      // slot to their deadline, and reconnect. First one still sending its
      // request; then one draining: its answer was handed over whole, and
      // only what of it the client has not read yet can be lost (to the
      // reset of a close with its body unread); last one writing, whose
      // answer is cut for sure. The oldest of each, which had the longest.
      Connection* victim = oldest_reading != nullptr    ? oldest_reading
                           : oldest_draining != nullptr ? oldest_draining
                                                        : oldest_writing;
      if (victim == nullptr) {  // a cap of 0
        send_once(fd, busy);
        ::close(fd);
        continue;
      }
      // Only one still sending can take an answer; a 503 would land in the
      // middle of a writing one's, and a draining one sends no more.
      if (victim->phase == Connection::Phase::reading) send_once(victim->fd, busy);
      close_fd(victim->fd);
    }
    Connection c;
    c.fd = fd;
    c.deadline = now + options.request_timeout;
    connections.push_back(std::move(c));
  }
}

void MetricsServer::Loop::on_readable(Connection& c) {
  if (c.phase == Connection::Phase::draining) return drain(c);
  char buf[4096];
  const std::size_t room = options.limits.max_head_bytes - c.in.size();
  const ssize_t n = ::recv(c.fd, buf, std::min(room, sizeof buf), 0);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) close_fd(c.fd);
    return;
  }
  const std::size_t before = c.in.size();
  c.in.append(buf, static_cast<std::size_t>(n));
  // Parse only when it can tell more than last time: the first bytes (to
  // turn away what is no HTTP at once), a blank line, the limit, or the end.
  if (n > 0 && before > 0 && c.in.size() < options.limits.max_head_bytes &&
      !http::head_may_end(c.in, before)) {
    return;
  }
  http::HeadParse parsed = http::parse_request_head(c.in, options.limits);
  if (parsed.state == http::HeadState::incomplete) {
    if (n > 0) return;
    parsed.state = http::HeadState::rejected;
    parsed.status = 400;
    parsed.reason = "the connection ended inside the request header";
  }
  answer(c, parsed);
}

void MetricsServer::Loop::answer(Connection& c, const http::HeadParse& parsed) {
  c.phase = Connection::Phase::writing;
  if (parsed.state == http::HeadState::complete) {
    const std::uint64_t have = c.in.size() - parsed.head_bytes;
    c.body_left = parsed.head.content_length > have ? parsed.head.content_length - have : 0;
  }
  if (parsed.state == http::HeadState::rejected) {
    c.out = http::render_error(parsed.status, parsed.reason);
  } else {
    const http::Route r = http::route(parsed.head);
    if (r.metrics) {
      try {
        c.out = http::render_answer(r.status, http::kMetricsContentType, render(), r.send_body);
      } catch (const std::exception& e) {
        spdlog::warn("metrics endpoint: the metrics could not be collected ({})", e.what());
        c.out = http::render_error(500, "the metrics could not be collected", r.send_body);
      }
    } else if (r.status == 405) {
      c.out = http::render_error(405, "/metrics answers GET and HEAD", r.send_body);
    } else {
      c.out = http::render_error(404, "only /metrics is served here", r.send_body);
    }
  }
  c.in.clear();
  c.in.shrink_to_fit();
  write_some(c);
}

void MetricsServer::Loop::write_some(Connection& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n =
        ::send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) close_fd(c.fd);
      return;
    }
    c.sent += static_cast<std::size_t>(n);
  }
  c.out.clear();
  c.out.shrink_to_fit();
  ::shutdown(c.fd, SHUT_WR);
  c.phase = Connection::Phase::draining;
  drain(c);
}

void MetricsServer::Loop::drain(Connection& c) {
  // What a client sent after its request head (a body, pipelined requests)
  // is read and dropped before the close: closing with unread bytes resets
  // the connection, and a reset can discard the answer before the client
  // reads it. Closed once nothing is waiting and no declared body byte is
  // still to come (or at EOF, the byte limit, the deadline).
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(c.fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (c.body_left == 0) close_fd(c.fd);
      return;
    }
    if (n <= 0) return close_fd(c.fd);
    const auto got = static_cast<std::uint64_t>(n);
    c.body_left -= std::min(c.body_left, got);
    c.drained += got;
    if (c.drained > options.limits.max_body_bytes + options.limits.max_head_bytes) {
      return close_fd(c.fd);
    }
  }
}

void MetricsServer::Loop::expire(Connection& c) {
  if (c.phase == Connection::Phase::reading) {
    static const std::string timeout =
        http::render_error(408, "the request did not arrive within --metrics-request-timeout");
    send_once(c.fd, timeout);
  }
  close_fd(c.fd);
}

namespace {

// "HOST:PORT", "[::1]:PORT", ":PORT" (every address) -> host ("" for every
// address) and port.
std::pair<std::string, std::string> split_listen(const std::string& listen) {
  const auto colon = listen.rfind(':');
  std::string host = colon == std::string::npos ? "" : listen.substr(0, colon);
  std::string port = colon == std::string::npos ? listen : listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {host, port};
}

}  // namespace

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& listen,
                                                            Render render,
                                                            MetricsServerOptions options) {
  auto loop = std::make_unique<Loop>();
  loop->options = options;
  loop->render = std::move(render);
  const auto [host, port] = split_listen(listen);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints,
                                   &found);
      rc != 0) {
    return Status(Errc::environment,
                  "--metrics-listen " + listen + ": " + ::gai_strerror(rc));
  }
  std::string why = "no address";
  for (addrinfo* a = found; a != nullptr && loop->listen_fd < 0; a = a->ai_next) {
    int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    const int one = 1;
    if (fd >= 0 && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        ::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 128) == 0) {
      loop->listen_fd = fd;
    } else {
      why = std::strerror(errno);
      close_fd(fd);
    }
  }
  ::freeaddrinfo(found);
  if (loop->listen_fd < 0) {
    return Status(Errc::environment, "--metrics-listen " + listen + ": cannot serve there (" + why +
                                         "); is the port taken?");
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  ::getsockname(loop->listen_fd, reinterpret_cast<sockaddr*>(&bound), &len);
  loop->port = ntohs(bound.ss_family == AF_INET6
                         ? reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port
                         : reinterpret_cast<const sockaddr_in*>(&bound)->sin_port);
  loop->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (loop->wake_fd < 0) {
    return Status(Errc::environment, "--metrics-listen: no eventfd (" +
                                         std::string(std::strerror(errno)) + ")");
  }
  Loop* l = loop.get();
  loop->thread = std::thread([l] { l->run(); });
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(loop)));
}

MetricsServer::MetricsServer(std::unique_ptr<Loop> loop) : loop_(std::move(loop)) {}

MetricsServer::~MetricsServer() {
  const std::uint64_t one = 1;
  (void)!::write(loop_->wake_fd, &one, sizeof one);
  if (loop_->thread.joinable()) loop_->thread.join();
}

std::uint16_t MetricsServer::port() const { return loop_->port; }

}  // namespace genomed::loader
