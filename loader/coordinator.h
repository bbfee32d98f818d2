// The coordinator: the per-adapter state machine of the supervisor, and the
// requests that wait on it.
//
//   ABSENT -> LOADING -> READY -> (DRAINING ->) ABSENT
//
// Parts, one file each:
// - LeaseTable (lease_table.h): who holds which lease;
// - AdmissionQueue (admission_queue.h): who gets room in the budget next;
// - LoadPipeline (load_pipeline.h): the probe, fill and verify jobs of a load;
// - Resilience (resilience.h): breaker, quarantine, job retries;
// - ResidentCache (cache/): which range each resident adapter occupies, its
//   lease count, and the LRU order. The one source of offsets, sizes and
//   lease counts: entries here keep only state and generation.
//
// A request (ACQUIRE of one or more names, LOAD of one) runs in three steps,
// and holds nothing while it waits for memory (no hold-and-wait):
//  1. It joins or starts a load (a Flight) for every name not READY, and
//     waits until each has probed, so the bytes it needs are known.
//  2. If some of those loads have no range yet, it takes an admission
//     ticket for all of them at once, keeping the READY names it wants from
//     being evicted for it, and waits on that ticket (FIFO).
//  3. Admitted (served ticket, or none needed), it leases its READY names in
//     that same step and each load grants it a lease in the step that
//     publishes the entry ("published means leased"), so nothing can evict
//     what it waits for. Should a name it wants need room again (evicted or
//     unloaded meanwhile), it gives back every lease and starts over.
//
// - Concurrent requests for one adapter join a single load; every entry and
//   flight carries a generation, so a late result of a cancelled load can
//   never overwrite a newer entry of the same name.
// - UNLOAD of a LOADING entry cancels it: its waiters get `cancelled` at
//   once, and the flight's CancelToken takes its queued jobs out of the pool
//   and stops the workers running them. The flight frees its range once
//   those workers are reaped. One name never has two loads running: a flight
//   starts its jobs only after every earlier flight of the name has ended.
// - UNLOAD of a READY entry with leases marks it DRAINING: no new leases;
//   its memory is freed when the last lease ends.
// - PIN makes a name resident (as LOAD) and pins it: the cache never evicts
//   it and UNLOAD refuses it (`pinned`) until UNPIN. Pins are the daemon's,
//   not a connection's: they outlive the client that set them. Pinned bytes
//   together stay within the pin budget (`pin_budget_exceeded`).
// - Lease slots (loader/lease_slots.h): a lease granted to a connection
//   with a page of slots may be held through a slot, where its client takes
//   and gives back further leases on that adapter without a message. Such a
//   lease keeps its adapter resident like any other; the coordinator wants
//   it back only when it needs the memory: before a request waits for room
//   (every idle slot is revoked), on UNLOAD, at an idle expiry (unless the
//   slot was used since the last look), and in the drain.
// - Idle unload: a READY entry with no lease and no pin that nobody has
//   used (LOAD, ACQUIRE, PIN, a lease ending) for its keep-alive (the last
//   request's `keep_alive`, else --idle-unload) is unloaded by the idle
//   checker thread, which sleeps on the clock until the earliest expiry.
// - A connection whose client hangs up while one of its requests waits is
//   abandon()ed at once: its leases end, its waiting requests return
//   `cancelled`, and a load that no other request waits for is cancelled.
//
// Threads and locks: request threads (loader/request_threads.h) call in and may block; each load
// runs on its own flight thread. mu_ guards all state here; it is never held
// while a worker runs a job. Each waiter sleeps on its own condition
// variable (Request::cv, Flight::cv), so an event wakes only whom it
// concerns. Lock order: mu_ before the pool's and Resilience's mutexes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cache/resident_cache.h"
#include "common/mutex.h"
#include "common/status.h"
#include "common/wait_clock.h"
#include "ipc/protocol.h"
#include "loader/admission_queue.h"
#include "loader/latency_histogram.h"
#include "loader/lease_slots.h"
#include "loader/lease_table.h"
#include "loader/leases.h"
#include "loader/load_pipeline.h"
#include "loader/name_resolver.h"
#include "loader/pool.h"
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

