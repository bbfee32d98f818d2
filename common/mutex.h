// An annotated mutex, so clang's -Wthread-safety can check at compile time
// which lock guards which member (libstdc++'s std::mutex carries no
// annotations). g++ ignores the attributes; scripts/thread-safety.sh runs the
// clang check over the supervisor's sources in CI.
//
//   mutable Mutex mu_;
//   int n_ GUARDED_BY(mu_);
//   void f() REQUIRES(mu_);
//   { MutexLock lock(mu_); ... lock.wait(cv, pred); }
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define GENOMED_TSA(x) __attribute__((x))
#else
#define GENOMED_TSA(x)
#endif

#define CAPABILITY(x) GENOMED_TSA(capability(x))
#define SCOPED_CAPABILITY GENOMED_TSA(scoped_lockable)
#define GUARDED_BY(x) GENOMED_TSA(guarded_by(x))
#define PT_GUARDED_BY(x) GENOMED_TSA(pt_guarded_by(x))
#define REQUIRES(...) GENOMED_TSA(requires_capability(__VA_ARGS__))
#define EXCLUDES(...) GENOMED_TSA(locks_excluded(__VA_ARGS__))
#define ACQUIRE(...) GENOMED_TSA(acquire_capability(__VA_ARGS__))
#define RELEASE(...) GENOMED_TSA(release_capability(__VA_ARGS__))
#define RETURN_CAPABILITY(x) GENOMED_TSA(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS GENOMED_TSA(no_thread_safety_analysis)

namespace genomed {

class CAPABILITY("mutex") Mutex {
 public:
  void lock() ACQUIRE() { mu_.lock(); }
  void unlock() RELEASE() { mu_.unlock(); }
  // For condition-variable waits only (MutexLock::wait*).
  std::mutex& native() { return mu_; }

 private:
  std::mutex mu_;
};

// Holds a Mutex for its scope. Waits release and retake it; the analysis
// treats the lock as held throughout, which is what the caller's code sees.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) ACQUIRE(mu) : lock_(mu.native()) {}
  ~MutexLock() RELEASE() = default;

  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  void wait(std::condition_variable& cv) { cv.wait(lock_); }
  template <class Pred>
  void wait(std::condition_variable& cv, Pred pred) {
    cv.wait(lock_, pred);
  }
  // False on timeout (pred still false).
  template <class Clock, class Duration, class Pred>
  bool wait_until(std::condition_variable& cv,
                  const std::chrono::time_point<Clock, Duration>& deadline, Pred pred) {
    return cv.wait_until(lock_, deadline, pred);
  }
  std::cv_status wait_until(std::condition_variable& cv,
                            const std::chrono::steady_clock::time_point& deadline) {
    return cv.wait_until(lock_, deadline);
  }
  // For waits measured by an injected clock (common/wait_clock.h).
  std::unique_lock<std::mutex>& native() { return lock_; }

 private:
  std::unique_lock<std::mutex> lock_;
};

}  // namespace genomed
