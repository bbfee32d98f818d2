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
