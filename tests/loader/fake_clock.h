// A steady-clock stand-in that tests advance by hand, so time-driven policy
// (breaker cool-downs, backoff, quarantine) is tested without sleeping.
#pragma once

#include <chrono>

namespace genomed::testing {

class FakeClock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  TimePoint now() const { return now_; }
  void advance(std::chrono::milliseconds d) { now_ += d; }
  auto fn() {
    return [this] { return now_; };
  }

 private:
  TimePoint now_ = TimePoint{} + std::chrono::hours(1);
};

}  // namespace genomed::testing

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include "common/wait_clock.h"

namespace genomed::testing {

// A WaitClock whose time moves only by advance(), which wakes every wait on
// it: condition-variable waits are notified, and each descriptor wait
// (poll) polls an eventfd of its own beside the caller's descriptors, which
// advance() makes readable. A woken wait re-checks its deadline and, if it
// is not reached, waits again as a new sleeper. Tests learn that a thread
// has begun a wait with await_sleeper_until(): synchronisation by
// condition, never by sleeping.
class FakeWaitClock final : public WaitClock {
 public:
  TimePoint now() const override {
    std::lock_guard g(mu_);
    return now_;
  }

  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint deadline) override {
    const auto id = enter({.cv = &cv, .mutex = lock.mutex(), .deadline = deadline});
    if (!id) return;
    cv.wait(lock);
    leave(*id);
  }

  int poll(pollfd* fds, nfds_t n, TimePoint deadline) override {
    // One eventfd per wait: a clock-wide one would either stay readable
    // (every other waiter would spin) or be drained by one waiter for all.
    const int wake = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake < 0) return -1;
    std::vector<pollfd> all(fds, fds + n);
    all.push_back({wake, POLLIN, 0});
    const auto id = enter({.wake_fd = wake, .deadline = deadline});
    int result = 0;
    for (;;) {
      // Once the deadline is reached, one last look at the descriptors.
      const bool due = now() >= deadline;
      result = ::poll(all.data(), all.size(), due ? 0 : -1);
      if (result < 0) break;
      int ready = 0;
      for (nfds_t i = 0; i < n; ++i) {
        fds[i].revents = all[i].revents;
        if (fds[i].revents != 0) ++ready;
      }
      if (ready > 0) {
        hold_if_asked();
        result = ready;
        break;
      }
      if (due) {
        result = 0;
        break;
      }
      rearm(*id);  // woken by advance() before its deadline: a new wait
    }
    const int saved = errno;
    if (id) leave(*id);  // before the close: advance() writes to it only while registered
    ::close(wake);
    errno = saved;
    return result;
  }

  // Moves time on and wakes every sleeper (they re-check their deadlines).
  void advance(std::chrono::milliseconds d) {
    std::set<std::mutex*> mutexes;
    {
      std::lock_guard g(mu_);
      now_ += d;
      for (Sleeper& s : sleepers_) {
        s.woken = true;
        if (s.cv != nullptr) {
          mutexes.insert(s.mutex);
        } else {
          const std::uint64_t one = 1;
          (void)!::write(s.wake_fd, &one, sizeof one);
        }
      }
    }
    // A sleeper registered under its own mutex and is inside cv.wait until
    // it retakes that mutex, so holding the mutex keeps its cv alive.
    for (std::mutex* m : mutexes) {
      std::lock_guard held(*m);
      std::lock_guard g(mu_);
      for (const auto& s : sleepers_) {
        if (s.mutex == m) s.cv->notify_all();
      }
    }
  }

  // How many threads wait on this clock now (counting only waits begun
  // since the last advance(): a woken one counts again once it waits again).
  std::size_t sleepers() const {
    std::lock_guard g(mu_);
    return std::count_if(sleepers_.begin(), sleepers_.end(),
                         [](const Sleeper& s) { return !s.woken; });
  }
  bool has_sleeper_until(TimePoint deadline) const {
    std::lock_guard g(mu_);
    return waits_until(deadline);
  }

  // Blocks until a thread waits on this clock for exactly `deadline` (the
  // wait a test means to expire, so advancing cannot race its start), in a
  // wait begun since the last advance(); false after a real 10 s (a test
  // bug or a hang).
  bool await_sleeper_until(TimePoint deadline) {
    std::unique_lock g(mu_);
    return changed_.wait_for(g, std::chrono::seconds(10), [&] { return waits_until(deadline); });
  }

  // From hold_ready_waits() to release_ready_waits(), a descriptor wait that
  // finds a descriptor ready stands still before it returns, as a
  // supervisor does that a SIGSTOP or a VM pause holds while its worker
  // answers: the test can move the clock on before that thread looks.
  void hold_ready_waits() {
    std::lock_guard g(mu_);
    holding_ = true;
  }
  void release_ready_waits() {
    std::lock_guard g(mu_);
    holding_ = false;
    changed_.notify_all();
  }
  // Blocks until `n` waits are held; false after a real 10 s.
  bool await_held_waits(std::size_t n) {
    std::unique_lock g(mu_);
    return changed_.wait_for(g, std::chrono::seconds(10), [&] { return held_ >= n; });
  }

 private:
  struct Sleeper {
    std::uint64_t id = 0;
    std::condition_variable* cv = nullptr;  // a condition-variable wait, under `mutex`
    std::mutex* mutex = nullptr;
    int wake_fd = -1;  // a descriptor wait: its eventfd
    TimePoint deadline;
    bool woken = false;  // by an advance() since it began
  };

  // Registers a wait; nullopt if its deadline is reached already.
  std::optional<std::uint64_t> enter(Sleeper s) {
    std::lock_guard g(mu_);
    if (now_ >= s.deadline) return std::nullopt;
    s.id = ++last_id_;
    sleepers_.push_back(s);
    changed_.notify_all();
    return s.id;
  }
  void leave(std::uint64_t id) {
    std::lock_guard g(mu_);
    std::erase_if(sleepers_, [&](const Sleeper& s) { return s.id == id; });
  }
  // Consumes the advance() that woke descriptor wait `id` and counts it as
  // waiting again (under mu_, so no advance() falls between the two).
  void rearm(std::uint64_t id) {
    std::lock_guard g(mu_);
    for (Sleeper& s : sleepers_) {
      if (s.id != id) continue;
      std::uint64_t ticks;
      (void)!::read(s.wake_fd, &ticks, sizeof ticks);
      s.woken = false;
    }
    changed_.notify_all();
  }
  bool waits_until(TimePoint deadline) const {
    return std::any_of(sleepers_.begin(), sleepers_.end(),
                       [&](const Sleeper& s) { return !s.woken && s.deadline == deadline; });
  }
  void hold_if_asked() {
    std::unique_lock g(mu_);
    if (!holding_) return;
    ++held_;
    changed_.notify_all();
    changed_.wait(g, [&] { return !holding_; });
    --held_;
  }

  mutable std::mutex mu_;
  std::condition_variable changed_;  // a wait began or was held, or the hold ended
  TimePoint now_ = TimePoint{} + std::chrono::hours(1);
  std::vector<Sleeper> sleepers_;
  std::uint64_t last_id_ = 0;
  bool holding_ = false;
  std::size_t held_ = 0;
};

}  // namespace genomed::testing
