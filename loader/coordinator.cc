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
               {[this](const std::vector<TicketPtr>& tickets) REQUIRES(mu_) { settle(tickets); },
                [this](ConnectionId conn) REQUIRES(mu_) { return abandoned(conn); },
                [this]() REQUIRES(mu_) { return shutting_down_; },
                [this]() REQUIRES(mu_) { check_invariants(); }}),
      unloads_(entries_, cache_, leases_, admission_, resilience_, flights_,
               {[this](const std::vector<TicketPtr>& tickets) REQUIRES(mu_) { settle(tickets); },
                [this](ConnectionId conn) REQUIRES(mu_) { return abandoned(conn); }}),
      generations_(entries_, cache_, leases_, pins_,
                   {[this](AdapterTable::iterator it) REQUIRES(mu_) {
                     unloads_.erase_resident(it);
                   }}) {}

Coordinator::~Coordinator() { shutdown(); }

// ---------------------------------------------------------------------------
// Requests

void Coordinator::join(Request& req, const std::shared_ptr<Flight>& flight) {
  if (std::find(req.joined.begin(), req.joined.end(), flight) != req.joined.end()) return;
  // Before the flight's thread can queue a job (it needs mu_ first), or for
  // its later jobs: the load runs as urgently as its most urgent waiter.
  flight->cancel->raise_priority(static_cast<int>(req.priority));
  req.joined.push_back(flight);
  flight->waiters.push_back(&req);
}

void Coordinator::leave(Request& req) {
  if (req.ticket) {
    const TicketPtr ticket = req.ticket;
    requests_.drop_ticket(req);
    if (ticket->outcome == AdmissionTicket::Outcome::waiting) settle(admission_.withdraw(ticket));
  }
  bool withdrawn = false;
  for (const auto& flight : req.joined) {
    std::erase(flight->waiters, &req);
    // A load waiting for room gets it only through its waiters' tickets:
    // with none left it would wait for nothing, so it ends now.
    if (!flight->waiters.empty() || flight->decided() || !flight->claim ||
        !flight->claim->pending())
      continue;
    auto it = entries_.find(flight->name);
    if (it == entries_.end() || it->second.flight != flight) continue;
    flights_.cancel_loading(it, Status(Errc::no_space, "no request waits for the load of " +
                                                           quote(flight->name) + " any more"));
    withdrawn = true;
  }
  req.joined.clear();
  if (withdrawn) settle(admission_.pump());
}

void Coordinator::drop_leases(Request& req) {
  for (const auto& [name, id] : req.leases) leases_.end(id);
  req.leases.clear();
  req.admitted = false;
}

