// A mutex whose lock can wait until a deadline, for the client transport's
// call_mu_. Annotated like common/mutex.h's Mutex, so clang's -Wthread-safety
// checks what it guards (scripts/thread-safety.sh).
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
#include <optional>

#include "common/mutex.h"

#define TRY_ACQUIRE(...) GENOMED_TSA(try_acquire_capability(__VA_ARGS__))

namespace genomed::client_detail {

class CAPABILITY("mutex") TimedMutex {
 public:
  void lock() ACQUIRE() {
    std::unique_lock guard(mu_);
    free_.wait(guard, [&] { return !locked_; });
    locked_ = true;
  }

  template <class Clock, class Duration>
  bool try_lock_until(const std::chrono::time_point<Clock, Duration>& deadline)
      TRY_ACQUIRE(true) {
    std::unique_lock guard(mu_);
    if (!free_.wait_until(guard, deadline, [&] { return !locked_; })) return false;
    locked_ = true;
    return true;
  }

  // By `deadline` (none: waits for ever); false if it passed first.
  template <class Clock, class Duration>
  bool lock_by(const std::optional<std::chrono::time_point<Clock, Duration>>& deadline)
      TRY_ACQUIRE(true) {
    if (!deadline) {
      lock();
      return true;
    }
    return try_lock_until(*deadline);
  }

  bool try_lock() TRY_ACQUIRE(true) {
    std::lock_guard guard(mu_);
    if (locked_) return false;
    locked_ = true;
    return true;
  }

  void unlock() RELEASE() {
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

// Holds a TimedMutex its owner has already taken (lock_by) until the end of
// the scope, exceptions included.
class SCOPED_CAPABILITY TimedMutexAdopt {
 public:
  explicit TimedMutexAdopt(TimedMutex& mu) REQUIRES(mu) : mu_(mu) {}
  ~TimedMutexAdopt() RELEASE() { mu_.unlock(); }
  TimedMutexAdopt(const TimedMutexAdopt&) = delete;
  TimedMutexAdopt& operator=(const TimedMutexAdopt&) = delete;

 private:
  TimedMutex& mu_;
};

}  // namespace genomed::client_detail
