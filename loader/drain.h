// The graceful drain on SIGTERM (--drain-timeout): the daemon stops accepting
// clients, refuses new LOADs, ACQUIREs and PINs with `shutting_down`, answers
// HEALTH "draining", and keeps serving the connections it has (RELEASE,
// LIST, STATS, UNLOAD) until every lease has ended or the timeout passed;
// then it stops as before (waiters failed, workers ended, connections closed,
// the leases left dropped). A second SIGTERM/SIGINT cuts the drain short.
//
// Shared by main (begins and waits) and every connection (refuses, reports
// lease ends). Lock: mu_ only guards the wait; leases_active, passed to
// wait(), is called under it and must not call back into the Drain; lease
// ends are reported outside the coordinator's lock.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <string>

#include "common/mutex.h"
#include "common/status.h"
#include "common/wait_clock.h"

namespace genomed::loader {

class Drain {
 public:
  // The timeout is measured by `clock` (a fake one in unit tests).
  explicit Drain(std::chrono::milliseconds timeout, WaitClock& clock = WaitClock::steady())
      : timeout_(timeout), clock_(clock) {}

  std::chrono::milliseconds timeout() const { return timeout_; }
  // From begin() on: LOAD, ACQUIRE and PIN are refused, HEALTH says draining.
  bool active() const { return active_.load(std::memory_order_acquire); }

  enum class Outcome { no_leases, timed_out, cut_short };
  // Begins the drain and waits until leases_active() is 0, the timeout has
  // passed, or cut_short() was called.
  Outcome run(const std::function<std::uint64_t()>& leases_active) EXCLUDES(mu_);
  // A lease may have ended (a RELEASE was applied, a connection closed).
  void leases_may_have_ended() EXCLUDES(mu_);
  // Ends run() now (a second stop signal).
  void cut_short() EXCLUDES(mu_);

  // The answer to a LOAD, ACQUIRE or PIN while draining.
  Status refusal() const;
  // HEALTH's reason while draining.
  std::string health_reason() const EXCLUDES(mu_);

  static const char* outcome_name(Outcome o);

 private:
  const std::chrono::milliseconds timeout_;
  WaitClock& clock_;
  std::atomic<bool> active_{false};
  mutable Mutex mu_;
  std::condition_variable cv_;
  bool cut_short_ GUARDED_BY(mu_) = false;
  WaitClock::TimePoint deadline_ GUARDED_BY(mu_){};
};

}  // namespace genomed::loader

#include <signal.h>

namespace genomed::loader {

// Runs `drain` (Drain::run) while a helper thread waits for a second signal
// of `stop_signals` (blocked in every thread) to cut it short; logs how it
// ended.
Drain::Outcome run_drain(Drain& drain, const sigset_t& stop_signals,
                         const std::function<std::uint64_t()>& leases_active);

}  // namespace genomed::loader