Status Coordinator::serve(MutexLock& lock, const std::vector<std::string>& names, Request& req,
                          WaitHook* hook, std::vector<bool>* hits) {
  const auto deadline = flights_.waiter_deadline();
  Clock::time_point admission_deadline{};
  const bool batch = names.size() > 1;
  const auto named = [&](const std::string& name, const Status& s) {
    return batch ? Status(s.code(), quote(name) + ": " + s.message()) : s;
  };
  bool first_look = true;
  for (;;) {
    if (shutting_down_) return shutting_down_status();
    if (abandoned(req.conn))
      return Status(Errc::cancelled, "the client disconnected while its request waited");
    for (const auto& flight : req.joined) {  // a load it waits for failed or was cancelled
      if (flight->decided() && !flight->result.ok()) return named(flight->name, flight->result);
    }
    if (req.ticket) {
      switch (req.ticket->outcome) {
        case AdmissionTicket::Outcome::failed:
          return req.ticket->error;
        case AdmissionTicket::Outcome::waiting:
          if (clock_.now() >= admission_deadline) {
            const std::size_t ahead = admission_.position(req.ticket);
            std::string why = ahead > 0 ? std::to_string(ahead) +
                                              " earlier request(s) still wait for room ahead of it"
                                        : admission_.head_blocked_by();
            return Status(Errc::no_space,
                          (batch ? std::string("the adapters") : quote(names[0])) +
                              " could not get room in the budget within the admission timeout (" +
                              std::to_string(options_.admission_timeout.count()) + " ms): " + why);
          }
          break;
        case AdmissionTicket::Outcome::served:  // settle() admitted it
        case AdmissionTicket::Outcome::stale:   // a name it kept is gone: look again
          requests_.drop_ticket(req);
          break;
      }
    }

    if (!req.ticket) {
      // Where does each name stand?
      std::vector<std::string> ready;
      std::vector<std::shared_ptr<Flight>> loading;
      for (std::size_t i = 0; i < names.size(); ++i) {
        const std::string& name = names[i];
        auto it = entries_.find(name);
        if (it == entries_.end()) {
          GENOMED_RETURN_IF_ERROR(named(name, validate_name(name)));
          flights_.start(name);
          it = entries_.find(name);
        }
        const Entry& e = it->second;
        if (first_look) {
          (*hits)[i] = e.state == State::ready;
          ++((*hits)[i] ? counters_.hits : counters_.misses);
        }
        if (e.state == State::draining && !req.holds(name)) {
          return named(name, Status(Errc::draining, "adapter " + quote(name) +
                                                        " is being unloaded; it is freed when its " +
                                                        std::to_string(leases_.held(name)) +
                                                        " lease(s) end; retry after that"));
        }
        if (e.state == State::loading)
          loading.push_back(e.flight);
        else
          ready.push_back(name);
      }
      first_look = false;

      bool probed = true;
      std::vector<std::shared_ptr<RangeClaim>> pending;
      for (const auto& flight : loading) {
        join(req, flight);
        if (!flight->claim)
          probed = false;
        else if (flight->claim->pending())
          pending.push_back(flight->claim);
      }
      if (req.admitted && (!probed || !pending.empty())) {
        // A name it wants needs room again (evicted or unloaded, then
        // reloaded). Waiting for room while holding leases is how two
        // batches deadlock: give them back and start over.
        drop_leases(req);
        ++counters_.request_restarts;
      }
      if (!req.admitted && probed && pending.empty()) req.admitted = true;

      if (req.admitted) {
        if (req.wants_lease) {
          for (const auto& name : ready) {
            if (!req.holds(name)) req.leases.emplace_back(name, leases_.grant(name, req.conn));
          }
        }
        if (loading.empty()) return Status::Ok();
        // Wait for the fills; each grants its lease when it publishes.
      } else if (probed) {
        if (req.prefetch && admission_.waiting() > 0) {
          ++counters_.prefetches_dropped;
          return Status(Errc::prefetch_dropped,
                        "prefetch of " + quote(names[0]) + " dropped: " +
                            std::to_string(admission_.waiting()) +
                            " request(s) wait for room, and a prefetch never passes them");
        }
        // One ticket for every range still missing, served all at once.
        auto ticket = std::make_shared<AdmissionTicket>();
        ticket->claims = std::move(pending);
        ticket->keep = std::move(ready);
        ticket->may_evict = !req.prefetch;
        requests_.give_ticket(req, ticket);
        admission_deadline = std::min(deadline, clock_.now() + options_.admission_timeout);
        ticket->submitted = Clock::now();
        settle(admission_.submit(ticket));
        if (ticket->outcome != AdmissionTicket::Outcome::waiting) continue;  // served at once
        if (req.prefetch) {  // never waits: leave() withdraws the ticket and ends the load
          ++counters_.prefetches_dropped;
          return Status(Errc::prefetch_dropped,
                        "prefetch of " + quote(names[0]) + " dropped: " +
                            admission_.head_blocked_by() +
                            "; a prefetch takes free room only (it never evicts a leased, "
                            "pinned or used adapter)");
        }
        if (leases_.reclaim()) settle(admission_.pump());
        if (ticket->outcome != AdmissionTicket::Outcome::waiting) continue;
      }
      // else: wait for the probes that tell how much room it needs.
    }

    if (hook != nullptr) hook->before_wait();  // its connection is watched for a hang-up now
    const auto until = req.ticket ? admission_deadline : deadline;
    clock_.wait_until(req.cv, lock.native(), until);
    if (!req.ticket && clock_.now() >= deadline) {
      return named(req.joined.empty() ? names[0] : req.joined.front()->name,
                   Status(Errc::timeout, "the load did not finish in time"));
    }
  }
}

void Coordinator::settle(const std::vector<TicketPtr>& tickets) {
  for (const TicketPtr& t : tickets) {
    for (const std::string& victim : t->evicted) {
      auto it = entries_.find(victim);
      GENOMED_CHECK(it != entries_.end() && it->second.state == State::ready,
                    "an evicted adapter was not READY");
      entries_.erase(it);
      client_log().info("evicted {} (least recently used, unleased) to make room", quote(victim));
    }
    Request* owner = requests_.owner_of(t.get());
    if (t->outcome == AdmissionTicket::Outcome::served) {
      if (options_.histograms) {
        options_.histograms->admission_wait_seconds.observe(Clock::now() - t->submitted);
      }
      for (const auto& claim : t->claims) {
        flights_.wake_claimant(claim.get());
      }
      if (owner != nullptr) {
        // Admitted: what it keeps is leased in this same step, before any
        // later ticket could evict it.
        owner->admitted = true;
        if (owner->wants_lease && !abandoned(owner->conn)) {
          for (const std::string& name : t->keep) {
            GENOMED_CHECK(entries_.at(name).state == State::ready, "a kept adapter is not READY");
            owner->leases.emplace_back(name, leases_.grant(name, owner->conn));
          }
        }
      }
    }
    if (owner != nullptr) owner->cv.notify_all();
  }
}

