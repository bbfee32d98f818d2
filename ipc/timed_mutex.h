// A mutex whose lock can wait until a deadline, for the client's call_mu.
//
// Why not std::timed_mutex: with a steady_clock deadline it locks through
// pthread_mutex_clocklock, which GCC 12's ThreadSanitizer does not
// intercept; TSan then sees every unlock of a mutex it never saw locked
// (a false "unlock of an unlocked mutex") and none of the ordering the lock
// provides. This one is built from std::mutex and std::condition_variable,
// which every sanitizer understands. Uncontended, lock() and unlock() cost
// one short critical section each.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace genomed::ipc {

class TimedMutex {
 public:
  void lock() {
    std::unique_lock guard(mu_);
    free_.wait(guard, [&] { return !locked_; });
    locked_ = true;
  }

  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline) {
    std::unique_lock guard(mu_);
    if (!free_.wait_until(guard, deadline, [&] { return !locked_; })) return false;
    locked_ = true;
    return true;
  }

  bool try_lock() {
    std::lock_guard guard(mu_);
    if (locked_) return false;
    locked_ = true;
    return true;
  }

  void unlock() {
    {
      std::lock_guard guard(mu_);
      locked_ = false;
    }
    free_.notify_one();
  }

 private:
  std::mutex mu_;
  std::condition_variable free_;
  bool locked_ = false;  // guarded by mu_: true while an owner holds this mutex
};

}  // namespace genomed::ipc
