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

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <set>
#include <vector>

#include "common/wait_clock.h"

namespace genomed::testing {

// A WaitClock whose time moves only by advance(), which wakes every wait
// whose deadline it passes. Tests learn that a thread has begun a wait with
// await_sleeper_until(): synchronisation by condition, never by sleeping.
class FakeWaitClock final : public WaitClock {
 public:
  TimePoint now() const override {
    std::lock_guard g(mu_);
    return now_;
  }

  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint deadline) override {
    {
      std::lock_guard g(mu_);
      if (now_ >= deadline) return;
      sleepers_.push_back({&cv, lock.mutex(), deadline});
      changed_.notify_all();
    }
    cv.wait(lock);
    std::lock_guard g(mu_);
    auto it = std::find(sleepers_.begin(), sleepers_.end(), Sleeper{&cv, lock.mutex(), deadline});
    if (it != sleepers_.end()) sleepers_.erase(it);
  }

  // Moves time on and wakes every sleeper (they re-check their deadlines).
  void advance(std::chrono::milliseconds d) {
    std::set<std::mutex*> mutexes;
    {
      std::lock_guard g(mu_);
      now_ += d;
      for (const auto& s : sleepers_) mutexes.insert(s.mutex);
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

  // How many threads wait on this clock now.
  std::size_t sleepers() const {
    std::lock_guard g(mu_);
    return sleepers_.size();
  }
  bool has_sleeper_until(TimePoint deadline) const {
    std::lock_guard g(mu_);
    return std::any_of(sleepers_.begin(), sleepers_.end(),
                       [&](const Sleeper& s) { return s.deadline == deadline; });
  }

  // Blocks until a thread waits on this clock for exactly `deadline` (the
  // wait a test means to expire, so advancing cannot race its start); false
  // after a real 10 s (a test bug or a hang).
  bool await_sleeper_until(TimePoint deadline) {
    std::unique_lock g(mu_);
    return changed_.wait_for(g, std::chrono::seconds(10), [&] {
      return std::any_of(sleepers_.begin(), sleepers_.end(),
                         [&](const Sleeper& s) { return s.deadline == deadline; });
    });
  }

 private:
  struct Sleeper {
    std::condition_variable* cv;
    std::mutex* mutex;
    TimePoint deadline;
    bool operator==(const Sleeper&) const = default;
  };
  mutable std::mutex mu_;
  std::condition_variable changed_;
  TimePoint now_ = TimePoint{} + std::chrono::hours(1);
  std::vector<Sleeper> sleepers_;
};

}  // namespace genomed::testing
