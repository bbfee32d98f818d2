// What the coordinator is told: its options (CoordinatorOptions, from the
// command line), what one request asks beyond its names (RequestOptions),
// and the hook a request calls before it blocks (WaitHook).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "genomed/types.h"
#include "loader/latency_histogram.h"
#include "loader/resilience.h"

namespace genomed::loader {

// Told just before a request blocks (waits for a load or for room). The
// cache-hit path never calls it. It is called with the coordinator's lock
// held, possibly more than once per request: it may take a lock of its own
// (the coordinator's first) but must not call back into the coordinator.
class WaitHook {
 public:
  virtual void before_wait() = 0;

 protected:
  ~WaitHook() = default;
};

struct CoordinatorOptions {
  std::chrono::milliseconds load_timeout{30'000};
  std::chrono::milliseconds timeout_per_gib{4'000};
  std::chrono::milliseconds admission_timeout{5'000};  // wait for room when the budget is full
  int fill_parts = 0;   // workers one large fill is split across (at most); 0: all of them
  int job_retries = 2;  // re-runs of a job whose worker died, each on a fresh worker
  // HEALTH reports the pool saturated once every worker has been on its
  // current job this long (0: never).
  std::chrono::milliseconds saturated_after{5'000};
  // Leases one connection may hold at once; an ACQUIRE that would pass it
  // is refused with limit_exceeded. Bounds what one client can make the
  // daemon keep (a lease record costs about 100 bytes) and what its
  // disconnect costs (O(its leases), under the coordinator's lock).
  std::size_t max_leases_per_connection = 4096;
  // Bytes (page-rounded ranges) the pinned adapters may hold together; 0:
  // the whole budget. A PIN that would pass it is pin_budget_exceeded.
  std::uint64_t pin_budget = 0;
  // An unleased, unpinned adapter unused this long is unloaded (0: never),
  // unless a request gave it a keep-alive of its own.
  std::chrono::milliseconds idle_unload{0};
  BreakerOptions breaker;
  QuarantineOptions quarantine;
  // Load durations and admission waits, for the metrics endpoint (null: not kept).
  std::shared_ptr<DaemonHistograms> histograms;
};

// What a LOAD, ACQUIRE or PIN asks beyond its names.
struct RequestOptions {
  // Idle time after which the adapters it names are unloaded (0: never);
  // nullopt leaves each one's keep-alive as it is (at first: --idle-unload).
  std::optional<std::chrono::milliseconds> keep_alive;
  // Its loads' worker jobs are queued at (at least) this priority.
  Priority priority = Priority::normal;
  // LOAD only: a prefetch. Low priority; takes free room only (never evicts
  // a leased, pinned or used adapter: every resident one was used more
  // recently than this one), never waits in the admission queue or passes
  // it, and fails with prefetch_dropped when it cannot fit.
  bool prefetch = false;
};

}  // namespace genomed::loader
