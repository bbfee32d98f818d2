// The request path: what an ACQUIRE, LOAD or PIN does under the
// coordinator's mutex, from its first look at its names to its reply, and
// the requests in progress with their back-references (which request holds
// each admission ticket, which flights each waits on).
//
// An ACQUIRE whose names are all READY takes the hit path: leased in one
// step, no Request, no ticket, no wait. Any other request is served
// (RequestPath::serve), holding nothing while it waits for memory:
//
//   join or start flights -> all probed -> (one ticket: wait for room)
//     -> admitted: leased (kept names now, loaded ones as each publishes)
//     -> leave
//
// A request that needs room again after admission gives back every lease and
// starts over. docs/architecture.md §3.1 and §4 tell the whole path.
//
// Threads and locks: a Request lives on its request thread's stack and is
// registered here for its whole life. Everything here, and every part it is
// given, is under the coordinator's mutex (the coordinator owns RequestPath
// as a member guarded by it); serve() waits through the caller's lock. Each
// request sleeps on its own `cv`, so an event wakes only whom it concerns.
#pragma once

#include <condition_variable>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "cache/resident_cache.h"
#include "common/mutex.h"
#include "common/status.h"
#include "common/wait_clock.h"
#include "genomed/types.h"
#include "ipc/protocol.h"
#include "loader/adapter_table.h"
#include "loader/admission_queue.h"
#include "loader/coordinator_options.h"
#include "loader/flights.h"
#include "loader/introspection.h"
#include "loader/lease_table.h"
#include "loader/leases.h"
#include "loader/pool.h"

namespace genomed::loader {

struct Flight;  // flight.h

// An ACQUIRE or LOAD in progress.
struct Request {
  ConnectionId conn = 0;
  bool wants_lease = false;              // an ACQUIRE
  Priority priority = Priority::normal;  // of the flights it joins (raised to it)
  bool prefetch = false;                 // RequestOptions::prefetch
  std::condition_variable cv;
  // Invariant: holds leases only while admitted. Admitted means it needs
  // no more room: its ticket was served, or none was needed.
  bool admitted = false;
  std::vector<std::pair<std::string, LeaseId>> leases;  // granted to it so far
  // While waiting for admission. Invariant: not admitted while it waits.
  TicketPtr ticket;
  // Flights it is a waiter of. Invariant: it is in each one's `waiters`
  // exactly once, and in no other flight's.
  std::vector<std::shared_ptr<Flight>> joined;

  bool holds(const std::string& name) const;
};

class Requests {
 public:
  // A request registers for its whole life (to be woken on shutdown or
  // abandonment, and found by its ticket).
  void add(Request& req) { requests_.insert(&req); }
  void remove(Request& req) { requests_.erase(&req); }
  // Gives `req` its ticket / takes it back (the ticket stays with the queue).
  void give_ticket(Request& req, TicketPtr ticket);
  void drop_ticket(Request& req);
  // The request that holds `ticket`; nullptr if it left.
  Request* owner_of(const AdmissionTicket* ticket) const;
  void wake_all() const;
  void wake(ConnectionId conn) const;  // its requests only

  // Aborts unless every ticket's owner holds it and is registered, no
  // request holds a lease before it was admitted or is admitted while its
  // ticket waits, and each request and the flights it joined (those of the
  // LOADING entries of `entries` among them) list each other.
  void check_invariants(const AdapterTable& entries) const;

 private:
  std::unordered_set<Request*> requests_;
  // Which request holds each waiting ticket. Invariant: owner registered,
  // owner->ticket is the key.
  std::unordered_map<const AdmissionTicket*, Request*> ticket_owner_;
};

// Names without repeats, in their first order.
std::vector<std::string> distinct_names(const std::vector<std::string>& names);

class RequestPath {
 public:
  // The coordinator's side, each called under its mutex.
  struct Hooks {
    std::function<bool(ConnectionId)> abandoned;  // its client hung up
    std::function<bool()> stopping;               // the daemon shuts down
  };

  RequestPath(const CoordinatorOptions& options, WaitClock& clock, AdapterTable& entries,
              const cache::ResidentCache& cache, Leases& leases, AdmissionQueue& admission,
              Flights& flights, CoordinatorCounters& counters, Hooks hooks);

  // ACQUIRE's steps for `names` (`wanted`: the same without repeats): the
  // hit path, else serve(). One lease per name asked for (a name listed
  // twice is leased twice); all or nothing. Returns with `lock` held.
  Result<ipc::AcquireReply> acquire(MutexLock& lock, const std::vector<std::string>& names,
                                    const std::vector<std::string>& wanted, ConnectionId conn,
                                    WaitHook* hook, const RequestOptions& options);
  // LOAD's steps for one name: READY when it returns Ok (with `lock` held,
  // so nothing evicted it since); true if it was READY at the first look.
  Result<bool> make_resident(MutexLock& lock, const std::string& name, ConnectionId conn,
                             WaitHook* hook, const RequestOptions& options);
  // make_resident() of `key` for a request that holds it once READY (the
  // publish leases it to the request in the same step, so nothing evicts
  // it before the caller acts): the leases' ids, which the caller ends.
  // RELOAD's new generation (loader/reload.cc).
  Result<std::vector<LeaseId>> make_resident_leased(MutexLock& lock, const std::string& key,
                                                    ConnectionId conn, WaitHook* hook,
                                                    const RequestOptions& options);
  // Acts on tickets that left the admission queue: evicts, grants, wakes.
  void settle(const std::vector<TicketPtr>& tickets);

  void wake_all() const { requests_.wake_all(); }
  void wake(ConnectionId conn) const { requests_.wake(conn); }  // its requests only

  // Aborts on broken bookkeeping of the requests (Requests::check_invariants).
  void check_invariants() const { requests_.check_invariants(entries_); }

 private:
  // Every name READY at the first look (and the request may be served):
  // leased in this step, as serve() would; nullopt otherwise.
  std::optional<ipc::AcquireReply> hit(const std::vector<std::string>& names,
                                       const std::vector<std::string>& wanted, ConnectionId conn);
  // Registers `req`, serves `names` (distinct) for it, leaves and unregisters.
  Status run(MutexLock& lock, const std::vector<std::string>& names, Request& req,
             WaitHook* hook, std::vector<bool>* hits);
  // The load-or-wait loop for the distinct names of a request; returns once
  // every one is READY and (for an acquirer) leased to it, with the lock held.
  // `hits`: whether each name was READY at the first look.
  Status serve(MutexLock& lock, const std::vector<std::string>& names, Request& req,
               WaitHook* hook, std::vector<bool>* hits);
  void join(Request& req, const std::shared_ptr<Flight>& flight);
  // Leaves its flights and withdraws its ticket (its leases stay).
  void leave(Request& req);
  void drop_leases(Request& req);
  // What the client learns of its lease on the resident adapter `name`.
  ipc::LeaseGrant grant_of(const std::string& name, LeaseId lease) const;

  const CoordinatorOptions& options_;
  WaitClock& clock_;
  AdapterTable& entries_;
  const cache::ResidentCache& cache_;
  Leases& leases_;
  AdmissionQueue& admission_;
  Flights& flights_;
  CoordinatorCounters& counters_;
  const Hooks hooks_;
  Requests requests_;  // in progress, and who holds each ticket
};

}  // namespace genomed::loader