class Coordinator {
 public:
  // `clock` measures every deadline and wait of the coordinator (a fake one
  // in unit tests).
  Coordinator(CoordinatorOptions options, const NameResolver& resolver, JobRunner& pool,
              ArenaView arena, WaitClock& clock = WaitClock::steady());
  ~Coordinator();  // shutdown()

  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Makes every name resident (joining or starting loads) and leases each to
  // `conn`. All or nothing: on any failure the leases taken are returned and
  // the error names the adapter. `hook` (optional) is told before it blocks.
  // limit_exceeded, before anything else, if `conn` would then hold more
  // than max_leases_per_connection leases (a connection runs one request at
  // a time, so what it holds when its ACQUIRE starts is what it can hold).
  // With a `page` (the connection's lease slots), each granted lease on a
  // name the page has no slot for yet is held through a free slot of it
  // (LeaseGrant::slot), unless requests wait for room: the client then
  // takes further leases on it without asking (loader/lease_slots.h).
  Result<ipc::AcquireReply> acquire(const std::vector<std::string>& names, ConnectionId conn,
                                    WaitHook* hook = nullptr, const RequestOptions& options = {},
                                    const std::shared_ptr<LeaseSlotPage>& page = nullptr)
      EXCLUDES(mu_);
  // Ends those of `leases` that `conn` holds; returns how many it does not
  // (unknown ids, ended already, another connection's). They are ignored:
  // RELEASE has no reply; the caller decides whether to log them.
  std::size_t release(std::span<const LeaseId> leases, ConnectionId conn) EXCLUDES(mu_);
  // One lease; false if `conn` does not hold it.
  bool release(LeaseId lease, ConnectionId conn) EXCLUDES(mu_) {
    return release(std::span<const LeaseId>(&lease, 1), conn) == 0;
  }
  // Ends every lease of a connection (it closed or died); forgets that it
  // was abandoned.
  void release_all(ConnectionId conn) EXCLUDES(mu_);
  // The client of `conn` hung up while a request of it waits: ends every
  // lease it holds now, makes its waiting requests (and any later one, until
  // release_all) return `cancelled` at once without granting them anything,
  // and cancels every load that only abandoned connections were waiting for.
  void abandon(ConnectionId conn) EXCLUDES(mu_);
  // For closing an idle connection: true while `conn` holds a lease, or
  // used its lease slots since the last call (it is active without a
  // message). Otherwise its slots are revoked first (their leases end), so
  // that once this says false the client can take nothing through them.
  bool holds_leases(ConnectionId conn) EXCLUDES(mu_);
  // The drain: every lease slot is wanted back. Idle ones end now; busy ones
  // end with their client's last give-back (its RELEASE). No slot is granted
  // after (an ACQUIRE admitted before the drain may still finish).
  void revoke_lease_slots() EXCLUDES(mu_);

  // Makes `name` resident without leasing it. `conn` and `hook` as for
  // acquire(): a waiting LOAD is a waiter of the load too.
  Result<ipc::LoadReply> load(const std::string& name, ConnectionId conn = 0,
                              WaitHook* hook = nullptr, const RequestOptions& options = {})
      EXCLUDES(mu_);
  Result<ipc::UnloadReply> unload(const std::string& name) EXCLUDES(mu_);
  // Makes `name` resident (as load()) and pins it. pin_budget_exceeded if
  // the pinned adapters would then pass the pin budget; the adapter stays
  // resident, unpinned, then. Pinning a pinned name is a no-op.
  Result<ipc::PinReply> pin(const std::string& name, ConnectionId conn = 0,
                            WaitHook* hook = nullptr, const RequestOptions& options = {})
      EXCLUDES(mu_);
  // Unpins a resident name (evictable again, most recently used);
  // not_loaded if it is not resident. Unpinning an unpinned name is a no-op.
  Result<ipc::PinReply> unpin(const std::string& name) EXCLUDES(mu_);

  // One page: at most `limit` entries (capped at ipc::kMaxListPage), in name
  // order, starting after the name `after` ("" = from the first).
  ipc::ListReply list(std::string_view after = {}, std::size_t limit = ipc::kMaxListPage) const
      EXCLUDES(mu_);
  ipc::StatsReply stats() const EXCLUDES(mu_);
  ipc::HealthReply health() const EXCLUDES(mu_);

  // Fails every waiter with shutting_down, stops the pool, joins the flights.
  void shutdown() EXCLUDES(mu_);

 private:
  enum class State { loading, ready, draining };
  struct Request;

  // One load of one name, run by its own thread.
  struct Flight {
    std::string name;
    std::uint64_t generation = 0;
    // Its thread waits here: for predecessors to end, for a range, for a cancel.
    std::condition_variable cv;
    bool done = false;      // `result` is final; waiters may leave
    bool finished = false;  // finish_flight() ran (counted, entry settled)
    bool ended = false;     // its thread is done: every worker that died running its
                            // jobs is reaped and its range is given back
    Status result;
    // Fired by an unload or abandonment: stops its queued and running jobs.
    std::shared_ptr<CancelToken> cancel = std::make_shared<CancelToken>();
    // Earlier flights of the same name not yet ended when this one started;
    // it runs no job before they all have (one load per name at a time).
    std::vector<std::shared_ptr<Flight>> predecessors;
    // Set once probed: the range it needs. A ticket gives it its range.
    std::shared_ptr<RangeClaim> claim;
    FillProgress progress;  // LIST shows it while loading
    // Requests waiting on it; each deregisters before it returns.
    std::vector<Request*> waiters;
  };

