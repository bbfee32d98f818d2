// Flights under the coordinator's state: the lifecycle of every load, from
// its start (a LOADING entry and a flight thread) through the steps that
// touch the coordinator's parts (LoadHost: the predecessor chain, a range
// from the admission queue, publish) to its finish or its cancellation.
// flight.h holds the Flight record and its threads; this part is what a
// flight does with the adapter table, the cache, the leases and the queue.
//
// A flight's result and its entry change only here: publish() makes the
// entry READY and leases it to every admitted waiter in one step;
// finish() counts the outcome and erases a failed LOADING entry;
// cancel_loading() decides it and stops its jobs. A stale flight
// (superseded: unloaded, or its entry replaced by a newer generation)
// never touches the entry of its name again.
//
// Threads and locks: everything here, and every part it is given, is under
// the coordinator's mutex `mu` (the coordinator owns it as a member guarded
// by it). The methods marked "under mu" are called with it held; the
// LoadHost methods and a flight's thread (run) take it themselves and are
// called without it. What needs the request loop goes through Hooks, called
// under mu.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cache/resident_cache.h"
#include "common/mutex.h"
#include "common/status.h"
#include "common/wait_clock.h"
#include "loader/adapter_table.h"
#include "loader/admission_queue.h"
#include "loader/coordinator_options.h"
#include "loader/flight.h"
#include "loader/idle_unloader.h"
#include "loader/introspection.h"
#include "loader/leases.h"
#include "loader/load_pipeline.h"

namespace genomed::loader {

// The error of a load whose entry went away (an unload) while it ran.
Status unloaded_while_loading(const std::string& name);
// The error of whatever the daemon's shutdown interrupts.
Status shutting_down_status();

class Flights : private LoadHost {
 public:
  // The request loop's side, each called under mu.
  struct Hooks {
    std::function<void(const std::vector<TicketPtr>&)> settle;  // tickets that left the queue
    std::function<bool(ConnectionId)> abandoned;                // its client hung up
    std::function<bool()> stopping;                             // the daemon shuts down
    std::function<void()> check;                                // invariants, after a finish
  };

  Flights(Mutex& mu, const CoordinatorOptions& options, WaitClock& clock,
          std::uint64_t arena_size, LoadPipeline& pipeline, AdapterTable& entries,
          cache::ResidentCache& cache, Leases& leases, AdmissionQueue& admission,
          IdleUnloader& idle, CoordinatorCounters& counters, Hooks hooks);

  // Under mu: `name` (absent) becomes LOADING, and its load starts on a
  // flight thread of its own.
  // `source`: the adapter whose files it loads, when not `name` (a RELOAD).
  // `content`: the bytes it loads instead of files (a PUBLISH).
  void start(const std::string& name, const std::string& source = {},
             std::shared_ptr<const OpenedAdapter> content = nullptr);
  // Under mu: cancels the LOADING entry `it`: its waiters get `why`, its
  // jobs stop; returns the entry after it.
  AdapterTable::iterator cancel_loading(AdapterTable::iterator it, const Status& why);
  // Under mu: the flight waiting for `claim`'s range (if any) looks again.
  void wake_claimant(const RangeClaim* claim) const;
  // No lock: when a waiter gives up on a load. A flight ends by itself
  // within probe + admission + fill deadlines; this is only a backstop so
  // that no waiter can hang on a lost flight.
  Clock::time_point waiter_deadline() const;

  // Under mu, at shutdown: wakes every live flight's thread; then hands
  // over every thread, to be joined without the mutex.
  void wake_all() { threads_.wake_all(); }
  std::map<std::uint64_t, std::thread> take_threads() { return threads_.take_threads(); }

  // Under mu: aborts on a broken chain of flights or claim without its flight.
  void check_invariants() const;

 private:
  // A flight's thread: the load's steps (LoadPipeline::load), then its end.
  // Without mu.
  void run(const std::shared_ptr<Flight>& flight);
  // LoadHost: the steps of a load that touch the coordinator's state; each
  // takes mu.
  Status await_predecessors(Flight& flight) override;
  // Waits until the admission queue gives the flight's claim a range.
  Result<cache::ResidentCache::Range> await_range(const std::shared_ptr<Flight>& flight,
                                                  std::uint64_t length) override;
  // Publishes the filled range as READY, leasing it to every admitted waiter.
  Status publish(Flight& flight, cache::ResidentCache::Range range, std::uint64_t bytes,
                 const std::function<void()>& record) override;
  void finish_early(const std::shared_ptr<Flight>& flight, const Status& failure) override;
  void give_back(cache::ResidentCache::Range range) override;
  // Under mu: true when the flight's entry is gone or replaced (unloaded
  // meanwhile).
  bool superseded(const std::string& name, const Flight& flight) const;
  // Under mu: counts the outcome, erases a failed LOADING entry, tells the
  // waiters.
  void finish(const std::string& name, const std::shared_ptr<Flight>& flight, Status status);

  Mutex& mu_;
  const CoordinatorOptions& options_;
  WaitClock& clock_;
  const std::uint64_t arena_size_;
  LoadPipeline& pipeline_;
  AdapterTable& entries_;
  cache::ResidentCache& cache_;
  Leases& leases_;
  AdmissionQueue& admission_;
  IdleUnloader& idle_;
  CoordinatorCounters& counters_;
  const Hooks hooks_;
  FlightThreads threads_;
  // Which flight waits for each claim's range (while it waits in await_range).
  std::unordered_map<const RangeClaim*, Flight*> claimant_;
};

}  // namespace genomed::loader
