#include "loader/request_path.h"

#include <algorithm>

#include "cache/check.h"
#include "common/safe_text.h"
#include "loader/client_log.h"
#include "loader/flight.h"
#include "loader/name_resolver.h"

namespace genomed::loader {

bool Request::holds(const std::string& name) const {
  return std::any_of(leases.begin(), leases.end(), [&](const auto& l) { return l.first == name; });
}

void Requests::give_ticket(Request& req, TicketPtr ticket) {
  ticket_owner_[ticket.get()] = &req;
  req.ticket = std::move(ticket);
}

void Requests::drop_ticket(Request& req) {
  ticket_owner_.erase(req.ticket.get());
  req.ticket.reset();
}

Request* Requests::owner_of(const AdmissionTicket* ticket) const {
  const auto it = ticket_owner_.find(ticket);
  return it == ticket_owner_.end() ? nullptr : it->second;
}

void Requests::wake_all() const {
  for (Request* r : requests_) r->cv.notify_all();
}

void Requests::wake(ConnectionId conn) const {
  for (Request* r : requests_) {
    if (r->conn == conn) r->cv.notify_all();
  }
}

void Requests::check_invariants(const AdapterTable& entries) const {
  for (const auto& [ticket, owner] : ticket_owner_) {
    GENOMED_CHECK(requests_.contains(owner) && owner->ticket.get() == ticket,
                  "a ticket owned by a request that does not hold it");
  }
  for (const Request* r : requests_) {
    GENOMED_CHECK(r->admitted || r->leases.empty(), "a request holds leases before admission");
    GENOMED_CHECK(!r->admitted || !r->ticket ||
                      r->ticket->outcome != AdmissionTicket::Outcome::waiting,
                  "an admitted request still waits for room");
    for (const auto& flight : r->joined) {
      GENOMED_CHECK(std::count(flight->waiters.begin(), flight->waiters.end(), r) == 1,
                    "a request joined a flight that does not list it once as a waiter");
    }
  }
  for (const auto& [name, e] : entries) {
    if (e.state != AdapterState::loading || !e.flight) continue;
    for (Request* w : e.flight->waiters) {
      GENOMED_CHECK(requests_.contains(w) && std::count(w->joined.begin(), w->joined.end(),
                                                        e.flight) == 1,
                    "a flight's waiter is not a request in progress that joined it");
    }
  }
}

std::vector<std::string> distinct_names(const std::vector<std::string>& names) {
  std::vector<std::string> distinct;
  for (const auto& name : names) {
    if (std::find(distinct.begin(), distinct.end(), name) == distinct.end())
      distinct.push_back(name);
  }
  return distinct;
}

RequestPath::RequestPath(const CoordinatorOptions& options, WaitClock& clock,
                         AdapterTable& entries, const cache::ResidentCache& cache, Leases& leases,
                         AdmissionQueue& admission, Flights& flights,
                         CoordinatorCounters& counters, Hooks hooks)
    : options_(options),
      clock_(clock),
      entries_(entries),
      cache_(cache),
      leases_(leases),
      admission_(admission),
      flights_(flights),
      counters_(counters),
      hooks_(std::move(hooks)) {}

// ---------------------------------------------------------------------------
// ACQUIRE and LOAD

Result<ipc::AcquireReply> RequestPath::acquire(MutexLock& lock,
                                               const std::vector<std::string>& names,
                                               const std::vector<std::string>& wanted,
                                               ConnectionId conn, WaitHook* hook,
                                               const RequestOptions& options) {
  if (auto reply = hit(names, wanted, conn)) return std::move(*reply);
  Request req;
  req.conn = conn;
  req.wants_lease = true;
  req.priority = options.priority;
  std::vector<bool> hits(wanted.size());
  if (Status s = run(lock, wanted, req, hook, &hits); !s.ok()) {
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
  return reply;
}

std::optional<ipc::AcquireReply> RequestPath::hit(const std::vector<std::string>& names,
                                                  const std::vector<std::string>& wanted,
                                                  ConnectionId conn) {
  if (hooks_.stopping() || hooks_.abandoned(conn) || names.empty() ||
      !std::all_of(wanted.begin(), wanted.end(), [&](const std::string& name) {
        const auto it = entries_.find(name);
        return it != entries_.end() && it->second.state == AdapterState::ready;
      }))
    return std::nullopt;
  counters_.hits += wanted.size();
  ipc::AcquireReply reply;
  reply.grants.reserve(names.size());
  for (const auto& name : names) reply.grants.push_back(grant_of(name, leases_.grant(name, conn)));
  return reply;
}

Result<bool> RequestPath::make_resident(MutexLock& lock, const std::string& name,
                                        ConnectionId conn, WaitHook* hook,
                                        const RequestOptions& options) {
  Request req;
  req.conn = conn;
  req.prefetch = options.prefetch;
  req.priority = options.prefetch ? Priority::low : options.priority;
  std::vector<bool> hit(1);
  GENOMED_RETURN_IF_ERROR(run(lock, {name}, req, hook, &hit));
  return static_cast<bool>(hit[0]);
}

Result<std::vector<LeaseId>> RequestPath::make_resident_leased(MutexLock& lock,
                                                               const std::string& key,
                                                               ConnectionId conn, WaitHook* hook,
                                                               const RequestOptions& options) {
  Request req;
  req.conn = conn;
  req.wants_lease = true;
  req.priority = options.priority;
  std::vector<bool> hit(1);
  if (Status s = run(lock, {key}, req, hook, &hit); !s.ok()) {
    drop_leases(req);
    return s;
  }
  std::vector<LeaseId> ids;
  for (const auto& [name, id] : req.leases) ids.push_back(id);
  return ids;
}

ipc::LeaseGrant RequestPath::grant_of(const std::string& name, LeaseId lease) const {
  const auto view = cache_.find(name);
  const AdapterEntry& e = entries_.at(name);
  return ipc::LeaseGrant{name, lease, view->offset, view->length, e.generation, e.digest.hex()};
}

// ---------------------------------------------------------------------------
// A request from its first look to its leave

Status RequestPath::run(MutexLock& lock, const std::vector<std::string>& names, Request& req,
                        WaitHook* hook, std::vector<bool>* hits) {
  requests_.add(req);
  Status s = names.empty() ? Status::Ok() : serve(lock, names, req, hook, hits);
  leave(req);
  requests_.remove(req);
  return s;
}

Status RequestPath::serve(MutexLock& lock, const std::vector<std::string>& names, Request& req,
                          WaitHook* hook, std::vector<bool>* hits) {
  const auto deadline = flights_.waiter_deadline();
  Clock::time_point admission_deadline{};
  const bool batch = names.size() > 1;
  const auto named = [&](const std::string& name, const Status& s) {
    return batch ? Status(s.code(), quote(name) + ": " + s.message()) : s;
  };
  bool first_look = true;
  for (;;) {
    if (hooks_.stopping()) return shutting_down_status();
    if (hooks_.abandoned(req.conn))
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
        const AdapterEntry& e = it->second;
        if (first_look) {
          (*hits)[i] = e.state == AdapterState::ready;
          ++((*hits)[i] ? counters_.hits : counters_.misses);
        }
        if (e.state == AdapterState::draining && !req.holds(name)) {
          return named(name, Status(Errc::draining,
                                    "adapter " + quote(name) +
                                        " is being unloaded; it is freed when its " +
                                        std::to_string(leases_.held(name)) +
                                        " lease(s) end; retry after that"));
        }
        if (e.state == AdapterState::loading)
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

void RequestPath::join(Request& req, const std::shared_ptr<Flight>& flight) {
  if (std::find(req.joined.begin(), req.joined.end(), flight) != req.joined.end()) return;
  // Before the flight's thread can queue a job (it needs mu_ first), or for
  // its later jobs: the load runs as urgently as its most urgent waiter.
  flight->cancel->raise_priority(static_cast<int>(req.priority));
  req.joined.push_back(flight);
  flight->waiters.push_back(&req);
}

void RequestPath::leave(Request& req) {
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

void RequestPath::drop_leases(Request& req) {
  for (const auto& [name, id] : req.leases) leases_.end(id);
  req.leases.clear();
  req.admitted = false;
}

void RequestPath::settle(const std::vector<TicketPtr>& tickets) {
  for (const TicketPtr& t : tickets) {
    for (const std::string& victim : t->evicted) {
      auto it = entries_.find(victim);
      GENOMED_CHECK(it != entries_.end() && it->second.state == AdapterState::ready,
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
        if (owner->wants_lease && !hooks_.abandoned(owner->conn)) {
          for (const std::string& name : t->keep) {
            GENOMED_CHECK(entries_.at(name).state == AdapterState::ready,
                          "a kept adapter is not READY");
            owner->leases.emplace_back(name, leases_.grant(name, owner->conn));
          }
        }
      }
    }
    if (owner != nullptr) owner->cv.notify_all();
  }
}

}  // namespace genomed::loader
