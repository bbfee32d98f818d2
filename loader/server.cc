#include "loader/server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <unordered_map>
#include <vector>

#include "ipc/framing.h"
#include "ipc/protocol.h"
#include "loader/client_log.h"

namespace genomed::loader {
namespace {

Result<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Status(Errc::bad_request, "socket path '" + path + "' is longer than " +
                                         std::to_string(sizeof addr.sun_path - 1) + " bytes");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

// True if a daemon answers on `path`.
bool someone_listens(const sockaddr_un& addr) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool live = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return live;
}

// Epoll keys of the two descriptors that are not connections; connection
// ids (also their keys) start above them.
constexpr std::uint64_t kListenKey = 1;
constexpr std::uint64_t kTimerKey = 2;
constexpr ConnectionId kFirstConnectionId = 16;

// Request threads that always run: enough to keep every core busy with
// cache hits, and never more than the cap.
RequestThreadOptions thread_options(const ConnectionLimits& limits) {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  RequestThreadOptions o;
  o.max = limits.max_request_threads > 0
              ? limits.max_request_threads
              : static_cast<int>(std::min<std::size_t>(limits.max_connections, 1 << 20)) + cores;
  o.base = std::min(cores, o.max);
  return o;
}

}  // namespace

Server::Server(std::string path, int listen_fd, ConnectionContext ctx)
    : path_(std::move(path)),
      ctx_(std::move(ctx)),
      threads_(thread_options(ctx_.limits),
               [this](std::uint64_t key, std::uint32_t events) { on_event(key, events); }),
      listen_fd_(listen_fd),
      next_id_(kFirstConnectionId) {}

Result<std::unique_ptr<Server>> Server::listen(const std::string& socket_path,
                                               ConnectionContext ctx) {
  GENOMED_ASSIGN_OR_RETURN(sockaddr_un addr, socket_address(socket_path));
  struct stat st {};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Status(Errc::bad_request,
                    "'" + socket_path + "' exists and is not a socket; refusing to replace it");
    }
    if (someone_listens(addr)) {
      return Status(Errc::bad_request, "another genomed is serving on '" + socket_path + "'");
    }
    ::unlink(socket_path.c_str());  // left by a daemon that died
  }
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status(Errc::environment, std::string("socket: ") + std::strerror(errno));
  const mode_t old_mask = ::umask(0177);  // owner-only from the first instant
  const int rc = ::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  const int bind_errno = errno;
  ::umask(old_mask);
  if (rc != 0 || ::listen(fd, 512) != 0) {
    const int err = rc != 0 ? bind_errno : errno;
    ::close(fd);
    return Status(Errc::environment,
                  "cannot listen on '" + socket_path + "': " + std::strerror(err));
  }
  if (ctx.access) {
    // Widened (or given a group) only now, after it was created owner-only.
    if (Status s = ctx.access->apply_to_socket(socket_path); !s.ok()) {
      ::close(fd);
      ::unlink(socket_path.c_str());
      return s;
    }
  }
  return std::unique_ptr<Server>(new Server(socket_path, fd, ctx));
}

Result<std::unique_ptr<Server>> Server::adopt(int listen_fd, ConnectionContext ctx) {
  return std::unique_ptr<Server>(new Server("", listen_fd, std::move(ctx)));
}

Status Server::start() {
  GENOMED_RETURN_IF_ERROR(timer_.open());
  GENOMED_RETURN_IF_ERROR(threads_.start());
  GENOMED_RETURN_IF_ERROR(threads_.add(timer_.fd(), kTimerKey, EPOLLIN | EPOLLONESHOT));
  MutexLock lock(listen_mu_);
  spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  // Non-blocking: any request thread accepts, and must never wait there.
  ::fcntl(listen_fd_, F_SETFL, ::fcntl(listen_fd_, F_GETFL) | O_NONBLOCK);
  return threads_.add(listen_fd_, kListenKey, EPOLLIN | EPOLLONESHOT);
}

void Server::on_event(std::uint64_t key, std::uint32_t events) {
  if (key == kListenKey) return accept_clients();
  if (key == kTimerKey) return deadlines_due();
  if (auto conn = find(key)) conn->on_event(events);
}

std::shared_ptr<Connection> Server::find(ConnectionId id) const {
  MutexLock lock(mu_);
  auto it = conns_.find(id);
  return it == conns_.end() ? nullptr : it->second.conn;
}

