// Introspection: LIST, STATS and HEALTH, built from snapshots. The coordinator
// copies its figures under its mutex (Figures, O(1)); the pool and
// Resilience give snapshots under their own locks, taken before it; the
// replies are put together here with no lock held. The key order of STATS
// is protocol.md's. A LIST page is O(page): each row is built from what
// the coordinator holds on its adapter, under its mutex.
//
// Threads and locks: pure functions of their arguments, apart from
// Figures::of, which reads the coordinator's parts under its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "cache/resident_cache.h"
#include "ipc/protocol.h"
#include "loader/adapter_table.h"
#include "loader/admission_queue.h"
#include "loader/leases.h"
#include "loader/pool.h"
#include "loader/resilience.h"

namespace genomed::loader {

// What the coordinator counts itself (the rest its parts count).
struct CoordinatorCounters {
  std::uint64_t loads_started = 0, loads_completed = 0, loads_failed = 0, loads_cancelled = 0;
  std::uint64_t hits = 0, misses = 0, bytes_loaded = 0, request_restarts = 0;
  std::uint64_t idle_unloads = 0, prefetches_dropped = 0;
  std::uint64_t loads_shared = 0;  // loads published as an alias of a resident copy
};

// The coordinator's figures at one moment.
struct Figures {
  CoordinatorCounters counters;
  std::uint64_t evictions = 0, bytes_resident = 0, bytes_reserved = 0, budget = 0;
  std::uint64_t admission_waiting = 0, adapters_resident = 0, adapters_loading = 0;
  std::uint64_t leases_active = 0, leases_granted = 0, lease_slots = 0, slot_hits = 0;
  std::uint64_t slot_violations = 0, adapters_pinned = 0, bytes_pinned = 0;
  std::uint64_t shared_copies = 0, bytes_shared = 0;

  // Under the coordinator's mutex. `adapters`: entries in all, `loading`
  // of them LOADING.
  static Figures of(const CoordinatorCounters& counters, const cache::ResidentCache& cache,
                    const Leases& leases, const AdmissionQueue& admission,
                    std::uint64_t adapters, std::uint64_t loading);
};

// One LIST row: the entry, its cache view (nullopt while loading), the
// leases its clients hold (Leases::held) and its idle expiry.
ipc::AdapterStatus adapter_status(const std::string& name, const AdapterEntry& e,
                                  const std::optional<cache::ResidentCache::EntryView>& view,
                                  std::uint64_t leases, std::optional<Clock::time_point> expiry,
                                  Clock::time_point now);

// Every worker has been on its current job for `after` or longer (0: never).
bool saturated(const PoolStats& pool, std::chrono::milliseconds after);

ipc::StatsReply stats_reply(const Figures& f, const PoolStats& pool,
                            const Resilience::Snapshot& resilience, std::uint64_t load_retries,
                            std::uint64_t probes_waiting, std::chrono::milliseconds saturated_after);

// Healthy unless stopping, the pool paused spawning, the breaker is not
// closed, no worker lives, or the pool is saturated.
ipc::HealthReply health_reply(bool shutting_down, const PoolStats& pool,
                              const Resilience::Snapshot& resilience,
                              std::chrono::milliseconds saturated_after);

}  // namespace genomed::loader
