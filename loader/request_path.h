// The requests in progress (ACQUIRE, LOAD, PIN) and their back-references:
// which request holds each admission ticket, which flights each waits on.
// The coordinator's request loop (Coordinator::serve) moves them through
//
//   join flights -> (ticket: wait for room) -> admitted: leased -> leave
//
// Threads and locks: a Request lives on its request thread's stack and is
// registered here for its whole life; everything here is under the
// coordinator's mutex (Requests is a member guarded by it). Each request
// sleeps on its own `cv`, so an event wakes only whom it concerns.
#pragma once

#include <condition_variable>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "genomed/types.h"
#include "loader/admission_queue.h"
#include "loader/lease_table.h"
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
  TicketPtr ticket;                                     // while waiting for admission
  std::vector<std::shared_ptr<Flight>> joined;          // flights it is a waiter of

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

  // Aborts unless every ticket's owner holds it and is registered, and no
  // request holds a lease before it was admitted.
  void check_invariants() const;

 private:
  std::unordered_set<Request*> requests_;
  // Which request holds each waiting ticket. Invariant: owner registered,
  // owner->ticket is the key.
  std::unordered_map<const AdmissionTicket*, Request*> ticket_owner_;
};

}  // namespace genomed::loader