void Server::accept_clients() {
  MutexLock lock(listen_mu_);
  if (listen_fd_ < 0) return;  // stopped accepting meanwhile
  // A bounded batch, then the listening socket is re-armed: clients
  // arriving in a burst do not keep one thread from everything else.
  for (int i = 0; i < 64; ++i) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      admit(fd);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN) break;
    if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
      // One per client refused: within the client lines' allowance.
      client_log().error("accept: {}; a client was refused (raise the descriptor limit)",
                         std::strerror(errno));
      ::close(spare_fd_);
      const int refused = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (refused >= 0) {
        (void)ipc::send_frame_now(
            refused, ipc::encode_error(Status(Errc::overloaded,
                                              "genomed is out of file descriptors; retry later")));
        ::close(refused);
      }
      spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
      continue;
    }
    spdlog::error("accept: {}; no longer accepting", std::strerror(errno));
    return;
  }
  rearm(listen_fd_, kListenKey, EPOLLIN | EPOLLONESHOT);
}

void Server::admit(int fd) {
  ConnectionId id;
  {
    MutexLock lock(mu_);
    id = next_id_++;
  }
  if (ctx_.access) {
    // Checked at accept, before the peer takes a --max-connections slot or
    // makes room for itself (an unlisted user's silent connections held
    // slots until the handshake timeout). The refusal goes out at once,
    // read in place of the HELLO reply, as the overloaded one below.
    if (Status denied = ctx_.access->check_peer(fd, id, *ctx_.counters); !denied.ok()) {
      (void)ipc::send_frame_now(fd, ipc::encode_error(denied));
      ::close(fd);
      return;
    }
  }
  ucred cred{};
  socklen_t len = sizeof cred;
  // Unreadable credentials (not seen on Linux) share one uid of their own.
  const uid_t uid = ::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0
                        ? cred.uid
                        : static_cast<uid_t>(-1);
  std::size_t served;
  std::size_t own = 0;  // of `uid`
  {
    MutexLock lock(mu_);
    served = conns_.size();
    for (const auto& [other, entry] : conns_) own += entry.uid == uid ? 1 : 0;
  }
  // Refuse rather than grow without bound, with a typed answer the client
  // reads in place of its HELLO reply. A fresh socket's buffer is empty:
  // the frame goes out whole without waiting.
  const auto refuse = [fd](const std::string& why) {
    (void)ipc::send_frame_now(fd, ipc::encode_error(Status(Errc::overloaded, why)));
    ::close(fd);
  };
  // At its uid's share the new client may only take the place of one of its
  // own (then `served` does not grow). Lease holders are never closed for
  // room: without the share, one uid holding a lease on every connection
  // kept every other uid out.
  const bool at_share =
      ctx_.limits.max_connections_per_uid > 0 && own >= ctx_.limits.max_connections_per_uid;
  if (at_share && !make_room(uid, /*own_uid_only=*/true)) {
    client_log().error(
        "uid {} holds {} connections (--max-connections-per-uid), none of them idle without a "
        "lease; a new client of that uid was refused",
        uid, own);
    return refuse("uid " + std::to_string(uid) + " holds " + std::to_string(own) +
                  " connections to genomed, the limit of one uid (--max-connections-per-uid), "
                  "and none of them is idle without a lease; close connections (a connection "
                  "holding a lease keeps its slot) or have the operator raise "
                  "--max-connections-per-uid");
  }
  if (!at_share && served >= ctx_.limits.max_connections &&
      !make_room(uid, /*own_uid_only=*/false)) {
    client_log().error(
        "{} clients connected (--max-connections), none of them idle without a lease that a "
        "client of uid {} may replace; a new client was refused",
        served, uid);
    return refuse("genomed serves " + std::to_string(served) +
                  " connections, its limit (--max-connections), and none it may close for this "
                  "client is idle without a lease; retry later");
  }
  auto conn = std::make_shared<Connection>(fd, id, ctx_, static_cast<ConnectionHost&>(*this));
  {
    MutexLock lock(mu_);
    conns_.emplace(id, Entry{conn, uid});
  }
  // In the table first: its first event may come at once, on another thread.
  if (Status s = threads_.add(fd, conn->id(), Connection::initial_events()); !s.ok()) {
    spdlog::error("connection {}: {}; closing it", conn->id(), s.to_string());
    conn->shut_down();
  }
}

