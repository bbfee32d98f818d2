// The coordinator: the supervisor's per-adapter state and the requests that
// wait on it. It wires the parts (one concept a file: adapter_table,
// request_path, flights, leases, pin_policy, idle_unloader, unload,
// introspection, resilience, load_pipeline), takes mu_ at every entry point
// and holds nothing else of its own: the shutdown flag and the abandoned
// connections.
//
// Who owns what, the adapter states, the path of a cold and of a hot acquire:
// docs/architecture.md §3-§4. Threads and locks (§2): request threads call
// in and may block (waiting through RequestPath, which holds nothing while it
// waits for memory); each load runs on a flight thread of its own; the idle
// unloader has its own. mu_ guards every part here (each a member
// GUARDED_BY(mu_)) and is never held while a worker runs a job. Lock order:
// mu_ before the pool's, Resilience's and ProbeBudget's mutexes (and a
// CancelToken's).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "cache/resident_cache.h"
#include "common/mutex.h"
#include "common/status.h"
#include "common/wait_clock.h"
#include "ipc/protocol.h"
#include "loader/adapter_table.h"
#include "loader/admission_queue.h"
#include "loader/coordinator_options.h"
#include "loader/flights.h"
#include "loader/generations.h"
#include "loader/idle_unloader.h"
#include "loader/introspection.h"
#include "loader/latency_histogram.h"
#include "loader/lease_slots.h"
#include "loader/lease_table.h"
#include "loader/leases.h"
#include "loader/load_pipeline.h"
#include "loader/name_resolver.h"
#include "loader/pin_policy.h"
#include "loader/pool.h"
#include "loader/request_path.h"
#include "loader/resilience.h"
#include "loader/unload.h"

namespace genomed::loader {

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
  // RELOAD: loads `name`'s current files as a new generation beside the
  // one it serves and swaps it in once verified (loader/generations.h;
  // defined in loader/reload.cc). A name not resident is loaded as LOAD
  // would; a draining one is `draining`; one already reloading is
  // `overloaded`. A failed load leaves the old generation serving.
  // PUBLISH is the same with `content` (loader/published_adapter.h): the
  // new generation is loaded from those bytes instead of the files, and a
  // name with a load in progress is `overloaded` too.
  Result<ipc::ReloadReply> reload(const std::string& name, ConnectionId conn = 0,
                                  WaitHook* hook = nullptr, const RequestOptions& options = {},
                                  std::shared_ptr<const OpenedAdapter> content = nullptr)
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
  using State = AdapterState;

  // UNLOAD of `name` cancels its RELOAD still loading (loader/reload.cc).
  void cancel_reload(const std::string& name) REQUIRES(mu_);
  // The reply to PIN or UNPIN of the resident `name`.
  ipc::PinReply pin_reply(const std::string& name, bool was_pinned) const REQUIRES(mu_);
  // Leases::LastEnded: a DRAINING adapter is freed, another may idle (and
  // be evicted for a waiting ticket when `settle_now`).
  void last_lease_ended(const std::string& name, bool settle_now) REQUIRES(mu_);
  // Holds the reply's leases through free slots of `page` where it can.
  void attach_slots(ipc::AcquireReply& reply, ConnectionId conn,
                    const std::shared_ptr<LeaseSlotPage>& page) REQUIRES(mu_);
  bool abandoned(ConnectionId conn) const REQUIRES(mu_) { return abandoned_.contains(conn); }
  // Aborts (GENOMED_CHECK) on broken bookkeeping: each part's invariants
  // (entries vs cache, leases vs cache counts, requests vs tickets and
  // flights, the flights' chain, pins).
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
  AdapterTable entries_ GUARDED_BY(mu_);  // every name LOADING, READY or DRAINING
  PinPolicy pins_ GUARDED_BY(mu_);
  std::unordered_set<ConnectionId> abandoned_ GUARDED_BY(mu_);  // until release_all()
  IdleUnloader idle_ GUARDED_BY(mu_);  // its own thread unloads what nobody used
  CoordinatorCounters counters_ GUARDED_BY(mu_);
  // Every load from its start to its end: the steps under mu_ (LoadHost).
  Flights flights_ GUARDED_BY(mu_);
  // UNLOAD, loads only abandoned connections waited for, erasing a resident entry.
  Unloads unloads_ GUARDED_BY(mu_);
  // A request from its first look to its reply: the hit path, serve
  // (join, wait for room, lease), settle; the requests in progress.
  RequestPath path_ GUARDED_BY(mu_);
  // RELOAD's swap of generations under one name.
  Generations generations_ GUARDED_BY(mu_);
};

}  // namespace genomed::loader
