// The load pipeline: the steps of one load, top-down in load(); those that
// run in workers are its own, those that touch the coordinator's state
// (predecessors, room, publishing) are the LoadHost's (Flights, loader/flights.h).
//
//   [wait until earlier loads of the name ended]
//   -> open the files once; the circuit breaker admits the load
//   -> probe (parse the untrusted files in a worker, plan the resident layout)
//   -> [the coordinator reserves a range: admission]
//   -> fill (copy into the range, split across workers when large, each
//      part reporting its tensors' checksums; a split fill is then sealed:
//      one more job writes the header with every checksum)
//   -> verify (the header the workers wrote equals the probe's plan and
//      holds the checksums the fill reported; the files are still the
//      version the probe read)
//   -> [publish: READY, leased to its waiters], or on failure: waiters told,
//      dead workers reaped, the range given back
//
// Every job reads the adapter through the files the coordinator opened
// once (OpenedAdapter), sent with it as descriptors: an atomic rename of a
// file during the load cannot mix two versions, and a rewrite in place (or
// a truncation) breaks the files' read lease (or changes their identity),
// which is checked after the last part: the load then fails with
// `file_changed`, and the next one reads the new version.
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
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "cache/resident_cache.h"
#include "common/status.h"
#include "common/wait_clock.h"
#include "layout/adapter_source.h"
#include "layout/content_digest.h"
#include "layout/fill_parts.h"
#include "layout/resident_layout.h"
#include "loader/name_resolver.h"
#include "loader/pool.h"
#include "loader/probe_budget.h"
#include "loader/resilience.h"

namespace genomed::loader {

struct Flight;  // flight.h

// Where the resident bytes live: the arena as the supervisor maps it.
struct ArenaView {
  const std::byte* data = nullptr;
  std::uint64_t size = 0;
};

// How far one load's fill is: written by the fill's parts as they complete
// (no lock: relaxed atomics), read by LIST under the coordinator's lock.
struct FillProgress {
  std::atomic<std::uint64_t> total{0};   // the layout's total_bytes, once probed
  std::atomic<std::uint64_t> filled{0};  // bytes of the parts done so far
};

struct PipelineOptions {
  // Deadline of a probe; a fill gets the same plus `timeout_per_gib` for
  // every GiB it writes, so large adapters are not cut off.
  std::chrono::milliseconds load_timeout{30'000};
  std::chrono::milliseconds timeout_per_gib{4'000};
  int fill_parts = 0;  // workers one large fill is split across (at most); 0: all of them
};

// The steps of a load that touch the coordinator's state; each takes the
// coordinator's mutex itself (called without it).
class LoadHost {
 public:
  // Waits until every earlier flight of the name has ended.
  virtual Status await_predecessors(Flight& flight) = 0;
  // Waits until the admission queue gives the flight a range of `length`.
  virtual Result<cache::ResidentCache::Range> await_range(const std::shared_ptr<Flight>& flight,
                                                          std::uint64_t length) = 0;
  // Publishes the filled range as READY, unless the load was unloaded or
  // the daemon stops meanwhile; runs `record` (the load's success) first,
  // under the same lock.
  virtual Status publish(Flight& flight, cache::ResidentCache::Range range, std::uint64_t bytes,
                         const std::function<void()>& record) = 0;
  // Tells the failed flight's waiters now, before its dead workers are reaped.
  virtual void finish_early(const std::shared_ptr<Flight>& flight, const Status& failure) = 0;
  // Gives back a range a failed load reserved.
  virtual void give_back(cache::ResidentCache::Range range) = 0;

 protected:
  ~LoadHost() = default;
};

class LoadPipeline {
 public:
  LoadPipeline(PipelineOptions options, const NameResolver& resolver, JobRunner& pool,
               ArenaView arena, Resilience& resilience, WaitClock& clock)
      : options_(options),
        resolver_(resolver),
        pool_(pool),
        arena_(arena),
        resilience_(resilience),
        clock_(clock),
        budget_(static_cast<std::size_t>(std::max(1, pool.workers() - 1)), clock) {}

  // One load of `flight`'s name, every step (see the top). The breaker
  // learns its outcome before its waiters do.
  Status load(const std::shared_ptr<Flight>& flight, LoadHost& host);

  // What the jobs of one step left behind.
  struct Fates {
    bool worker_failed = false;  // a worker died (the breaker learns it after the load)
    // One per worker that died and may not be reaped yet: a range it was
    // writing is given back, and a reload of the name starts, only after
    // every one is ready.
    std::vector<std::shared_future<void>> workers_gone;
  };

  // A probe whose validation failed while the files changed under it fails
  // with `file_changed` instead (what it read may have been half-written).
  Result<layout::ResidentLayout> probe(const std::string& name, const OpenedAdapter& adapter,
                                       const std::shared_ptr<CancelToken>& cancel, Fates* fates);
  // Fills `range` with the adapter the probe planned as `layout`, then
  // verifies the header written there and that the files did not change
  // since they were opened (else `file_changed`).
  // `progress` (optional) learns the total at once and each part's bytes
  // when it completes (a fill of one part: all at once, at its end).
  // The content digest of what it filled (layout/content_digest.h), from the
  // checksums the fill reported and the verified header.
  Result<layout::ContentDigest> fill(const std::string& name, const OpenedAdapter& adapter,
              const layout::ResidentLayout& layout, cache::ResidentCache::Range range,
              const std::shared_ptr<CancelToken>& cancel, Fates* fates,
              FillProgress* progress = nullptr);

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
  // Runs the parts of `split` at once; on success `checksums` holds every
  // tensor's checksum as the parts reported it, in layout order.
  Status fill_parts(const std::string& name, const jobs::Job& job,
                    const std::vector<layout::FillPart>& split, Clock::time_point deadline,
                    const FileIdentity& file, const std::shared_ptr<CancelToken>& cancel,
                    Fates* fates, std::vector<std::uint64_t>* checksums, FillProgress* progress);
  // The header in `range` against the fill's plan, `expected` (with the
  // checksums the fill reported): any difference is `worker_protocol`.
  Status verify(const std::string& name, const layout::ResidentLayout& expected,
                cache::ResidentCache::Range range) const;

  const PipelineOptions options_;
  const NameResolver& resolver_;
  JobRunner& pool_;
  const ArenaView arena_;
  Resilience& resilience_;
  WaitClock& clock_;  // job deadlines
  std::atomic<std::uint64_t> retries_{0};
  ProbeBudget budget_;  // workers - 1 turns (at least 1) for large-header probes
};

}  // namespace genomed::loader