bool Server::make_room(uid_t uid, bool own_uid_only) {
  std::vector<Entry> all;
  {
    MutexLock lock(mu_);
    all.reserve(conns_.size());
    for (const auto& [id, entry] : conns_) all.push_back(entry);
  }
  std::unordered_map<uid_t, std::size_t> held;
  for (const Entry& e : all) ++held[e.uid];
  const std::size_t own = held[uid];
  struct Candidate {
    std::size_t held;  // connections of its uid
    Connection::Idle idle;
    const Entry* entry;
  };
  std::vector<Candidate> candidates;
  for (const Entry& e : all) {
    // A uid holding no more connections than the new client's keeps them:
    // its fair share. The new client's own uid gives way to itself.
    if (e.uid != uid && (own_uid_only || held[e.uid] <= own)) continue;
    if (auto idle = e.conn->idle()) candidates.push_back({held[e.uid], *idle, &e});
  }
  // The uid holding the most first, then the connection idle longest.
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.held != b.held) return a.held > b.held;
    if (a.idle.since != b.idle.since) return a.idle.since < b.idle.since;
    return a.entry->conn->id() < b.entry->conn->id();
  });
  // Named in the evicted client's answer and in the log line.
  const std::string limit =
      own_uid_only
          ? "--max-connections-per-uid " + std::to_string(ctx_.limits.max_connections_per_uid)
          : "--max-connections " + std::to_string(ctx_.limits.max_connections);
  const Status why(Errc::overloaded,
                   "genomed closed this connection, idle and holding no lease, to make room for "
                   "a new client" +
                       std::string(own_uid_only
                                       ? " of its uid: one uid holds at most " +
                                             std::to_string(ctx_.limits.max_connections_per_uid) +
                                             " connections at once (--max-connections-per-uid)"
                                       : ": it serves " +
                                             std::to_string(ctx_.limits.max_connections) +
                                             " connections at once (--max-connections)") +
                       "; reconnect");
  const auto now = ipc::Clock::now();
  for (const Candidate& c : candidates) {
    if (!c.entry->conn->evict(c.idle, why)) continue;  // busy meanwhile, or holds leases
    ctx_.counters->connections_evicted.fetch_add(1, std::memory_order_relaxed);
    client_log().info(
        "connection {} (uid {}, which held {}): idle for {} ms holding no lease; closed to make "
        "room for a new client of uid {} ({})",
        c.entry->conn->id(), c.entry->uid, c.held,
        std::chrono::duration_cast<std::chrono::milliseconds>(now - c.idle.since).count(), uid,
        limit);
    return true;
  }
  return false;
}

void Server::deadlines_due() {
  const std::vector<std::uint64_t> due = timer_.take_due();
  rearm(timer_.fd(), kTimerKey, EPOLLIN | EPOLLONESHOT);
  for (std::uint64_t id : due) {
    if (auto conn = find(id)) conn->on_deadline();
  }
}

void Server::rearm(int fd, ConnectionId id, std::uint32_t events) {
  threads_.rearm(fd, id, events);
}

void Server::schedule(ConnectionId id, ipc::Clock::time_point when) { timer_.schedule(when, id); }

void Server::blocking(bool begins) {
  if (begins)
    threads_.blocking_begins();
  else
    threads_.blocking_ends();
}

void Server::closed(ConnectionId id, int fd) {
  threads_.remove(fd);
  MutexLock lock(mu_);
  conns_.erase(id);
}

void Server::stop_accepting() {
  MutexLock lock(listen_mu_);
  if (listen_fd_ < 0) return;
  threads_.remove(listen_fd_);
  ::close(listen_fd_);
  listen_fd_ = -1;
  if (spare_fd_ >= 0) ::close(spare_fd_);
  spare_fd_ = -1;
  if (!path_.empty()) ::unlink(path_.c_str());
}

void Server::stop() {
  stop_accepting();
  const auto all = [this] {
    std::vector<std::shared_ptr<Connection>> conns;
    MutexLock lock(mu_);
    for (const auto& [id, entry] : conns_) conns.push_back(entry.conn);
    return conns;
  };
  // A connection a request thread serves right now closes when that thread
  // is done with it; the threads finish their events, then end.
  for (const auto& conn : all()) conn->shut_down();
  threads_.stop();
  for (const auto& conn : all()) conn->shut_down();
  MutexLock lock(mu_);
  conns_.clear();
}

Server::~Server() { stop(); }

}  // namespace genomed::loader