  // An ACQUIRE or LOAD in progress.
  struct Request {
    ConnectionId conn = 0;
    bool wants_lease = false;  // an ACQUIRE
    Priority priority = Priority::normal;  // of the flights it joins (raised to it)
    bool prefetch = false;                 // RequestOptions::prefetch
    std::condition_variable cv;
    // Invariant: holds leases only while admitted. Admitted means it needs
    // no more room: its ticket was served, or none was needed.
    bool admitted = false;
    std::vector<std::pair<std::string, LeaseId>> leases;  // granted to it so far
    TicketPtr ticket;                                     // while waiting for admission
    std::vector<std::shared_ptr<Flight>> joined;          // flights it is a waiter of
  };

  struct Entry {
    State state = State::loading;
    std::uint64_t generation = 0;
    std::shared_ptr<Flight> flight;  // while loading
    // Idle unload: when a request or a lease last used it (meaningful once
    // READY), and its own keep-alive (nullopt: options_.idle_unload).
    Clock::time_point last_used{};
    std::optional<std::chrono::milliseconds> keep_alive;
  };

  // Steps 1-3 above for the distinct names of a request; returns once every
  // one is READY and (for an acquirer) leased to it, with the lock held.
  Status serve(MutexLock& lock, const std::vector<std::string>& names, Request& req, WaitHook* hook,
               std::vector<bool>* hits) REQUIRES(mu_);
  // LOAD's steps for one name: READY when it returns Ok (with the lock held,
  // so nothing evicted it since); true if it was READY at the first look.
  Result<bool> make_resident(MutexLock& lock, const std::string& name, ConnectionId conn,
                             WaitHook* hook, const RequestOptions& options) REQUIRES(mu_);
  // Idle unload (see the top): marks `name` used now, with the request's
  // keep-alive if it gives one, and tells the checker of an earlier expiry.
  void mark_used(const std::string& name, const RequestOptions& options = {}) REQUIRES(mu_);
  // When the READY entry `it` is unloaded for idleness; nullopt: never
  // (leased, pinned, draining, keep-alive 0).
  std::optional<Clock::time_point> idle_expiry(const std::string& name, const Entry& e) const
      REQUIRES(mu_);
  // Unloads every entry whose expiry has passed; returns the next expiry.
  std::optional<Clock::time_point> unload_idle(Clock::time_point now) REQUIRES(mu_);
  void idle_main() EXCLUDES(mu_);
  // Every worker has been on its current job for saturated_after or longer.
  bool saturated(const PoolStats& pool) const;
  // What the client learns of its lease on the resident adapter `name`.
  ipc::LeaseGrant grant_of(const std::string& name, LeaseId lease) const REQUIRES(mu_);
  // Leaves its flights and withdraws its ticket (its leases stay).
  void leave(Request& req) REQUIRES(mu_);
  void drop_leases(Request& req) REQUIRES(mu_);
  void join(Request& req, const std::shared_ptr<Flight>& flight) REQUIRES(mu_);

  void start_flight(const std::string& name) REQUIRES(mu_);
  void run_flight(const std::string& name, const std::shared_ptr<Flight>& flight) EXCLUDES(mu_);
  Status load_steps(const std::string& name, const std::shared_ptr<Flight>& flight) EXCLUDES(mu_);
  // Waits until the admission queue gives the flight's claim a range.
  Result<cache::ResidentCache::Range> await_range(const std::string& name,
                                                  const std::shared_ptr<Flight>& flight,
                                                  std::uint64_t length) EXCLUDES(mu_);
  // Publishes the filled range as READY, leasing it to every admitted waiter.
  void publish(const std::string& name, Flight& flight, cache::ResidentCache::Range range,
               std::uint64_t bytes) REQUIRES(mu_);
  Status wait_for_predecessors(const std::string& name, Flight& flight) EXCLUDES(mu_);
  // True when the flight's entry is gone or replaced (unloaded meanwhile).
  bool superseded(const std::string& name, const Flight& flight) const REQUIRES(mu_);
  void finish_flight(const std::string& name, const std::shared_ptr<Flight>& flight, Status status)
      REQUIRES(mu_);
  void notify_waiters(const Flight& flight) REQUIRES(mu_);
  void reap_finished_flights() REQUIRES(mu_);
  // Cancels the LOADING entry `it`: its waiters get `why`, its jobs stop.
  std::map<std::string, Entry>::iterator cancel_loading(std::map<std::string, Entry>::iterator it,
                                                        const Status& why) REQUIRES(mu_);

