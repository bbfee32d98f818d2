// The coordinator: the per-adapter state machine of the supervisor.
//
//   ABSENT -> LOADING -> READY -> (DRAINING ->) ABSENT
//
// - Concurrent requests for one adapter join a single load (a Flight); the
//   cache is re-checked after every wait, so a request arriving just after a
//   flight ended finds the entry READY.
// - Every entry and flight carries a generation: a late result of a
//   cancelled load can never overwrite a newer entry of the same name.
// - UNLOAD of a LOADING entry cancels it: its waiters get `cancelled` at
//   once, and the flight's CancelToken takes its queued jobs out of the pool
//   and stops the workers running them (SIGTERM, kill grace, SIGKILL). The
//   flight thread frees its range once those workers are reaped.
// - One name never has two loads running: a flight starts its jobs only
//   after every earlier flight of the same name has ended (all its workers
//   reaped, its range given back), waiting for them up to load_timeout.
// - UNLOAD of a READY entry with leases marks it DRAINING: no new leases;
//   its memory is freed when the last lease ends. Memory under a live lease
//   is never reused.
// - Leases belong to a connection; release_all() ends them when it closes.
// - A connection whose client hangs up while one of its requests waits is
//   abandon()ed at once (the server watches its socket only while it waits,
//   see WaitHook): its leases end, its waiting request returns `cancelled`,
//   and a load that no other request waits for any more is cancelled as by
//   an unload.
//
// Threads: connection threads call in and may block (waiting for a flight);
// each load runs on its own flight thread (probe -> reserve -> fill). Lock:
// one mutex, mu_, guards all state; it is never held while a worker runs a
// job. Lock order: mu_ before the pool's internal mutex.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cache/resident_cache.h"
#include "common/status.h"
#include "ipc/protocol.h"
#include "loader/circuit_breaker.h"
#include "loader/name_resolver.h"
#include "loader/pool.h"
#include "loader/quarantine.h"

namespace genomed::loader {

using ConnectionId = std::uint64_t;

// Told just before a request blocks (waits for a load, which includes that
// load's wait for room in the budget). The cache-hit path never calls it. It
// is called with the coordinator's lock held, possibly more than once per
// request: it may take a lock of its own (the coordinator's first) but must
// not call back into the coordinator.
class WaitHook {
 public:
  virtual void before_wait() = 0;

