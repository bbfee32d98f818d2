// Resilience: what the supervisor does about failing workers, in one place.
// - The circuit breaker counts every worker death (a host that keeps killing
//   workers is a systematic failure too) and fails loads fast while open.
// - Quarantine strikes an adapter only for what it can cause (JobFate::blame:
//   a crash signal, an exit mid-job, a missed deadline, a protocol
//   violation); a kill genomed did not send (the OOM killer's SIGKILL) is
//   retried without a strike.
// - A job whose worker died is re-run on a fresh worker up to `job_retries`
//   times, never after a missed deadline or once the adapter is quarantined.
//
// Thread-safe: its own mutex is a leaf (nothing is called while it is held),
// so load threads consult it without the coordinator's lock.
#pragma once

#include <string>

#include "common/mutex.h"
#include "loader/circuit_breaker.h"
#include "loader/pool.h"
#include "loader/quarantine.h"

namespace genomed::loader {

class Resilience {
 public:
  Resilience(BreakerOptions breaker, QuarantineOptions quarantine, int job_retries,
             CircuitBreaker::Now now = std::chrono::steady_clock::now);

  // Before a load runs its first job: quarantined or circuit_open refuse it.
  Result<CircuitBreaker::Ticket> admit(const std::string& name, const FileIdentity& file)
      EXCLUDES(mu_);
  // After a load: a success lifts the adapter's strikes; the breaker learns
  // whether a worker failed during it.
  void record(const CircuitBreaker::Ticket& ticket, const std::string& name, bool ok,
              bool worker_failed) EXCLUDES(mu_);

  struct Verdict {
    bool strike = false;       // counted against the adapter
    bool quarantined = false;  // this strike quarantined it
    bool retry = false;        // re-run the job on a fresh worker
  };
  // A worker died running attempt `attempt` (0-based) of a job of `name`,
  // which failed with `failure`.
  Verdict worker_died(const std::string& name, const JobFate& fate, const Status& failure,
                      const FileIdentity& file, int attempt, bool deadline_passed) EXCLUDES(mu_);

  // UNLOAD lifts a quarantine; true if there was one.
  bool lift(const std::string& name) EXCLUDES(mu_);

  struct Snapshot {
    CircuitBreaker::State breaker = CircuitBreaker::State::closed;
    std::uint64_t transitions = 0;
    std::uint64_t quarantined = 0;
  };
  Snapshot snapshot() const EXCLUDES(mu_);

 private:
  const int job_retries_;
  mutable Mutex mu_;
  // mutable: state() advances OPEN -> HALF_OPEN lazily, also from snapshot().
  mutable CircuitBreaker breaker_ GUARDED_BY(mu_);
  Quarantine quarantine_ GUARDED_BY(mu_);
};

}  // namespace genomed::loader