  Result<ipc::UnloadReply> unload_locked(const std::string& name) REQUIRES(mu_);
  // The reply to PIN or UNPIN of the resident `name`.
  ipc::PinReply pin_reply(const std::string& name, bool was_pinned) const REQUIRES(mu_);
  std::uint64_t pin_budget() const;
  // Leases::LastEnded: a DRAINING adapter is freed, another may idle (and
  // be evicted for a waiting ticket when `settle_now`).
  void last_lease_ended(const std::string& name, bool settle_now) REQUIRES(mu_);
  // Holds the reply's leases through free slots of `page` where it can.
  void attach_slots(ipc::AcquireReply& reply, ConnectionId conn,
                    const std::shared_ptr<LeaseSlotPage>& page) REQUIRES(mu_);
  // Erases a READY or DRAINING entry with no lease from the cache and the table.
  void erase_resident(std::map<std::string, Entry>::iterator it) REQUIRES(mu_);
  // Acts on tickets that left the admission queue: evicts, grants, wakes.
  void settle(const std::vector<TicketPtr>& tickets) REQUIRES(mu_);
  Clock::time_point waiter_deadline() const;
  bool abandoned(ConnectionId conn) const REQUIRES(mu_) { return abandoned_.contains(conn); }
  // Aborts (GENOMED_CHECK) on broken bookkeeping: entries vs cache, leases
  // vs cache counts, tickets vs requests, leases held before admission.
  // O(n); compiled in debug builds and with -DGENOMED_INVARIANTS=ON (tests).
  void check_invariants() const REQUIRES(mu_);

  // Constant after construction.
  const CoordinatorOptions options_;
  const NameResolver& resolver_;
  JobRunner& pool_;
  const ArenaView arena_;
  WaitClock& clock_;
  Resilience resilience_;  // own lock
  LoadPipeline pipeline_;  // no state shared between loads

  mutable Mutex mu_;
  bool shutting_down_ GUARDED_BY(mu_) = false;
  cache::ResidentCache cache_ GUARDED_BY(mu_);
  Leases leases_ GUARDED_BY(mu_);  // ordinary and slot leases, and their one count
  AdmissionQueue admission_ GUARDED_BY(mu_);
  // Every name LOADING, READY or DRAINING. Invariant: READY and DRAINING
  // entries are in cache_ (and only they are); a LOADING one has a flight.
  std::map<std::string, Entry> entries_ GUARDED_BY(mu_);  // sorted: list() is in name order
  // Requests in progress (to wake them on shutdown or abandonment).
  std::unordered_set<Request*> requests_ GUARDED_BY(mu_);
  // Which request holds each waiting ticket.
  std::unordered_map<const AdmissionTicket*, Request*> ticket_owner_ GUARDED_BY(mu_);
  // Which flight waits for each claim's range.
  std::unordered_map<const RangeClaim*, Flight*> claimant_ GUARDED_BY(mu_);
  std::unordered_set<ConnectionId> abandoned_ GUARDED_BY(mu_);  // until release_all()
  std::uint64_t next_generation_ GUARDED_BY(mu_) = 1;
  std::uint64_t next_flight_id_ GUARDED_BY(mu_) = 1;
  std::map<std::uint64_t, std::thread> flight_threads_ GUARDED_BY(mu_);
  // Flights not yet ended, by name, oldest first (see Flight::predecessors).
  std::map<std::string, std::vector<std::shared_ptr<Flight>>> live_flights_ GUARDED_BY(mu_);
  std::vector<std::uint64_t> finished_flights_ GUARDED_BY(mu_);  // threads about to return
  // The idle checker: started with the first keep-alive (or at once with
  // --idle-unload), joined by shutdown(). It sleeps until idle_wake_at_
  // (time_point::max(): no expiry known); mark_used() wakes it for an
  // earlier one.
  std::thread idle_thread_ GUARDED_BY(mu_);
  std::condition_variable idle_cv_;
  Clock::time_point idle_wake_at_ GUARDED_BY(mu_) = Clock::time_point::max();
  struct Counters {
    std::uint64_t loads_started = 0, loads_completed = 0, loads_failed = 0, loads_cancelled = 0;
    std::uint64_t hits = 0, misses = 0, bytes_loaded = 0, request_restarts = 0;
    std::uint64_t idle_unloads = 0, prefetches_dropped = 0;
  } counters_ GUARDED_BY(mu_);
};

}  // namespace genomed::loader
