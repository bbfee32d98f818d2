// The pool's circuit breaker. Worker failures (crashes, hangs, protocol
// violations; never ordinary validation errors) are counted in a sliding
// window:
//
//   CLOSED --(failures >= threshold within window)--> OPEN
//   OPEN   --(cool-down elapsed)--> HALF_OPEN
//   HALF_OPEN --(a probe load succeeds)--> CLOSED (cool-down reset)
//   HALF_OPEN --(a probe load fails)--> OPEN with cool-down x multiplier (capped)
//
// OPEN fails loads fast with circuit_open and a retry-after; HALF_OPEN
// admits up to `half_open_probes` loads at a time. Time comes from an
// injected clock so tests drive transitions without sleeping.
//
// Not thread-safe: the coordinator calls it under its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>

#include "common/status.h"

namespace genomed::loader {

struct BreakerOptions {
  int failure_threshold = 5;
  std::chrono::milliseconds window{10'000};
  std::chrono::milliseconds cooldown{5'000};
  double cooldown_multiplier = 2.0;
  std::chrono::milliseconds max_cooldown{60'000};
  int half_open_probes = 1;
};

class CircuitBreaker {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Now = std::function<TimePoint()>;
  enum class State { closed, open, half_open };

  explicit CircuitBreaker(BreakerOptions options, Now now = std::chrono::steady_clock::now);

  // A permission to run one load. `probe` loads are the HALF_OPEN trials.
  struct Ticket {
    bool probe = false;
  };
  // Errc::circuit_open with the time left when the breaker refuses.
  Result<Ticket> admit();
  // The load's outcome: `worker_failed` when a worker crashed or hung during
  // it. A load that ended with a validation error counts as a success: the
  // worker did its job.
  void record(const Ticket& ticket, bool worker_failed);
  // A worker failure outside of a completed load (each crash of a retried
  // load counts in the window).
  void record_failure();

  State state();  // advances OPEN -> HALF_OPEN when the cool-down elapsed
  static const char* state_name(State s);
  std::uint64_t transitions() const { return transitions_; }
  std::chrono::milliseconds current_cooldown() const { return cooldown_; }

 private:
  void transition(State to, const std::string& why);
  void prune(TimePoint now);

  const BreakerOptions options_;
  const Now now_;
  State state_ = State::closed;
  std::deque<TimePoint> failures_;  // within the window, oldest first (CLOSED only)
  TimePoint open_until_{};
  std::chrono::milliseconds cooldown_;
  int probes_in_flight_ = 0;
  std::uint64_t transitions_ = 0;
};

}  // namespace genomed::loader
