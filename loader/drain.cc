#include "loader/drain.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <thread>

#include "common/duration_parse.h"

namespace genomed::loader {

Drain::Outcome Drain::run(const std::function<std::uint64_t()>& leases_active) {
  MutexLock lock(mu_);
  deadline_ = clock_.now() + timeout_;
  active_.store(true, std::memory_order_release);
  // Woken by every lease end (and cut_short); the predicate is re-checked
  // under mu_ each time, so a lease that ends between the count and the wait
  // is not missed: its report takes mu_, which the wait gives up atomically.
  wait_until(clock_, cv_, lock, deadline_,
             [&]() REQUIRES(mu_) { return cut_short_ || leases_active() == 0; });
  if (cut_short_) return Outcome::cut_short;
  return leases_active() == 0 ? Outcome::no_leases : Outcome::timed_out;
}

void Drain::leases_may_have_ended() {
  if (!active()) return;
  MutexLock lock(mu_);
  cv_.notify_all();
}

void Drain::cut_short() {
  MutexLock lock(mu_);
  cut_short_ = true;
  cv_.notify_all();
}

Status Drain::refusal() const {
  return Status(Errc::shutting_down,
                "genomed is draining before it stops: no new loads or leases; leases held are "
                "served until released (or --drain-timeout " +
                    format_duration(timeout_) + "); use the next genomed instance");
}

std::string Drain::health_reason() const {
  MutexLock lock(mu_);
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline_ - clock_.now());
  return "draining: stopping once the leases held are released, within " +
         std::to_string(std::max<std::int64_t>(0, left.count())) + " ms (--drain-timeout)";
}

const char* Drain::outcome_name(Outcome o) {
  switch (o) {
    case Outcome::no_leases:
      return "every lease was released";
    case Outcome::timed_out:
      return "--drain-timeout passed";
    case Outcome::cut_short:
      return "a second stop signal arrived";
  }
  return "?";
}

}  // namespace genomed::loader

namespace genomed::loader {

Drain::Outcome run_drain(Drain& drain, const sigset_t& stop_signals,
                         const std::function<std::uint64_t()>& leases_active) {
  const auto start = std::chrono::steady_clock::now();  // for the log: real time
  const std::uint64_t held = leases_active();
  if (held > 0) {
    spdlog::info("draining: {} lease(s) held; stopping once they are released, within {}", held,
                 format_duration(drain.timeout()));
  }
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    int sig = 0;
    ::sigwait(&stop_signals, &sig);
    if (!done.load()) drain.cut_short();
  });
  const Drain::Outcome outcome = drain.run(leases_active);
  done.store(true);
  // Wakes the watcher if it still waits (the signal is blocked, so sigwait
  // takes it); a watcher that already returned makes this a no-op.
  ::pthread_kill(watcher.native_handle(), SIGTERM);
  watcher.join();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  if (outcome == Drain::Outcome::no_leases) {
    if (held > 0) spdlog::info("drained in {} ms: every lease was released", ms.count());
  } else {
    spdlog::warn("drain ended after {} ms ({}); {} lease(s) still held are dropped", ms.count(),
                 Drain::outcome_name(outcome), leases_active());
  }
  return outcome;
}

}  // namespace genomed::loader
