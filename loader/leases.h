// Leases: every lease the daemon granted, ordinary or held through a
// connection's lease slot, and the one count of them a client sees.
//
// Below it, two mechanisms: LeaseTable (lease_table.h: who holds which
// lease; the cache's per-adapter count, which decides eviction) and
// SlotLeases (lease_slots.h: which of those are held through a slot). This
// part keeps them in step (a lease that ends frees its slot), enforces the
// per-connection limit, and wants slots back when the daemon needs memory:
// attach, reclaim (by reference bit), revoke.
//
// "Leases" means one thing wherever a number is reported (LIST, STATS,
// UNLOAD's reply, the draining error): the leases the clients hold, a slot
// counting what is taken through it (0 when idle). The cache counts a slot
// lease as one whatever its word says: that count decides, it is never shown.
//
// Threads and locks: not thread-safe. The coordinator owns it as a member
// guarded by its mutex; `on_last_end` runs under that mutex.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "cache/resident_cache.h"
#include "common/status.h"
#include "ipc/protocol.h"
#include "loader/lease_slots.h"
#include "loader/lease_table.h"

namespace genomed::loader {

class Leases {
 public:
  // Told that the last lease on `name` ended (it may be evicted or freed
  // now). `settle_now` false: the caller pumps the admission queue itself.
  using LastEnded = std::function<void(const std::string& name, bool settle_now)>;

  Leases(cache::ResidentCache& cache, std::size_t max_per_connection, LastEnded on_last_end)
      : cache_(cache),
        max_per_connection_(max_per_connection),
        on_last_end_(std::move(on_last_end)),
        table_(cache) {}

  // Leases the resident adapter `name` to `conn`.
  LeaseId grant(const std::string& name, ConnectionId conn) { return table_.grant(name, conn); }
  // Ends a lease (of `conn` only, if given); false if there is none such.
  bool end(LeaseId id, std::optional<ConnectionId> conn = std::nullopt, bool settle_now = true);
  // Ends those of `ids` that `conn` holds; returns how many it does not.
  std::size_t release(std::span<const LeaseId> ids, ConnectionId conn);
  // Ends every lease of `conn`; returns how many.
  std::size_t end_all_of(ConnectionId conn);
  // limit_exceeded if `conn` would hold more than the per-connection limit
  // with `more` leases. Its idle slots are revoked first when they are in
  // the way (they count as leases only if they cannot be given back).
  Status check_limit(ConnectionId conn, std::size_t more);
  // For closing an idle connection (Coordinator::holds_leases).
  bool active(ConnectionId conn);

  // Holds the reply's leases through free slots of `page` where it can,
  // on the names `ready` says are READY. Nothing while slots are closed.
  void attach(ipc::AcquireReply& reply, ConnectionId conn,
              const std::shared_ptr<LeaseSlotPage>& page,
              const std::function<bool(const std::string&)>& ready);
  // A request is about to wait for room: every idle slot is revoked (its
  // lease ends, so its adapter may be evicted) and every busy one is wanted
  // back. Of the adapters freed so, those used through their slots since the
  // last look become the most recently used, the others the least (the
  // daemon saw no use of them: a CLOCK-style reference bit). True if there
  // was a slot: the caller then pumps the admission queue.
  bool reclaim();
  // Ends the idle slot leases on `name` and wants the busy ones back.
  void revoke(const std::string& name);
  // Every lease on `from`, ordinary or through a slot, is a lease on `to`
  // from now on: the cache's entry was renamed so (a RELOAD's swap).
  void rename(const std::string& from, const std::string& to) {
    table_.rename(from, to);
    slots_.rename(from, to);
  }
  // The drain: no slot is granted from now on; idle ones end now.
  void close_slots();
  bool has_slots(const std::string& name) const { return slots_.count(name) > 0; }
  // Whether a slot on `name` was used since the last look (idle unload).
  bool slot_used_since_last_look(const std::string& name) {
    return slots_.used_since_last_look(name);
  }

  // The count (see the top): what the clients hold on `name`, and in all.
  std::uint64_t held(const std::string& name) const;
  std::uint64_t held_total() const;
  // Leases on `name` not held through a slot (a slot lease alone does not
  // keep an adapter from idling: its uses do).
  std::uint64_t ordinary(const std::string& name) const;
  // Leases on `name` by the cache's count (one per slot): for decisions.
  std::uint32_t records(const std::string& name) const;

  std::uint64_t granted() const { return table_.granted(); }
  std::size_t slot_count() const { return slots_.size(); }
  std::uint64_t slot_uses() const { return slots_.uses(); }
  std::uint64_t slot_violations() const { return slots_.violations(); }

  // Aborts unless the table agrees with the cache and every slot lease is
  // a live lease of the table.
  void check_invariants() const;

 private:
  cache::ResidentCache& cache_;
  const std::size_t max_per_connection_;
  const LastEnded on_last_end_;
  LeaseTable table_;
  // Invariant: every lease here is a live lease of table_.
  SlotLeases slots_;
  bool slots_closed_ = false;  // close_slots() ran: grant none
};

}  // namespace genomed::loader
