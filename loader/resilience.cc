#include "loader/resilience.h"

namespace genomed::loader {

Resilience::Resilience(BreakerOptions breaker, QuarantineOptions quarantine, int job_retries,
                       CircuitBreaker::Now now)
    : job_retries_(job_retries), breaker_(breaker, now), quarantine_(quarantine, now) {}

Result<CircuitBreaker::Ticket> Resilience::admit(const std::string& name,
                                                 const FileIdentity& file) {
  MutexLock lock(mu_);
  GENOMED_RETURN_IF_ERROR(quarantine_.check(name, file));
  return breaker_.admit();
}

void Resilience::record(const CircuitBreaker::Ticket& ticket, const std::string& name, bool ok,
                        bool worker_failed) {
  MutexLock lock(mu_);
  breaker_.record(ticket, worker_failed);
  if (ok) quarantine_.clear(name);
}

Resilience::Verdict Resilience::worker_died(const std::string& name, const JobFate& fate,
                                            const Status& failure, const FileIdentity& file,
                                            int attempt, bool deadline_passed) {
  Verdict v;
  v.strike = fate.blame == Blame::adapter;
  {
    MutexLock lock(mu_);
    breaker_.record_failure();
    if (v.strike) v.quarantined = quarantine_.strike(name, failure.message(), file);
  }
  v.retry = !v.quarantined && failure.code() != Errc::timeout && attempt < job_retries_ &&
            !deadline_passed;
  return v;
}

bool Resilience::lift(const std::string& name) {
  MutexLock lock(mu_);
  const bool was = quarantine_.contains(name);
  quarantine_.clear(name);
  return was;
}

Resilience::Snapshot Resilience::snapshot() const {
  MutexLock lock(mu_);
  return Snapshot{breaker_.state(), breaker_.transitions(), quarantine_.active()};
}

}  // namespace genomed::loader
