#include "loader/introspection.h"

#include <algorithm>
#include <string>

namespace genomed::loader {
namespace {

std::uint64_t ms_count(Clock::duration d) {
  return static_cast<std::uint64_t>(
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(d).count()));
}

}  // namespace

ipc::AdapterStatus adapter_status(const std::string& name, const AdapterEntry& e,
                                  const std::optional<cache::ResidentCache::EntryView>& view,
                                  std::uint64_t leases, std::optional<Clock::time_point> expiry,
                                  Clock::time_point now) {
  ipc::AdapterStatus s;
  s.name = name;
  s.state = state_name(e.state);
  s.generation = e.generation;
  if (view) {
    s.digest = e.digest.hex();
    s.bytes = view->length;
    s.leases = leases;
    s.pinned = view->pinned;
    if (s.leases == 0) s.idle_ms = ms_count(now - e.last_used);
    if (expiry && s.leases == 0) s.expires_in_ms = *expiry > now ? ms_count(*expiry - now) : 0;
  } else if (e.flight) {
    s.fill_total = e.flight->progress.total.load(std::memory_order_relaxed);
    s.filled = e.flight->progress.filled.load(std::memory_order_relaxed);
  }
  return s;
}

Figures Figures::of(const CoordinatorCounters& counters, const cache::ResidentCache& cache,
                    const Leases& leases, const AdmissionQueue& admission, std::uint64_t adapters,
                    std::uint64_t loading) {
  Figures f;
  f.counters = counters;
  f.evictions = cache.evictions();
  f.bytes_resident = cache.bytes_resident();
  f.bytes_reserved = cache.bytes_reserved();
  f.budget = cache.budget();
  f.admission_waiting = admission.waiting();
  f.adapters_resident = adapters - loading;
  f.adapters_loading = loading;
  // As the clients hold them: an idle slot's lease counts 0, a busy one what
  // is taken through it (a drain waits for this to reach 0).
  f.leases_active = leases.held_total();
  f.leases_granted = leases.granted();
  f.lease_slots = leases.slot_count();
  f.slot_hits = leases.slot_uses();
  f.slot_violations = leases.slot_violations();
  f.adapters_pinned = cache.pinned_count();
  f.bytes_pinned = cache.bytes_pinned();
  f.shared_copies = cache.shared_copies();
  f.bytes_shared = cache.bytes_shared();
  return f;
}

bool saturated(const PoolStats& pool, std::chrono::milliseconds after) {
  return after.count() > 0 && pool.all_busy_ms >= after.count();
}

ipc::StatsReply stats_reply(const Figures& f, const PoolStats& pool,
                            const Resilience::Snapshot& resilience, std::uint64_t load_retries,
                            std::uint64_t probes_waiting, std::chrono::milliseconds saturated_after) {
  ipc::StatsReply r;
  auto put = [&](const char* key, std::uint64_t v) { r.values.emplace_back(key, v); };
  const CoordinatorCounters& c = f.counters;
  put("loads_started", c.loads_started);
  put("loads_completed", c.loads_completed);
  put("loads_failed", c.loads_failed);
  put("loads_cancelled", c.loads_cancelled);
  // Leases taken through slots are hits the daemon did not serve itself.
  put("hits", c.hits + f.slot_hits);
  put("misses", c.misses);
  put("evictions", f.evictions);
  put("bytes_resident", f.bytes_resident);
  put("bytes_reserved", f.bytes_reserved);
  put("bytes_loaded", c.bytes_loaded);
  put("admission_waiting", f.admission_waiting);
  put("request_restarts", c.request_restarts);
  put("budget_bytes", f.budget);
  put("adapters_resident", f.adapters_resident);
  put("adapters_loading", f.adapters_loading);
  put("leases_active", f.leases_active);
  put("leases_granted", f.leases_granted);
  put("lease_slots", f.lease_slots);
  put("slot_hits", f.slot_hits);
  put("lease_slot_violations", f.slot_violations);
  put("workers_alive", pool.workers_alive);
  put("worker_restarts", pool.worker_restarts);
  put("worker_crashes", pool.worker_crashes);
  put("worker_timeouts", pool.worker_timeouts);
  put("queue_depth", pool.queue_depth);
  put("load_retries", load_retries);
  put("quarantined", resilience.quarantined);
  r.values.emplace_back("breaker_state", CircuitBreaker::state_name(resilience.breaker));
  put("breaker_transitions", resilience.transitions);
  put("pool_healthy", pool.healthy ? 1 : 0);
  put("workers_busy", pool.workers_busy);
  put("pool_saturated", saturated(pool, saturated_after) ? 1 : 0);
  put("probes_waiting", probes_waiting);
  put("adapters_pinned", f.adapters_pinned);
  put("bytes_pinned", f.bytes_pinned);
  put("idle_unloads", c.idle_unloads);
  put("prefetches_dropped", c.prefetches_dropped);
  put("loads_shared", c.loads_shared);
  put("shared_copies", f.shared_copies);
  put("bytes_shared", f.bytes_shared);
  return r;
}

ipc::HealthReply health_reply(bool shutting_down, const PoolStats& pool,
                              const Resilience::Snapshot& resilience,
                              std::chrono::milliseconds saturated_after) {
  ipc::HealthReply reply{true, "", saturated(pool, saturated_after)};
  const auto unhealthy = [&](std::string why) {
    reply.healthy = false;
    reply.reason = std::move(why);
    return reply;
  };
  if (shutting_down) return unhealthy("shutting down");
  if (!pool.healthy) {
    return unhealthy("loader workers restarted too often; spawning resumes in " +
                     std::to_string(pool.unhealthy_ms_left) + " ms");
  }
  if (resilience.breaker != CircuitBreaker::State::closed) {
    return unhealthy(std::string("circuit breaker ") +
                     CircuitBreaker::state_name(resilience.breaker) +
                     ": loads fail fast until it closes");
  }
  if (pool.workers_alive == 0) return unhealthy("no loader worker is alive");
  if (reply.saturated) {
    // Slow jobs hold every worker (hostile files, huge fills): cold loads
    // queue behind them although nothing has failed.
    return unhealthy("loader pool saturated: every worker (" + std::to_string(pool.workers_busy) +
                     ") has been on its current job for " + std::to_string(pool.all_busy_ms) +
                     " ms or more (--saturated-after-ms " +
                     std::to_string(saturated_after.count()) +
                     "); cold loads wait, cached adapters are still served");
  }
  return reply;
}

}  // namespace genomed::loader
