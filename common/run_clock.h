// The time in which this process ran: a WaitClock that stands still while
// the process is not scheduled (SIGSTOP, a VM pause, a debugger holding it,
// a host starving it). genomed measures every deadline it imposes on its
// own work by it (job deadlines, queued jobs, admission, waiters, probe
// turns, idle unload): a deadline says how much of genomed's running time
// a job may take, so a pause of genomed itself is nobody's fault and
// extends every live deadline by its length.
//
// Why a heartbeat: no kernel clock stops for SIGSTOP (CLOCK_MONOTONIC and
// CLOCK_BOOTTIME both run on; per-thread CPU clocks stop, but also while a
// thread merely sleeps). A heartbeat thread looks at the underlying clock
// every `beat`; a look later than beat + slack means the process did not
// run for the excess, which is added to `paused`. Between two looks the
// clock may run at most beat + slack past the last one: a thread that
// wakes after a pause before the heartbeat has seen it (all threads resume
// together) reads at most that much of the pause, never all of it. So a
// pause is charged at most beat + slack (150 ms by default), to everyone.
//
// now() = min(raw now, last look + beat + slack) - paused. It never goes
// back and is continuous across a look that detects a pause.
//
// Thread-safe. The heartbeat thread runs between start() and stop(); unit
// tests leave it off and call beat() by hand on a fake underlying clock.
// Without looks the clock stands still, so whatever waits on it needs the
// heartbeat running: start it before, and stop it after, every user.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "common/mutex.h"
#include "common/wait_clock.h"

namespace genomed {

class RunClock final : public WaitClock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  // Told of each pause the heartbeat detects (its uncharged length), on the
  // heartbeat's thread (or beat()'s caller), with no lock held.
  using PauseObserver = std::function<void(Duration)>;

  explicit RunClock(WaitClock& raw, Duration beat = std::chrono::milliseconds(50),
                    Duration slack = std::chrono::milliseconds(100),
                    PauseObserver on_pause = nullptr);
  ~RunClock();  // stop()
  RunClock(const RunClock&) = delete;
  RunClock& operator=(const RunClock&) = delete;

  // Starts the heartbeat thread (once); stop() ends and joins it.
  void start() EXCLUDES(mu_);
  void stop() EXCLUDES(mu_);

  TimePoint now() const override EXCLUDES(mu_);
  // Waits on the underlying clock for as long as this clock has left to
  // `deadline`: never late (this clock runs no faster), early after a pause
  // (callers re-check, as after any spurious wake-up).
  void wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                  TimePoint deadline) override EXCLUDES(mu_);
  // Returns 0 only once now() reached `deadline`: a wait a pause cut short
  // waits again for the rest.
  int poll(pollfd* fds, nfds_t n, TimePoint deadline) override EXCLUDES(mu_);

  // One look of the heartbeat: records the time since the previous look
  // beyond beat + slack as paused. Public so tests can be the heartbeat.
  void beat() EXCLUDES(mu_);
  // The total the heartbeat has found the process not running.
  Duration paused() const EXCLUDES(mu_);

 private:
  Duration lead_to(TimePoint deadline) const EXCLUDES(mu_);

  WaitClock& raw_;
  const Duration beat_;
  const Duration cap_;  // beat + slack: the most of any gap charged
  const PauseObserver on_pause_;

  mutable Mutex mu_;
  // Invariant: last_look_ only moves forward; paused_ only grows, by what
  // lies beyond cap_ after the previous look, so now() never goes back.
  TimePoint last_look_ GUARDED_BY(mu_);
  Duration paused_ GUARDED_BY(mu_){};
  bool stopping_ GUARDED_BY(mu_) = false;
  std::condition_variable stop_cv_;  // with mu_: wakes the heartbeat for stop()
  std::thread heartbeat_;            // joinable between start() and stop()
};

}  // namespace genomed
