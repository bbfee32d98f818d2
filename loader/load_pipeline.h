// The load pipeline: the steps of one load that run in workers.
//
//   probe (parse the untrusted files in a worker, plan the resident layout)
//   -> [the coordinator reserves a range: admission]
//   -> fill (copy into the range, split across workers when large)
//   -> verify (the header the worker wrote equals the probe's plan)
//
// Each job runs with a deadline and is re-run on a fresh worker when its
// worker died, as Resilience decides. Probes of large headers take turns
// (ProbeBudget) so that they never hold every worker. No lock is held while
// a job runs; the pipeline keeps no state between loads apart from its retry
// counter and the budget's turns.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "cache/resident_cache.h"
#include "common/status.h"
#include "common/wait_clock.h"
#include "layout/adapter_source.h"
#include "layout/fill_parts.h"
#include "layout/resident_layout.h"
#include "loader/pool.h"
#include "loader/probe_budget.h"
#include "loader/resilience.h"

namespace genomed::loader {

// Where the resident bytes live: the arena as the supervisor maps it.
struct ArenaView {
  const std::byte* data = nullptr;
  std::uint64_t size = 0;
};

struct PipelineOptions {
  // Deadline of a probe; a fill gets the same plus `timeout_per_gib` for
  // every GiB it writes, so large adapters are not cut off.
  std::chrono::milliseconds load_timeout{30'000};
  std::chrono::milliseconds timeout_per_gib{4'000};
  int fill_parts = 0;  // workers one large fill is split across (at most); 0: all of them
};

class LoadPipeline {
 public:
  LoadPipeline(PipelineOptions options, JobRunner& pool, ArenaView arena, Resilience& resilience,
               WaitClock& clock)
      : options_(options),
        pool_(pool),
        arena_(arena),
        resilience_(resilience),
        clock_(clock),
        budget_(static_cast<std::size_t>(std::max(1, pool.workers() - 1)), clock) {}

  // What the jobs of one step left behind.
  struct Fates {
    bool worker_failed = false;  // a worker died (the breaker learns it after the load)
    // One per worker that died and may not be reaped yet: a range it was
    // writing is given back, and a reload of the name starts, only after
    // every one is ready.
    std::vector<std::shared_future<void>> workers_gone;
  };

  Result<format::ResidentLayout> probe(const std::string& name, const format::AdapterPaths& paths,
                                       const FileIdentity& file,
                                       const std::shared_ptr<CancelToken>& cancel, Fates* fates);
  // Fills `range` with the adapter the probe planned as `layout`, then
  // verifies the header written there.
  Status fill(const std::string& name, const format::AdapterPaths& paths,
              const format::ResidentLayout& layout, cache::ResidentCache::Range range,
              const FileIdentity& file, const std::shared_ptr<CancelToken>& cancel, Fates* fates);

  // Cancels the jobs of `token`'s load: queued and running ones in the pool
  // (JobRunner::cancel), and a probe still waiting for its turn.
  void cancel(CancelToken& token);
  // A probe waiting for its turn, and every later one, fails with
  // shutting_down (before the pool stops).
  void stop() { budget_.stop(); }

  std::uint64_t retries() const { return retries_.load(std::memory_order_relaxed); }
  // Probes of large headers waiting for their turn.
  std::size_t probes_waiting() const { return budget_.waiting(); }

 private:
  // Runs a job, re-running it on a fresh worker as Resilience decides; a
  // fill is re-run only once the dead worker is reaped (never two writers
  // in one range). A cancelled job ends with `cancelled`: no strike, no
  // breaker failure, no retry.
  Result<std::string> run_job(const std::string& name, const jobs::Job& job,
                              Clock::time_point deadline, const FileIdentity& file,
                              const std::shared_ptr<CancelToken>& cancel, Fates* fates);
  Status fill_parts(const std::string& name, const jobs::Job& job, Clock::time_point deadline,
                    const FileIdentity& file, const std::shared_ptr<CancelToken>& cancel,
                    Fates* fates);

  const PipelineOptions options_;
  JobRunner& pool_;
  const ArenaView arena_;
  Resilience& resilience_;
  WaitClock& clock_;  // job deadlines
  std::atomic<std::uint64_t> retries_{0};
  ProbeBudget budget_;  // workers - 1 turns (at least 1) for large-header probes
};

}  // namespace genomed::loader
