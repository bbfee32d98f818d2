#include "loader/deadline_timer.h"

#include <spdlog/spdlog.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace genomed::loader {

DeadlineTimer::~DeadlineTimer() {
  if (fd_ >= 0) ::close(fd_);
}

Status DeadlineTimer::open() {
  // steady_clock is CLOCK_MONOTONIC, so heap times convert to timerfd times 1:1.
  fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (fd_ < 0) return Status(Errc::environment, std::string("timerfd: ") + std::strerror(errno));
  return Status::Ok();
}

void DeadlineTimer::schedule(Clock::time_point when, std::uint64_t key) {
  MutexLock lock(mu_);
  heap_.emplace(when, key);
  if (when < set_for_) set_locked(when);
}

std::vector<std::uint64_t> DeadlineTimer::take_due() {
  std::uint64_t expirations = 0;
  (void)!::read(fd_, &expirations, sizeof expirations);
  std::vector<std::uint64_t> due;
  const auto now = Clock::now();
  MutexLock lock(mu_);
  while (!heap_.empty() && heap_.top().first <= now) {
    due.push_back(heap_.top().second);
    heap_.pop();
  }
  set_for_ = Clock::time_point::max();
  if (!heap_.empty()) set_locked(heap_.top().first);
  return due;
}

void DeadlineTimer::set_locked(Clock::time_point when) {
  set_for_ = when;
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch());
  itimerspec spec{};
  // A time at or before the epoch would disarm the timer: one nanosecond is already due.
  spec.it_value.tv_sec = static_cast<time_t>(std::max<long long>(ns.count(), 1) / 1'000'000'000);
  spec.it_value.tv_nsec = static_cast<long>(std::max<long long>(ns.count(), 1) % 1'000'000'000);
  if (::timerfd_settime(fd_, TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
    spdlog::error("timerfd_settime: {}; connection deadlines may fire late", std::strerror(errno));
  }
}

}  // namespace genomed::loader
