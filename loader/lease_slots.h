// The daemon's side of lease slots (the contract: layout/lease_slot.h).
//
// LeaseSlotPage: one connection's page, a sealed memfd mapped read-write,
// created when its client asks for slots in HELLO.
//
// SlotLeases: which leases are held through which slot. A slot lease is an
// ordinary lease of the LeaseTable (it keeps its adapter resident, counts
// against the connection's lease limit, ends when the connection closes);
// what differs is that the client takes further leases and gives them
// back in the page, so the daemon does not see it go idle. The daemon looks
// when it wants the adapter's memory (an admission that waits for room, an
// UNLOAD, an idle expiry, the drain): revoke() ends the idle slots (count 0)
// and marks the others wanted, whose client sends RELEASE with the last
// give-back.
//
// Not thread-safe: the coordinator calls it under its mutex. What a client
// writes into its page can make its own leases look busy (at most
// kMaxCount per slot) or its own views wrong, never touch another
// connection's slots (each has its own page), never make the daemon wait
// for it (revoke gives up on a contended word), and never hold memory with
// a word no honest client writes (a violation: counted 0, revoked and
// ended at the next look).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "layout/lease_slot.h"
#include "loader/lease_table.h"

namespace genomed::loader {

class LeaseSlotPage {
 public:
  // A page of `slots` slots (memfd sealed against shrinking and growing, so
  // the client cannot make the daemon's mapping fault). Errc::environment
  // if the memfd or the mapping cannot be made.
  static Result<std::shared_ptr<LeaseSlotPage>> create(std::uint32_t slots);
  ~LeaseSlotPage();
  LeaseSlotPage(const LeaseSlotPage&) = delete;
  LeaseSlotPage& operator=(const LeaseSlotPage&) = delete;

  // The read-write descriptor to pass to the client (-1 after close_fd()).
  int fd() const { return fd_; }
  // Once it has been passed: the mapping keeps the page.
  void close_fd();
  std::uint32_t slots() const { return slots_; }
  layout::LeaseSlot& slot(std::uint32_t index);
  // The tag of the page's next grant (24 bits, never 0). Per page, so that a
  // tag comes back on this page only after 2^24 - 1 grants of it. Under the
  // coordinator's mutex, as every grant.
  std::uint32_t next_tag();

 private:
  LeaseSlotPage(int fd, void* map, std::size_t bytes, std::uint32_t slots)
      : fd_(fd), map_(map), bytes_(bytes), slots_(slots) {}
  int fd_;
  void* map_;
  std::size_t bytes_;
  std::uint32_t slots_;
  std::uint32_t next_tag_ = 1;
};

struct SlotGrant {
  std::uint32_t index = 0;
  std::uint32_t tag = 0;
};

class SlotLeases {
 public:
  // Holds lease `id` on `name` through a free slot of `page` (its count set
  // to 1 for that lease). nullopt if the page has no free slot or already
  // holds a slot on `name` (a lease taken beside it stays an ordinary one).
  std::optional<SlotGrant> attach(LeaseId id, const std::string& name, ConnectionId conn,
                                  const std::shared_ptr<LeaseSlotPage>& page);
  // Lease `id` ended (RELEASE, revocation, disconnect): revokes its slot, so
  // nothing more is taken through it, and frees it. No-op for other leases.
  void detach(LeaseId id);

  // Wants back the slots on `name` (every slot with nullptr): the idle ones
  // are revoked and their lease ids returned (the caller ends those leases),
  // the busy ones are marked wanted.
  std::vector<std::pair<LeaseId, std::string>> revoke(const std::string* name);
  // The slots of `conn`: whether one is busy now, whether one was used
  // since the last look of this kind (its own, apart from the LRU's), and
  // revocation of them all (as revoke()). O(slot leases of every
  // connection): for the idle-connection check and the lease limit.
  bool busy(ConnectionId conn) const;
  bool used_by_since_last_look(ConnectionId conn);
  std::vector<std::pair<LeaseId, std::string>> revoke_of(ConnectionId conn);
  // Whether a lease was taken through a slot on `name` since the last look
  // (or since the slot was granted): the reference bit of an adapter the
  // daemon otherwise sees unused.
  bool used_since_last_look(const std::string& name);
  // The adapters with a slot that were used since the last look.
  std::vector<std::string> used_names();

  // The slot leases on `from` are on `to` from now on (with the table's
  // rename). A page may then grant a slot on `from` again.
  void rename(const std::string& from, const std::string& to);
  // Slot leases on `name` (each is one lease of the LeaseTable).
  std::size_t count(const std::string& name) const;
  // Leases taken through the slots on `name` now, as their words say: at
  // most layout::slot_word::kMaxCount each; a word that breaks the contract
  // (layout::plausible) counts 0 and is a violation: the next revoke() or
  // revoke_of() that looks at it ends its lease, whatever its count.
  std::uint64_t held(const std::string& name) const;
  std::uint64_t held_total() const;
  std::size_t size() const { return leases_.size(); }
  // Leases taken through slots so far (not counting the granting ACQUIREs).
  std::uint64_t uses() const;
  // Slots whose word broke the contract so far (each counted once).
  std::uint64_t violations() const { return violations_; }

  // Aborts unless every slot lease is a live lease of `table` and the
  // indexes agree. O(slot leases).
  void check_invariants(const LeaseTable& table) const;

 private:
  struct Held {
    std::string name;
    ConnectionId conn = 0;
    std::shared_ptr<LeaseSlotPage> page;
    SlotGrant grant;
    std::uint64_t uses_seen = 0;       // uses at the last look (LRU, idle unload)
    std::uint64_t conn_uses_seen = 0;  // uses at the last look of the idle-connection check
    // The most uses read so far: what counts, so the hit counter never goes
    // back even if the client rewrites the word (it can only inflate it).
    mutable std::uint64_t uses_high = 0;
    // Its word broke the contract once (counted in violations_; the slot
    // counts 0 from then on, and the next look that wants it ends it).
    mutable bool violated = false;
  };
  struct PageState {
    std::vector<std::uint32_t> free;                     // slot indexes not granted
    std::unordered_map<std::string, LeaseId> by_name;    // at most one slot per adapter
  };
  std::uint64_t uses_of(const Held& h) const;
  // Leases taken through the slot now (layout::read_held; a violation: 0,
  // and noted).
  std::uint64_t held_through(const Held& h) const;
  void note_violation(const Held& h) const;
  // revoke_slot() on each; the leases of those it revoked.
  std::vector<std::pair<LeaseId, std::string>> revoke_each(const std::vector<LeaseId>& ids);
  // Revokes and frees; folds its uses into ended_uses_.
  void free_slot(std::unordered_map<LeaseId, Held>::iterator it);

  std::unordered_map<LeaseId, Held> leases_;
  std::unordered_map<const LeaseSlotPage*, PageState> pages_;  // pages with a slot granted
  std::unordered_map<std::string, std::vector<LeaseId>> by_name_;
  std::uint64_t ended_uses_ = 0;    // uses of slots freed so far (saturating)
  // Slots seen breaking the contract (layout::plausible); read under the
  // coordinator's mutex, as everything here, also from const figures.
  mutable std::uint64_t violations_ = 0;
};

}  // namespace genomed::loader
