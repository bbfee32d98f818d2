// How many warnings one client connection may write to the daemon's log.
// A client controls how often it misbehaves (a RELEASE of unknown lease ids
// costs it a few bytes), so one warning per misdeed would let it fill the
// disk: instead it gets the first `burst` lines, then at most one per
// `interval`, and each line written after a pause says how many were held
// back. Whatever a client sends, the lines it causes are bounded by
// burst + (its connection's lifetime / interval) + 1 (the last count, at its
// end).
//
// LogByteBudget is the other half: one allowance of log bytes per second for
// the whole daemon (loader/client_log.h), so that reconnecting, which gives
// a client a fresh LogLimiter, does not give it more of the disk.
//
// Time is passed in, so tests need no clock. Not thread-safe: each is used
// under its owner's mutex.
#pragma once

#include <chrono>
#include <cstdint>

namespace genomed::loader {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::uint32_t burst = 10;                    // lines written before any is held back
    std::chrono::milliseconds interval{10'000};  // then at most one line per interval
  };

  explicit LogLimiter(Options options) : options_(options) {}

  struct Verdict {
    bool write = false;
    std::uint64_t held_back = 0;  // when writing: lines held back since the last one written
  };
  // Whether a warning at `now` may be written; if not, it is counted as held back.
  Verdict admit(Clock::time_point now);

  // Lines held back since the last one written: to report when the connection ends.
  std::uint64_t held_back() const { return held_back_; }

 private:
  const Options options_;
  std::uint64_t written_ = 0;
  std::uint64_t held_back_ = 0;
  Clock::time_point next_after_burst_{};  // the earliest time a line may be written once
                                          // the burst is spent
};

// A token bucket of bytes: `bytes_per_second` flow in, at most `burst_bytes`
// are kept. Over any span of time T it grants at most
// burst_bytes + bytes_per_second * T bytes, whatever it is asked.
class LogByteBudget {
 public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    std::uint64_t bytes_per_second = 64 * 1024;
    std::uint64_t burst_bytes = 256 * 1024;
  };

  // Full at `start`.
  LogByteBudget(Options options, Clock::time_point start);

  // Takes `bytes` if the bucket holds that many at `now`; else takes nothing.
  bool take(Clock::time_point now, std::uint64_t bytes);

  const Options& options() const { return options_; }

 private:
  const Options options_;
  double tokens_;            // bytes that may be written now; in [0, burst_bytes]
  Clock::time_point last_;   // when tokens_ was last brought up to date
};

}  // namespace genomed::loader
