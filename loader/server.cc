#include "loader/server.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "ipc/framing.h"
#include "ipc/protocol.h"

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

}  // namespace

Server::Server(std::string path, int listen_fd, ConnectionContext ctx)
    : path_(std::move(path)),
      watcher_(ctx.coordinator != nullptr ? std::make_unique<HangupWatcher>(*ctx.coordinator)
                                          : nullptr),
      ctx_([&] {
        ctx.watcher = watcher_.get();
        return ctx;
      }()),
      listen_fd_(listen_fd) {}

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
  return std::unique_ptr<Server>(new Server(socket_path, fd, ctx));
}

void Server::start() {
  accept_thread_ = std::thread([this] { accept_loop(); });
}

void Server::accept_loop() {
  while (!stopping_) {
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (stopping_) return;
      if (errno == EMFILE || errno == ENFILE) {
        // Out of descriptors: refuse this client rather than spin.
        spdlog::error("accept: {}; a client was refused", std::strerror(errno));
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      spdlog::error("accept: {}; no longer accepting", std::strerror(errno));
      return;
    }
    std::lock_guard lock(mu_);
    reap_finished();
    if (stopping_) {
      ::close(fd);
      return;
    }
    if (conns_.size() >= ctx_.limits.max_connections) {
      // Each connection owns a thread: refuse rather than exhaust them, with
      // a typed answer the client reads in place of its HELLO reply. The
      // write never blocks the accept loop: a fresh socket's buffer is empty.
      spdlog::error("{} clients connected (--max-connections); a new client was refused",
                    conns_.size());
      (void)ipc::write_frame(
          fd,
          ipc::encode_error(Status(Errc::overloaded,
                                   "genomed serves " + std::to_string(conns_.size()) +
                                       " connections, its limit (--max-connections); retry later")),
          -1, ipc::Clock::now());
      ::close(fd);
      continue;
    }
    const ConnectionId id = next_id_++;
    Conn& conn = conns_[id];
    conn.fd = fd;
    conn.thread = std::thread([this, fd, id] {
      serve_connection(fd, id, ctx_);
      // Close under mu_ and forget the number, so stop() can never shut
      // down a descriptor that was closed and reused meanwhile. The thread
      // object is joined later (next accept, or stop()).
      std::lock_guard lock(mu_);
      ::close(fd);
      if (auto it = conns_.find(id); it != conns_.end())
        it->second.fd = -1;  // absent once stop() took them
      finished_.push_back(id);
    });
  }
}

void Server::reap_finished() {
  for (ConnectionId id : finished_) {
    auto it = conns_.find(id);
    if (it == conns_.end()) continue;
    it->second.thread.join();
    conns_.erase(it);
  }
  finished_.clear();
}

void Server::stop_accepting() {
  if (stopping_.exchange(true)) return;
  ::shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  if (accept_thread_.joinable()) accept_thread_.join();
  ::close(listen_fd_);
  listen_fd_ = -1;
  ::unlink(path_.c_str());
}

void Server::stop() {
  stop_accepting();
  // Before the connections' own shutdown() below, which it would take for
  // hang-ups; their threads may still unwatch() (harmless once stopped).
  if (watcher_) watcher_->stop();
  std::map<ConnectionId, Conn> conns;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, conn] : conns_) {
      if (conn.fd >= 0) ::shutdown(conn.fd, SHUT_RDWR);  // their reads see EOF
    }
    conns.swap(conns_);
    finished_.clear();
  }
  for (auto& [id, conn] : conns) conn.thread.join();  // each closed its own descriptor
}

Server::~Server() { stop(); }

}  // namespace genomed::loader
