// Steady time, and the waits measured by it, as something a component is
// given rather than reaches for: the coordinator and the pool take a
// WaitClock so their deadlines (admission timeout, waiter backstop,
// predecessor wait; job deadlines, kill grace, restart backoff) are unit-
// tested on a fake clock that a test advances by hand, without sleeping.
#pragma once

#include <poll.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "common/mutex.h"

namespace genomed {

class WaitClock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  virtual TimePoint now() const = 0;
  // Blocks on `cv` (`lock` held on entry and on return) until it is
  // notified or now() reaches `deadline`. May return early (spuriously):
  // callers re-check their condition and the time.
  virtual void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                          TimePoint deadline) = 0;
  // Waits like ::poll(fds, n, timeout) for events on `fds`, with the
  // timeout ending when now() reaches `deadline` (TimePoint::max(): none).
  // Returns what ::poll returns: the number of descriptors with revents,
  // 0 once the clock reached `deadline` with none ready, -1 with errno set
  // (EINTR). A deadline already reached still reports ready descriptors.
  virtual int poll(pollfd* fds, nfds_t n, TimePoint deadline) = 0;

  // The real steady clock.
  static WaitClock& steady();

 protected:
  ~WaitClock() = default;
};

// Waits until `pred` holds (true) or `clock` reaches `deadline` (false).
// `pred` runs with `lock` held; the analysis cannot tie `lock` to the mutex
// the predicate names (callers annotate the predicate REQUIRES(that mutex)).
template <class Pred>
bool wait_until(WaitClock& clock, std::condition_variable& cv, MutexLock& lock,
                WaitClock::TimePoint deadline, Pred pred) NO_THREAD_SAFETY_ANALYSIS {
  while (!pred()) {
    if (clock.now() >= deadline) return false;
    clock.wait_until(cv, lock.native(), deadline);
  }
  return true;
}

}  // namespace genomed
