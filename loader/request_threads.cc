#include "loader/request_threads.h"

#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

namespace genomed::loader {
namespace {

constexpr std::uint64_t kStopKey = std::numeric_limits<std::uint64_t>::max();

}  // namespace

RequestThreads::RequestThreads(RequestThreadOptions options, Handler handler)
    : options_(options), handler_(std::move(handler)) {}

RequestThreads::~RequestThreads() {
  stop();
  if (stop_fd_ >= 0) ::close(stop_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
}

Status RequestThreads::start() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0)
    return Status(Errc::environment, std::string("epoll: ") + std::strerror(errno));
  stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0)
    return Status(Errc::environment, std::string("eventfd: ") + std::strerror(errno));
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered and never read: every waiting thread sees it
  ev.data.u64 = kStopKey;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, stop_fd_, &ev) != 0) {
    return Status(Errc::environment, std::string("epoll_ctl: ") + std::strerror(errno));
  }
  MutexLock lock(mu_);
  for (int i = 0; i < options_.base; ++i) spawn_locked();
  return Status::Ok();
}

Status RequestThreads::add(int fd, std::uint64_t key, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return Status(Errc::environment, std::string("epoll_ctl add: ") + std::strerror(errno));
  }
  return Status::Ok();
}

void RequestThreads::rearm(int fd, std::uint64_t key, std::uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = key;
  if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0 && errno != ENOENT) {
    spdlog::error("epoll_ctl rearm of descriptor {}: {}", fd, std::strerror(errno));
  }
}

void RequestThreads::remove(int fd) { (void)::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr); }

void RequestThreads::spawn_locked() {
  join_finished_locked();
  if (stopping_) return;
  const std::uint64_t index = next_index_++;
  threads_.emplace(index, std::thread([this, index] { run(index); }));
  ++live_;
  above_base_ = live_ > options_.base;
}

void RequestThreads::join_finished_locked() {
  // Each has left mu_ for good and is returning: joining is brief.
  for (std::uint64_t index : finished_) {
    auto it = threads_.find(index);
    if (it == threads_.end()) continue;
    it->second.join();
    threads_.erase(it);
  }
  finished_.clear();
}

void RequestThreads::blocking_begins() {
  MutexLock lock(mu_);
  ++blocked_;
  if (blocked_ < live_) return;  // some thread still waits for events
  if (live_ < options_.max) {
    spawn_locked();
  } else if (!warned_at_max_) {
    warned_at_max_ = true;
    spdlog::warn(
        "all {} request threads wait inside requests (--max-request-threads); other clients "
        "wait until one returns",
        live_);
  }
}

void RequestThreads::blocking_ends() {
  MutexLock lock(mu_);
  --blocked_;
}

void RequestThreads::run(std::uint64_t index) {
  for (;;) {
    epoll_event ev{};
    // Threads beyond the base wake up now and then to see whether they are
    // still needed; the base ones sleep until there is work.
    const int timeout = above_base_ ? static_cast<int>(options_.idle_exit.count()) : -1;
    const int n = ::epoll_wait(epoll_fd_, &ev, 1, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::critical("epoll_wait: {}; a request thread ends", std::strerror(errno));
      break;
    }
    if (n == 0) {
      MutexLock lock(mu_);
      // Stays if it is one of the base threads, or the last one free to
      // call epoll_wait while the others are blocked in requests.
      if (live_ <= options_.base || live_ - 1 <= blocked_ || stopping_) continue;
      --live_;
      above_base_ = live_ > options_.base;
      finished_.push_back(index);
      return;
    }
    if (ev.data.u64 == kStopKey) return;
    handler_(ev.data.u64, ev.events);
  }
  MutexLock lock(mu_);
  --live_;
  finished_.push_back(index);
}

void RequestThreads::stop() {
  std::map<std::uint64_t, std::thread> threads;
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    if (stop_fd_ >= 0) {
      const std::uint64_t one = 1;
      (void)!::write(stop_fd_, &one, sizeof one);
    }
    threads.swap(threads_);
    finished_.clear();
  }
  for (auto& [index, thread] : threads) thread.join();
}

int RequestThreads::threads() const {
  MutexLock lock(mu_);
  return live_;
}

}  // namespace genomed::loader
