#include "common/run_clock.h"

#include <algorithm>

namespace genomed {

RunClock::RunClock(WaitClock& raw, Duration beat, Duration slack, PauseObserver on_pause)
    : raw_(raw), beat_(beat), cap_(beat + slack), on_pause_(std::move(on_pause)) {
  MutexLock lock(mu_);
  last_look_ = raw_.now();
}

RunClock::~RunClock() { stop(); }

void RunClock::start() {
  MutexLock lock(mu_);
  if (heartbeat_.joinable() || stopping_) return;
  heartbeat_ = std::thread([this] {
    for (;;) {
      {
        MutexLock wait(mu_);
        const TimePoint next = last_look_ + beat_;
        while (!stopping_ && raw_.now() < next) raw_.wait_until(stop_cv_, wait.native(), next);
        if (stopping_) return;
      }
      beat();
    }
  });
}

void RunClock::stop() {
  std::thread heartbeat;
  {
    MutexLock lock(mu_);
    stopping_ = true;
    heartbeat.swap(heartbeat_);
  }
  stop_cv_.notify_all();
  if (heartbeat.joinable()) heartbeat.join();
}

WaitClock::TimePoint RunClock::now() const {
  // The underlying clock is read under mu_: a reading older than a look
  // that raised paused_ would make now() go back.
  MutexLock lock(mu_);
  return std::min(raw_.now(), last_look_ + cap_) - paused_;
}

void RunClock::beat() {
  Duration uncharged{};
  {
    MutexLock lock(mu_);
    const TimePoint raw = raw_.now();
    if (raw <= last_look_) return;
    // Continuous: now() was capped at last_look_ + cap_ - paused_ until
    // this look, and is raw - paused_ after it.
    if (raw - last_look_ > cap_) {
      uncharged = raw - last_look_ - cap_;
      paused_ += uncharged;
    }
    last_look_ = raw;
  }
  if (uncharged > Duration::zero() && on_pause_) on_pause_(uncharged);
}

RunClock::Duration RunClock::paused() const {
  MutexLock lock(mu_);
  return paused_;
}

RunClock::Duration RunClock::lead_to(TimePoint deadline) const { return deadline - now(); }

void RunClock::wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          TimePoint deadline) {
  if (deadline == TimePoint::max()) return raw_.wait_until(cv, lock, deadline);
  const Duration lead = lead_to(deadline);
  if (lead <= Duration::zero()) return;
  raw_.wait_until(cv, lock, raw_.now() + lead);
}

int RunClock::poll(pollfd* fds, nfds_t n, TimePoint deadline) {
  if (deadline == TimePoint::max()) return raw_.poll(fds, n, deadline);
  for (;;) {
    const Duration lead = std::max(lead_to(deadline), Duration::zero());
    const int ready = raw_.poll(fds, n, raw_.now() + lead);
    if (ready != 0 || lead == Duration::zero() || now() >= deadline) return ready;
  }
}

}  // namespace genomed
