// Admission: who gets room in the budget next. Requests that need ranges for
// their loads wait here in arrival order (as plasma's create-request queue),
// each on its own ticket:
//
// - A ticket names every range its request still needs (RangeClaims of the
//   loads it waits for) and is served all at once or not at all
//   (ResidentCache::reserve_all): a batch never holds part of its room while
//   it waits for the rest, so two batches cannot each hold half of what the
//   other needs.
// - Strict FIFO: only the head is tried; a large adapter is not starved by a
//   stream of small ones behind it. The one exception takes no room: a
//   ticket whose claims all got their ranges through earlier tickets (or
//   were withdrawn) is served wherever it stands, as a cache hit would be. Whatever frees room (a
//   lease's end, an erase, a cancelled reservation, a withdrawn ticket) calls pump(), which serves
//   from the head while it fits and returns exactly the tickets it served, so only the requests it
//   unblocked are woken.
// - A claim is shared by every ticket of a request that waits for the same
//   load; the first ticket served gives it its range, later ones skip it.
// - `keep` lists resident adapters the request also wants: they are never
//   evicted to serve it. If one is erased while the ticket waits (evicted for
//   an earlier ticket, unloaded), the ticket is returned `stale` and its
//   request starts over, since what it would be admitted for is gone.
//
// Not thread-safe: the coordinator calls it under its mutex. Time-free: the
// waiting request owns its deadline and withdraws its ticket when it passes.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cache/resident_cache.h"
#include "common/status.h"

namespace genomed::loader {

// One load's need for a range, known once its probe has run.
struct RangeClaim {
  std::uint64_t length = 0;
  std::optional<cache::ResidentCache::Range> range;  // set once, by the ticket that served it
  bool withdrawn = false;  // the load ended without its range: no ticket reserves for it
  bool pending() const { return !range && !withdrawn; }
};

struct AdmissionTicket {
  enum class Outcome {
    waiting,  // queued
    served,   // every claim has its range (this ticket's or an earlier one's)
    failed,   // the claims can never fit (too_large); `error` says why
    stale,    // a `keep` adapter was erased while it waited: start over
  };
  std::vector<std::shared_ptr<RangeClaim>> claims;
  std::vector<std::string> keep;
  // False for a prefetch: served only from free room, never by evicting.
  bool may_evict = true;

  Outcome outcome = Outcome::waiting;
  Status error;                      // when failed
  std::vector<std::string> evicted;  // when served: entries evicted to make its room
  // When it was queued (the admission-wait histogram; steady_clock, not the
  // coordinator's injectable clock: it measures, it decides nothing).
  std::chrono::steady_clock::time_point submitted{};
};
using TicketPtr = std::shared_ptr<AdmissionTicket>;

class AdmissionQueue {
 public:
  explicit AdmissionQueue(cache::ResidentCache& cache) : cache_(cache) {}

  // Queues `ticket` at the tail, then pumps: the tickets that left the queue
  // (served, failed or stale), `ticket` among them if it was served at once.
  std::vector<TicketPtr> submit(TicketPtr ticket);
  // Takes a waiting ticket out (its request gave up), then pumps.
  std::vector<TicketPtr> withdraw(const TicketPtr& ticket);
  // Serves from the head while the head fits, then every ticket that needs
  // no room any more (no pending claim), wherever it stands.
  std::vector<TicketPtr> pump();
  // `name` may no longer be leased (unloaded: erased or draining): waiting
  // tickets that keep it become stale. Then pumps (an erase freed room).
  std::vector<TicketPtr> unavailable(const std::string& name);

  std::size_t waiting() const { return queue_.size(); }
  // How many waiting tickets are ahead of `ticket` (0: it is the head).
  std::size_t position(const TicketPtr& ticket) const;
  // The last no_space refusal of the head, for the message of a ticket that times out.
  const std::string& head_blocked_by() const { return head_blocked_by_; }
  // Aborts unless every queued ticket is waiting and queued once.
  void check_invariants() const;

 private:
  // Tries the head; true if it left the queue (appended to `done`).
  bool try_head(std::vector<TicketPtr>* done);
  void mark_stale_keeping(const std::vector<std::string>& names, std::vector<TicketPtr>* done);

  cache::ResidentCache& cache_;
  // Waiting tickets, oldest first. Invariant: every one has outcome waiting.
  std::deque<TicketPtr> queue_;
  std::string head_blocked_by_;
};

}  // namespace genomed::loader
