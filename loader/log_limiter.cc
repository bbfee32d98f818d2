#include "loader/log_limiter.h"

#include <algorithm>
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

LogByteBudget::LogByteBudget(Options options, Clock::time_point start)
    : options_(options), tokens_(static_cast<double>(options.burst_bytes)), last_(start) {}

bool LogByteBudget::take(Clock::time_point now, std::uint64_t bytes) {
  if (now > last_) {
    const double seconds = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(static_cast<double>(options_.burst_bytes),
                       tokens_ + seconds * static_cast<double>(options_.bytes_per_second));
    last_ = now;
  }
  const auto want = static_cast<double>(bytes);
  if (want > tokens_) return false;
  tokens_ -= want;
  return true;
}

}  // namespace genomed::loader
