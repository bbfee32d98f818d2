// The probe budget: probes of adapters with large safetensors headers take
// turns, so that they never hold every worker and small loads keep flowing.
//
// Why: a probe's cost grows with the header (parsing, sorting, the contract),
// and a header may be 100 MB. Two such files used to hold both workers for
// the whole load deadline while a 640-byte adapter waited 29 s, and
// quarantine cannot help (a new name each time). A header's declared length
// (the 8-byte prefix of the weights file) says in advance which probes can be
// slow: over kLargeHeaderBytes, at most `slots` (the pool's workers minus one)
// of them run or queue in the pool at once; the others wait here for a turn,
// outside the pool's queue. So one worker is always left to probes of normal
// adapters (headers of a few KiB to a few hundred) and to fills. With one
// worker nothing can be left free: the one slot is all there is.
//
// The prefix is the only byte of an adapter file the supervisor reads; it
// trusts it for nothing but this scheduling (a file rewritten between this
// read and the worker's only moves its probe from one lane to the other).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "common/mutex.h"
#include "common/status.h"
#include "common/wait_clock.h"
#include "loader/pool.h"

namespace genomed::loader {

// Headers above this take turns. A real adapter's header takes about 150
// bytes per tensor: 1 MiB is some 7,000 tensors, beyond any dense model's
// LoRA; only adapters on every expert of a MoE model come above it.
inline constexpr std::uint64_t kLargeHeaderBytes = 1u << 20;

// The header length the weights file at `path` declares in its first 8 bytes
// (little-endian), at most its size minus 8; 0 when it cannot be read (then
// the probe fails fast in the worker, which says why). Opens without
// following a symlink and without blocking, regular files only.
std::uint64_t declared_header_bytes(const std::string& path);
// The same from the open weights file the probe will read (pread: its
// offset is shared with the workers and neither used nor moved).
std::uint64_t declared_header_bytes(int fd);

class ProbeBudget {
 public:
  // `slots` >= 1 large-header probes at a time; waits measured by `clock`.
  ProbeBudget(std::size_t slots, WaitClock& clock) : slots_(slots), clock_(clock) {}

  // One probe's turn; gives it back when destroyed.
  class Turn {
   public:
    explicit Turn(ProbeBudget* budget) : budget_(budget) {}
    Turn(Turn&& other) noexcept : budget_(std::exchange(other.budget_, nullptr)) {}
    Turn& operator=(Turn&&) = delete;
    Turn(const Turn&) = delete;
    ~Turn();

   private:
    ProbeBudget* budget_;
  };

  // Waits for a turn. Errors: timeout (`deadline` passed first: the probe's
  // own deadline), cancelled (`cancel` fired; see wake()), shutting_down
  // (stop() was called). No worker is involved, so none is blamed.
  Result<Turn> take(WaitClock::TimePoint deadline, const CancelToken* cancel) EXCLUDES(mu_);

  // Makes every waiter look at its cancel token again (called after one fired).
  void wake() EXCLUDES(mu_);
  // Fails every waiter and later take() with shutting_down.
  void stop() EXCLUDES(mu_);

  std::size_t waiting() const EXCLUDES(mu_);

 private:
  void give_back() EXCLUDES(mu_);

  const std::size_t slots_;
  WaitClock& clock_;
  mutable Mutex mu_;
  std::condition_variable cv_;             // a turn came back, a token fired, or stop()
  std::size_t taken_ GUARDED_BY(mu_) = 0;  // <= slots_
  std::size_t waiting_ GUARDED_BY(mu_) = 0;
  bool stopping_ GUARDED_BY(mu_) = false;
};

}  // namespace genomed::loader
