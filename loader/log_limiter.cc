#include "loader/log_limiter.h"

#include <utility>

namespace genomed::loader {

LogLimiter::Verdict LogLimiter::admit(Clock::time_point now) {
  if (written_ >= options_.burst && now < next_after_burst_) {
    ++held_back_;
    return {};
  }
  ++written_;
  next_after_burst_ = now + options_.interval;
  return {true, std::exchange(held_back_, 0)};
}

}  // namespace genomed::loader