ipc::LeaseGrant Coordinator::grant_of(const std::string& name, LeaseId lease) const {
  const auto view = cache_.find(name);
  const AdapterEntry& e = entries_.at(name);
  return ipc::LeaseGrant{name, lease, view->offset, view->length, e.generation, e.digest.hex()};
}

Result<ipc::AcquireReply> Coordinator::acquire(const std::vector<std::string>& names,
                                               ConnectionId conn, WaitHook* hook,
                                               const RequestOptions& options,
                                               const std::shared_ptr<LeaseSlotPage>& page) {
  std::vector<std::string> distinct;
  for (const auto& name : names) {
    if (std::find(distinct.begin(), distinct.end(), name) == distinct.end())
      distinct.push_back(name);
  }
  MutexLock lock(mu_);
  GENOMED_RETURN_IF_ERROR(leases_.check_limit(conn, names.size()));
  // The hit path: every name READY at once needs no request, ticket or
  // wait; it is leased in this step, as serve() would.
  if (!shutting_down_ && !abandoned(conn) && !names.empty() &&
      std::all_of(distinct.begin(), distinct.end(), [&](const std::string& name) REQUIRES(mu_) {
        const auto it = entries_.find(name);
        return it != entries_.end() && it->second.state == State::ready;
      })) {
    counters_.hits += distinct.size();
    ipc::AcquireReply reply;
    reply.grants.reserve(names.size());
    for (const auto& name : names)
      reply.grants.push_back(grant_of(name, leases_.grant(name, conn)));
    attach_slots(reply, conn, page);  // first: a slot lease alone leaves an idle expiry to schedule
    for (const auto& name : distinct) idle_.mark_used(name, options.keep_alive);
    check_invariants();
    return reply;
  }
  Request req;
  req.conn = conn;
  req.wants_lease = true;
  req.priority = options.priority;
  requests_.add(req);
  std::vector<bool> hits(distinct.size());
  Status s = distinct.empty() ? Status::Ok() : serve(lock, distinct, req, hook, &hits);
  leave(req);
  requests_.remove(req);
  if (!s.ok()) {
    drop_leases(req);
    return s;
  }
  // One lease per name asked for (a name listed twice is leased twice).
  ipc::AcquireReply reply;
  std::vector<bool> used(req.leases.size(), false);
  for (const auto& name : names) {
    LeaseId lease = 0;
    for (std::size_t i = 0; i < req.leases.size() && lease == 0; ++i) {
      if (!used[i] && req.leases[i].first == name) {
        used[i] = true;
        lease = req.leases[i].second;
      }
    }
    if (lease == 0) lease = leases_.grant(name, conn);
    reply.grants.push_back(grant_of(name, lease));
  }
  attach_slots(reply, conn, page);
  for (const auto& name : distinct) idle_.mark_used(name, options.keep_alive);
  check_invariants();
  return reply;
}

Result<bool> Coordinator::make_resident(MutexLock& lock, const std::string& name,
                                        ConnectionId conn, WaitHook* hook,
                                        const RequestOptions& options) {
  Request req;
  req.conn = conn;
  req.prefetch = options.prefetch;
  req.priority = options.prefetch ? Priority::low : options.priority;
  requests_.add(req);
  std::vector<bool> hit(1);
  Status s = serve(lock, {name}, req, hook, &hit);
  leave(req);
  requests_.remove(req);
  GENOMED_RETURN_IF_ERROR(s);
  return static_cast<bool>(hit[0]);
}

Result<ipc::LoadReply> Coordinator::load(const std::string& name, ConnectionId conn,
                                         WaitHook* hook, const RequestOptions& options) {
  MutexLock lock(mu_);
  GENOMED_ASSIGN_OR_RETURN(const bool hit, make_resident(lock, name, conn, hook, options));
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
    GENOMED_RETURN_IF_ERROR(make_resident(lock, name, conn, hook, as_load).status());
  }
  // READY here, in the step serve() returned in: nothing evicted it since.
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
    settle(admission_.pump());
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
    if (settle_now) settle(admission_.pump());  // it may be evicted for a waiting ticket now
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
  settle(admission_.pump());  // withdrawn claims need no room any more
  client_log().info(
      "connection {}: the client hung up while its request waited; {} lease(s) released, {} "
      "load(s) nobody else waited for cancelled",
      conn, released, cancelled.size());
  for (const auto& name : cancelled)
    client_log().info("load of {} cancelled: every client waiting for it disconnected",
                      quote(name));
  requests_.wake(conn);  // its waiting requests return now
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
  if (!is_hidden_key(name)) cancel_reload(name);
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
  requests_.check_invariants();
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
    requests_.wake_all();
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
