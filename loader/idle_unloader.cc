#include "loader/idle_unloader.h"

namespace genomed::loader {

std::optional<Clock::time_point> IdleUnloader::expiry(
    Clock::time_point last_used, std::optional<std::chrono::milliseconds> keep_alive) const {
  const auto k = keep_alive.value_or(default_keep_alive_);
  if (k.count() <= 0) return std::nullopt;
  return last_used + k;
}

void IdleUnloader::schedule(Clock::time_point at) {
  if (stopped_) return;
  if (!thread_.joinable()) {
    thread_ = std::thread([this] { run(); });
  } else if (at < wake_at_) {
    cv_.notify_all();
  }
}

std::thread IdleUnloader::stop() {
  stopped_ = true;
  cv_.notify_all();
  return std::exchange(thread_, {});
}

void IdleUnloader::run() {
  MutexLock lock(mu_);
  while (!stopped_) {
    const auto now = clock_.now();
    const auto next = sweep_(now);
    wake_at_ = next.value_or(Clock::time_point::max());
    // With nothing to expire it still looks once an hour (a bound, not a
    // schedule: schedule() wakes it for any earlier expiry).
    clock_.wait_until(cv_, lock.native(), next.value_or(now + std::chrono::hours(1)));
  }
}

}  // namespace genomed::loader