 protected:
  ~WaitHook() = default;
};

struct CoordinatorOptions {
  // Deadline of a probe; a fill gets the same plus `timeout_per_gib` for
  // every GiB it writes, so large adapters are not cut off.
  std::chrono::milliseconds load_timeout{30'000};
  std::chrono::milliseconds timeout_per_gib{4'000};
  std::chrono::milliseconds admission_timeout{5'000};  // wait for leases when the budget is full
  int fill_parts = 0;   // workers one large fill is split across (at most); 0: all of them
  int job_retries = 2;  // re-runs of a job whose worker died, each on a fresh worker
  BreakerOptions breaker;
  QuarantineOptions quarantine;
};

// Where the resident bytes live: the arena as the supervisor maps it.
struct ArenaView {
  const std::byte* data = nullptr;
  std::uint64_t size = 0;
};

class Coordinator {
 public:
  Coordinator(CoordinatorOptions options, const NameResolver& resolver, Pool& pool,
              ArenaView arena);
  ~Coordinator();  // shutdown()

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Makes every name resident (joining or starting loads) and leases each to
  // `conn`. All or nothing: on any failure the leases taken are returned and
  // the error names the adapter.
  // `hook` (optional) is told before the request first blocks.
  Result<ipc::AcquireReply> acquire(const std::vector<std::string>& names, ConnectionId conn,
                                    WaitHook* hook = nullptr);
  // Ends a lease. Unknown ids (or another connection's) are logged and
  // ignored: RELEASE has no reply.
  void release(std::uint64_t lease, ConnectionId conn);
  // Ends every lease of a connection (it closed or died); forgets that it
  // was abandoned.
  void release_all(ConnectionId conn);
  // The client of `conn` hung up while a request of it waits: ends every
  // lease it holds now, makes its waiting requests (and any later one, until
  // release_all) return `cancelled` at once without granting them anything,
  // and cancels every load that only abandoned connections were waiting for.
  void abandon(ConnectionId conn);
  // True while `conn` holds a lease.
  bool holds_leases(ConnectionId conn) const;

  // Makes `name` resident without leasing it. `conn` and `hook` as for
  // acquire(): a waiting LOAD is a waiter of the load too.
  Result<ipc::LoadReply> load(const std::string& name, ConnectionId conn = 0,
                              WaitHook* hook = nullptr);
  Result<ipc::UnloadReply> unload(const std::string& name);

  ipc::ListReply list() const;
  ipc::StatsReply stats() const;
  ipc::HealthReply health() const;

  // Fails every waiter with shutting_down, stops the pool, joins the flights.
  void shutdown();

 private:
  enum class State { loading, ready, draining };
  // A request waiting on a flight (an ACQUIRE or a LOAD). The flight grants
  // an acquirer its lease in the step that publishes the entry, so nothing
  // can evict the entry between its publication and its waiters waking up
  // (which reloads showed). Never to an abandoned connection.
  struct Waiter {
    ConnectionId conn = 0;
    bool wants_lease = false;  // an ACQUIRE
    std::uint64_t lease = 0;   // granted at publish; 0 while not (yet)
  };
  struct Flight {
    std::uint64_t generation = 0;
    bool done = false;      // result is final; waiters may leave
    bool finished = false;  // finish_flight() ran (counted, entry settled)
    bool ended = false;     // its thread is done: every worker that died running its
                            // jobs is reaped and its range is given back
    Status result;
    // Fired by an unload: stops the flight's queued and running jobs.
    std::shared_ptr<CancelToken> cancel = std::make_shared<CancelToken>();
    // Earlier flights of the same name not yet ended when this one started;
    // it runs no job before they all have (one load per name at a time).
    std::vector<std::shared_ptr<Flight>> predecessors;
    // Requests waiting on this flight. When the last one not abandoned is
    // abandoned, nobody wants the load any more: abandon() cancels it.
    std::vector<std::shared_ptr<Waiter>> waiters;
  };
  struct Entry {
    State state = State::loading;
    std::uint64_t generation = 0;
    std::shared_ptr<Flight> flight;  // while loading
    std::uint64_t offset = 0;        // of the range (ready, draining)
    std::uint64_t bytes = 0;         // resident bytes (ready, draining)
  };
  struct LeaseRecord {
    std::string name;
    ConnectionId conn = 0;
  };

  // Returns once `name` is READY (lock held), starting or joining its load.
  // `hit` tells whether it was READY at the first look. For an acquirer
  // (self.wants_lease), a load this call waits for grants its lease when it
  // publishes the entry (self.lease != 0 then; the caller owns that lease,
  // also on error). `cancelled` at once if self.conn is abandoned.
  Status ensure_ready(std::unique_lock<std::mutex>& lock, const std::string& name, bool* hit,
                      Waiter& self, WaitHook* hook);
  // Cancels the LOADING entry `it` (unload, abandonment): its waiters get
  // `why`, its jobs are stopped; returns the next entry.
  std::map<std::string, Entry>::iterator cancel_loading_locked(
      std::map<std::string, Entry>::iterator it, const Status& why);
  std::size_t release_all_locked(ConnectionId conn);
  // Records a lease of the READY or draining entry `name` for `conn`.
  std::uint64_t grant_lease_locked(const std::string& name, ConnectionId conn);
  void start_flight(const std::string& name);
  void run_flight(std::string name, std::shared_ptr<Flight> flight);
  // The load steps; returns the final status (lock not held on entry or exit).
  Status load_steps(const std::string& name, const std::shared_ptr<Flight>& flight);
  // A range a failed fill must not give back until its worker is reaped: a
  // hung worker could still be writing into it. Also used without a range
  // (a probe whose worker was stopped): the flight ends only once its
  // workers are gone, so a reload never runs beside them.
  struct DeferredFree {
    std::optional<std::uint64_t> offset;
    std::vector<std::shared_future<void>> workers_gone;  // one per dead worker of the fill
  };
  // Fills the range, split into parts on several workers when it is large
  // (see kSplitFillBytes); appends the fate of every part to `fates`.
  Status fill_parts(const std::string& name, const Flight& flight, const jobs::Job& job,
                    Clock::time_point deadline, const FileIdentity& file, bool* worker_failed,
                    std::vector<JobFate>* fates);
  Status probe_reserve_fill(const std::string& name, const std::shared_ptr<Flight>& flight,
                            const format::AdapterPaths& paths, const FileIdentity& file,
                            bool* worker_failed, std::optional<DeferredFree>* deferred);
  // Runs a job, re-running it on a fresh worker when its worker died (up to
  // job_retries), striking the adapter for every worker death it caused
  // (JobFate::blame: crash signals, deadlines, protocol; not outside kills). A fill is
  // re-run only once the dead worker is reaped; `fate` tells about the last
  // attempt. A job of a cancelled flight ends with `cancelled` (not retried,
  // no strike, no breaker failure).
  Result<std::string> run_job(const std::string& name, const Flight& flight, const jobs::Job& job,
                              Clock::time_point deadline, const FileIdentity& file,
                              bool* worker_failed, JobFate* fate);
  // Waits (lock held) until every predecessor of the flight has ended;
  // cancelled if it is unloaded meanwhile, timeout after load_timeout.
  Status wait_for_predecessors(std::unique_lock<std::mutex>& lock, const std::string& name,
                               const Flight& flight);
  // True when the flight's entry is gone or replaced (unloaded meanwhile).
  bool superseded(const std::string& name, const Flight& flight) const;
  void finish_flight(const std::string& name, const std::shared_ptr<Flight>& flight, Status status);
  // Ends a lease; an id already ended (abandon() got there first) is ignored.
  void release_locked(std::uint64_t lease);
  void reap_finished_flights();
  Clock::time_point waiter_deadline() const;

  // Constant after construction.
  const CoordinatorOptions options_;
  const NameResolver& resolver_;
  Pool& pool_;
  const ArenaView arena_;

  // State below is protected by mu_.
  mutable std::mutex mu_;
  std::condition_variable changed_;  // a flight finished, a lease ended, or shutdown began
  bool shutting_down_ = false;
  cache::ResidentCache cache_;
  // mutable: state() advances OPEN -> HALF_OPEN lazily, also from stats().
  mutable CircuitBreaker breaker_;
  Quarantine quarantine_;
  std::map<std::string, Entry> entries_;  // sorted: list() is in name order
  std::unordered_map<std::uint64_t, LeaseRecord> leases_;
  std::unordered_set<ConnectionId> abandoned_;  // abandon()ed, not yet release_all()ed
  std::uint64_t admission_waiting_ = 0;         // loads waiting for room in the budget right now
  std::uint64_t next_generation_ = 1;
  std::uint64_t next_lease_ = 1;
  std::uint64_t next_flight_id_ = 1;
  std::map<std::uint64_t, std::thread> flight_threads_;
  // Flights not yet ended, by name, oldest first (see Flight::predecessors).
  std::map<std::string, std::vector<std::shared_ptr<Flight>>> live_flights_;
  std::vector<std::uint64_t> finished_flights_;  // ids whose thread is about to return
  struct Counters {
    std::uint64_t loads_started = 0, loads_completed = 0, loads_failed = 0, loads_cancelled = 0;
    std::uint64_t hits = 0, misses = 0, bytes_loaded = 0, leases_granted = 0, load_retries = 0;
  } counters_;
};

}  // namespace genomed::loader
