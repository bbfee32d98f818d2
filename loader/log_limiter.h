// How many warnings one client connection may write to the daemon's log.
// A client controls how often it misbehaves (a RELEASE of unknown lease ids
// costs it a few bytes), so one warning per misdeed would let it fill the
// disk: instead it gets the first `burst` lines, then at most one per
// `interval`, and each line written after a pause says how many were held
// back. Whatever a client sends, the lines it causes are bounded by
// burst + (its connection's lifetime / interval) + 1 (the last count, at its
// end).
//
// Time is passed in, so tests need no clock. Not thread-safe: a connection
// calls it under its own mutex.
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

}  // namespace genomed::loader
