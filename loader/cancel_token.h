// A load's cancellation, shared by whoever started its jobs (one per load in
// the coordinator) and the JobRunner that runs them: the runner takes queued
// jobs out of its queue and answers a running one `cancelled` (Pool::cancel).
// Also the priority of the load's queued jobs.
//
// Threads: any; lock-free (atomics). fd() is made once and closed by the
// destructor, so a slot may poll it while the token is alive.
#pragma once

#include <atomic>

namespace genomed::loader {

// Cancels every job run() was given it with, queued or running (Pool::cancel).
// Shared by the caller and the jobs; one per load in the coordinator.
class CancelToken {
 public:
  CancelToken();
  ~CancelToken();
  CancelToken(const CancelToken&) = delete;
  CancelToken& operator=(const CancelToken&) = delete;

  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  // An eventfd that turns readable once cancelled (-1 if none could be
  // made: the slot then sees the flag within one watch slice of 100 ms).
  int fd() const { return fd_; }
  // Sets the flag and makes fd() readable; idempotent. Called by a
  // JobRunner's cancel().
  void fire();
  // The priority of the load's queued jobs (Priority as an int): the pool's
  // queue serves the highest first, oldest first within one. Raised, never
  // lowered, when a more urgent request joins the load.
  int priority() const { return priority_.load(std::memory_order_relaxed); }
  void raise_priority(int p) {
    int cur = priority_.load(std::memory_order_relaxed);
    while (cur < p && !priority_.compare_exchange_weak(cur, p, std::memory_order_relaxed)) {
    }
  }

 private:
  std::atomic<bool> cancelled_{false};
  std::atomic<int> priority_{0};  // Priority::low until a request joins the load
  int fd_ = -1;
};

}  // namespace genomed::loader
