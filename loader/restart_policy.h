// When the pool may start a replacement worker, as in an OTP supervisor:
// - each slot backs off exponentially after consecutive deaths of its worker
//   (first delay, multiplier, cap), and resets after a job completes;
// - restart intensity: more than `max_restarts` restarts within `period`
//   and the whole pool stops spawning for one `period`, reporting itself
//   unhealthy; loads fail fast with `unhealthy` meanwhile.
// Time comes from an injected clock so tests need no sleeps.
//
// Not thread-safe: the pool calls it under its mutex.
#pragma once

#include <chrono>
#include <deque>
#include <functional>

namespace genomed::loader {

struct RestartOptions {
  std::chrono::milliseconds backoff_first{50};
  double backoff_multiplier = 2.0;
  std::chrono::milliseconds backoff_max{5'000};
  int max_restarts = 10;                     // R
  std::chrono::milliseconds period{30'000};  // T
};

class RestartPolicy {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Now = std::function<TimePoint()>;

  explicit RestartPolicy(RestartOptions options, Now now = std::chrono::steady_clock::now)
      : options_(options), now_(std::move(now)) {}

  // Records a worker death of a slot that had died `consecutive` times in a
  // row (1 for the first) and returns when its replacement may start.
  TimePoint on_death(int consecutive);

  // True while the intensity limit paused spawning.
  bool unhealthy() const;
  // When spawning resumes (meaningful while unhealthy()).
  TimePoint unhealthy_until() const { return paused_until_; }
  std::chrono::milliseconds backoff(int consecutive) const;

 private:
  const RestartOptions options_;
  const Now now_;
  std::deque<TimePoint> restarts_;  // within the period, oldest first
  TimePoint paused_until_{};
};

}  // namespace genomed::loader
