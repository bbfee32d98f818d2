#include "loader/coordinator.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "cache/check.h"
#include "common/safe_text.h"
#include "common/size_parse.h"
#include "loader/client_log.h"
#include "loader/introspection.h"

namespace genomed::loader {
namespace {

// Arena ranges are page-aligned: a worker opens exactly its range.
constexpr std::uint64_t kRangeAlignment = 4096;

}  // namespace

Coordinator::Coordinator(CoordinatorOptions options, const NameResolver& resolver, JobRunner& pool,
                         ArenaView arena, WaitClock& clock)
    : options_(options),
      resolver_(resolver),
      pool_(pool),
      arena_(arena),
      clock_(clock),
      resilience_(options.breaker, options.quarantine, options.job_retries,
                  [&clock] { return clock.now(); }),
      pipeline_({options.load_timeout, options.timeout_per_gib, options.fill_parts}, resolver, pool,
                arena, resilience_, clock),
      cache_(arena.size, kRangeAlignment),
      leases_(cache_, options.max_leases_per_connection,
              [this](const std::string& name, bool settle_now)
                  REQUIRES(mu_) { last_lease_ended(name, settle_now); }),
      admission_(cache_),
      pins_(cache_, options.pin_budget, arena.size),
      idle_(mu_, clock, options.idle_unload, entries_, leases_, cache_,
            {[this](AdapterTable::iterator it) REQUIRES(mu_) {
               unloads_.erase_resident(it);
               ++counters_.idle_unloads;
             },
             [this]() REQUIRES(mu_) { check_invariants(); }}),
      flights_(mu_, options_, clock, arena.size, pipeline_, entries_, cache_, leases_, admission_,
               idle_, counters_,
               {[this](const std::vector<TicketPtr>& tickets)
                    REQUIRES(mu_) { path_.settle(tickets); },
                [this](ConnectionId conn) REQUIRES(mu_) { return abandoned(conn); },
                [this]() REQUIRES(mu_) { return shutting_down_; },
                [this]() REQUIRES(mu_) { check_invariants(); }}),
      unloads_(entries_, cache_, leases_, admission_, resilience_, flights_,
               {[this](const std::vector<TicketPtr>& tickets)
                    REQUIRES(mu_) { path_.settle(tickets); },
                [this](ConnectionId conn) REQUIRES(mu_) { return abandoned(conn); }}),
      path_(options_, clock, entries_, cache_, leases_, admission_, flights_, counters_,
            {[this](ConnectionId conn) REQUIRES(mu_) { return abandoned(conn); },
             [this]() REQUIRES(mu_) { return shutting_down_; }}),
      generations_(entries_, cache_, leases_, pins_,
                   {[this](AdapterTable::iterator it) REQUIRES(mu_) {
                     unloads_.erase_resident(it);
                   }}) {}

Coordinator::~Coordinator() { shutdown(); }

// ---------------------------------------------------------------------------
// Requests: the request path does the work; here, what wires it to the
// lease slots, the idle unloader and the pins.

Result<ipc::AcquireReply> Coordinator::acquire(const std::vector<std::string>& names,
                                               ConnectionId conn, WaitHook* hook,
                                               const RequestOptions& options,
                                               const std::shared_ptr<LeaseSlotPage>& page) {
  const std::vector<std::string> wanted = distinct_names(names);
  MutexLock lock(mu_);
  GENOMED_RETURN_IF_ERROR(leases_.check_limit(conn, names.size()));
  GENOMED_ASSIGN_OR_RETURN(ipc::AcquireReply reply,
                           path_.acquire(lock, names, wanted, conn, hook, options));
  attach_slots(reply, conn, page);  // first: a slot lease alone leaves an idle expiry to schedule
  for (const auto& name : wanted) idle_.mark_used(name, options.keep_alive);
  check_invariants();
  return reply;
}

Result<ipc::LoadReply> Coordinator::load(const std::string& name, ConnectionId conn,
                                         WaitHook* hook, const RequestOptions& options) {
  MutexLock lock(mu_);
  GENOMED_ASSIGN_OR_RETURN(const bool hit, path_.make_resident(lock, name, conn, hook, options));
  cache_.touch(name);
  idle_.mark_used(name, options.keep_alive);
  const AdapterEntry& e = entries_.at(name);
  return ipc::LoadReply{name, cache_.find(name)->length, e.generation, hit, e.digest.hex()};
}

Result<ipc::PinReply> Coordinator::pin(const std::string& name, ConnectionId conn,
                                       WaitHook* hook, const RequestOptions& options) {
  MutexLock lock(mu_);
  const auto it = entries_.find(name);
  if (it == entries_.end() || it->second.state != State::ready) {
    RequestOptions as_load = options;
    as_load.prefetch = false;
    GENOMED_RETURN_IF_ERROR(path_.make_resident(lock, name, conn, hook, as_load).status());
  }
  // READY here, in the step make_resident() returned in: nothing evicted it since.
  idle_.mark_used(name, options.keep_alive);  // counts from its unpin, if pinned now
  GENOMED_ASSIGN_OR_RETURN(const bool was, pins_.pin(name));
  check_invariants();
  return pin_reply(name, was);
}

Result<ipc::PinReply> Coordinator::unpin(const std::string& name) {
  MutexLock lock(mu_);
  const auto it = entries_.find(name);
  if (it == entries_.end() || it->second.state == State::loading) {
    GENOMED_RETURN_IF_ERROR(validate_name(name));
    return Status(Errc::not_loaded, "adapter " + quote(name) +
                                        " is not resident, so it is not pinned (nothing to do)");
  }
  const bool was = pins_.unpin(name);
  // Taken now: the pump below may evict it for a waiting ticket.
  ipc::PinReply reply = pin_reply(name, was);
  if (was) {
    idle_.mark_used(name);
    path_.settle(admission_.pump());
  }
  check_invariants();
  return reply;
}

ipc::PinReply Coordinator::pin_reply(const std::string& name, bool was_pinned) const {
  const auto view = cache_.find(name);
  const AdapterEntry& e = entries_.at(name);
  return ipc::PinReply{name, view->length, e.generation, view->pinned, was_pinned, e.digest.hex()};
}

// ---------------------------------------------------------------------------
// Leases

void Coordinator::last_lease_ended(const std::string& name, bool settle_now) {
  auto it = entries_.find(name);
  if (it != entries_.end() && it->second.state == State::draining) {
    unloads_.erase_resident(it);
    client_log().info("unloaded {}: its last lease ended", quote(name));
  } else {
    idle_.mark_used(name);                      // its idle time starts now
    if (settle_now) path_.settle(admission_.pump());  // it may be evicted for a waiting ticket now
  }
}

void Coordinator::attach_slots(ipc::AcquireReply& reply, ConnectionId conn,
                               const std::shared_ptr<LeaseSlotPage>& page) {
  // While requests wait for room, no new slot: the coordinator would not
  // see it go idle, and a waiter may need exactly that memory.
  if (shutting_down_ || admission_.waiting() > 0) return;
  leases_.attach(reply, conn, page, [&](const std::string& name) REQUIRES(mu_) {
    return entries_.at(name).state == State::ready;
  });
}

void Coordinator::revoke_lease_slots() {
  MutexLock lock(mu_);
  leases_.close_slots();
  check_invariants();
}

std::size_t Coordinator::release(std::span<const LeaseId> leases, ConnectionId conn) {
  MutexLock lock(mu_);
  const std::size_t ignored = leases_.release(leases, conn);
  check_invariants();
  return ignored;
}

void Coordinator::release_all(ConnectionId conn) {
  MutexLock lock(mu_);
  abandoned_.erase(conn);
  if (const std::size_t n = leases_.end_all_of(conn); n > 0)
    client_log().info("connection {} closed holding {} lease(s); released", conn, n);
  check_invariants();
}

void Coordinator::abandon(ConnectionId conn) {
  MutexLock lock(mu_);
  if (!abandoned_.insert(conn).second) return;
  const std::size_t released = leases_.end_all_of(conn);
  const std::vector<std::string> cancelled = unloads_.cancel_orphans(conn);
  path_.settle(admission_.pump());  // withdrawn claims need no room any more
  client_log().info(
      "connection {}: the client hung up while its request waited; {} lease(s) released, {} "
      "load(s) nobody else waited for cancelled",
      conn, released, cancelled.size());
  for (const auto& name : cancelled)
    client_log().info("load of {} cancelled: every client waiting for it disconnected",
                      quote(name));
  path_.wake(conn);  // its waiting requests return now
  check_invariants();
}

bool Coordinator::holds_leases(ConnectionId conn) {
  MutexLock lock(mu_);
  const bool active = leases_.active(conn);
  check_invariants();
  return active;
}

// ---------------------------------------------------------------------------
// Unload, introspection, shutdown

Result<ipc::UnloadReply> Coordinator::unload(const std::string& name) {
  MutexLock lock(mu_);
  cancel_reload(name);
  auto reply = unloads_.unload(name);
  check_invariants();
  return reply;
}

ipc::ListReply Coordinator::list(std::string_view after, std::size_t limit) const {
  limit = std::clamp<std::size_t>(limit, 1, ipc::kMaxListPage);
  MutexLock lock(mu_);
  const auto now = clock_.now();
  ipc::ListReply reply;
  // entries_ is sorted by name: a page costs O(log n + limit), never O(n).
  auto it = after.empty() ? entries_.begin() : entries_.after(std::string(after));
  for (; it != entries_.end(); ++it) {
    const auto& [name, e] = *it;
    if (is_hidden_key(name)) continue;  // a generation beside the one a name serves
    if (reply.adapters.size() == limit) {
      reply.next = reply.adapters.back().name;
      break;
    }
    reply.adapters.push_back(adapter_status(name, e, cache_.find(name), leases_.held(name),
                                            idle_.expiry_of(name, e), now));
  }
  return reply;
}

ipc::StatsReply Coordinator::stats() const {
  const PoolStats pool = pool_.stats();
  const Resilience::Snapshot resilience = resilience_.snapshot();
  Figures figures;
  {
    MutexLock lock(mu_);
    figures = Figures::of(counters_, cache_, leases_, admission_, entries_.size(),
                          entries_.loading());
  }
  return stats_reply(figures, pool, resilience, pipeline_.retries(), pipeline_.probes_waiting(),
                     options_.saturated_after);
}

ipc::HealthReply Coordinator::health() const {
  const PoolStats pool = pool_.stats();
  const Resilience::Snapshot resilience = resilience_.snapshot();
  bool stopping = false;
  {
    MutexLock lock(mu_);
    stopping = shutting_down_;
  }
  return health_reply(stopping, pool, resilience, options_.saturated_after);
}

void Coordinator::check_invariants() const {
#if defined(GENOMED_INVARIANTS) || !defined(NDEBUG)
  entries_.check_invariants(cache_);
  leases_.check_invariants();
  admission_.check_invariants();
  path_.check_invariants();
  flights_.check_invariants();
  pins_.check_invariants();
#endif
}

void Coordinator::shutdown() {
  std::map<std::uint64_t, std::thread> threads;
  std::thread idle;
  {
    MutexLock lock(mu_);
    shutting_down_ = true;
    idle = idle_.stop();
    path_.wake_all();
    flights_.wake_all();
  }
  pipeline_.stop();  // probes waiting for a turn fail with shutting_down
  pool_.stop();      // queued jobs fail with shutting_down; running ones end
  {
    MutexLock lock(mu_);
    threads = flights_.take_threads();
  }
  for (auto& [id, t] : threads) t.join();
  if (idle.joinable()) idle.join();
}

}  // namespace genomed::loader
