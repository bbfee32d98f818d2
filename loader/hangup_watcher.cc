#include "loader/hangup_watcher.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

namespace genomed::loader {

HangupWatcher::HangupWatcher(Coordinator& coordinator) : coordinator_(coordinator) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    spdlog::error(
        "eventfd: {}; a client that hangs up while its request waits keeps its leases until "
        "the request ends",
        std::strerror(errno));
    stopping_ = true;
    return;
  }
  thread_ = std::thread([this] { run(); });
}

HangupWatcher::~HangupWatcher() {
  stop();
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void HangupWatcher::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  if (wake_fd_ >= 0) {
    const std::uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
  if (thread_.joinable()) thread_.join();
}

void HangupWatcher::watch(int fd, ConnectionId id) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    watched_[id] = Watched{fd, false};
  }
  const std::uint64_t one = 1;
  (void)!::write(wake_fd_, &one, sizeof one);
}

bool HangupWatcher::unwatch(ConnectionId id) {
  std::unique_lock lock(mu_);
  abandon_done_.wait(lock, [&] { return abandoning_ != id; });
  auto it = watched_.find(id);
  if (it == watched_.end()) return false;
  const bool hung_up = it->second.hung_up;
  watched_.erase(it);
  // Its descriptor may linger in the thread's poll set until it next wakes:
  // a stale descriptor is checked against watched_ before anything is done.
  return hung_up;
}

void HangupWatcher::run() {
  std::vector<pollfd> fds;
  std::vector<ConnectionId> ids;
  for (;;) {
    fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
    ids.assign(1, 0);
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      for (const auto& [id, w] : watched_) {
        if (w.hung_up) continue;  // abandoned already; a hang-up stays reported
        fds.push_back(pollfd{w.fd, POLLRDHUP, 0});
        ids.push_back(id);
      }
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("poll: {}; no longer watching waiting clients for hang-ups",
                    std::strerror(errno));
      return;
    }
    if (fds[0].revents != 0) {
      std::uint64_t count = 0;
      (void)!::read(wake_fd_, &count, sizeof count);
    }
    for (std::size_t i = 1; i < fds.size(); ++i) {
      if ((fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR)) == 0) continue;  // POLLNVAL: stale
      const ConnectionId id = ids[i];
      {
        std::lock_guard lock(mu_);
        auto it = watched_.find(id);
        if (it == watched_.end() || it->second.fd != fds[i].fd || it->second.hung_up) continue;
        it->second.hung_up = true;
        abandoning_ = id;
      }
      coordinator_.abandon(id);
      {
        std::lock_guard lock(mu_);
        abandoning_ = 0;
      }
      abandon_done_.notify_all();
    }
  }
}

}  // namespace genomed::loader
