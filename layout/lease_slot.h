// Lease slots: the shared-memory contract between the daemon and a client
// for leases that are taken and given back without a message.
//
// Why. A lease on a resident adapter costs a round trip (ACQUIRE) and a
// one-way RELEASE over the socket: two cross-process wake-ups for what is,
// on a server that uses one adapter for batch after batch, the same answer
// every time. A slot makes the repeat free: after one ACQUIRE over the
// socket, the client takes and gives back further leases on that adapter
// by changing a word in a page both sides map. The daemon reads the word
// only when it wants the adapter's memory back.
//
// The page. One per connection, created by the daemon (a sealed memfd: the
// client cannot shrink it under the daemon), passed with the HELLO reply to
// a client that asked for it, mapped read-write by both. It holds a header
// and `slots` entries of two words each. A client writes only its own page,
// so whatever it writes there harms no other client.
//
// A slot's word: | tag (24 bits) | 6 unused | revoked | wanted | count (32) |
//  - count: leases the client holds through the slot. The ACQUIRE that
//    grants the slot sets it to 1 (that ACQUIRE's own lease). At most
//    kMaxCount: a client takes no more through one slot (it asks over the
//    socket, where the per-connection lease limit applies).
//  - tag: changes each time the daemon grants the slot again, so a client
//    still holding an older grant of it can never count on the new one.
//  - wanted: the daemon wants the slot back (memory pressure, UNLOAD, idle
//    unload, the drain). The client then takes no new lease through it (it
//    asks over the socket, where the daemon decides), and whoever gives
//    back the last lease revokes the slot and sends RELEASE of its lease id.
//  - revoked: the slot ends; no lease is taken through it again. Set by the
//    daemon when it finds the slot idle (count 0: it ends the lease
//    itself), or by the client with the last give-back after `wanted` (it
//    then sends RELEASE, and the daemon ends the lease when that arrives).
//    The daemon ends a slot's lease only in those two ways (or when the
//    connection closes): never while the count it reads is not 0.
// The second word, `uses`, counts the leases taken through the slot: the
// daemon reads it for its hit counter and to see whether an idle adapter
// was in fact used (LRU order, idle unload).
//
// A word no honest client can leave (a tag other than the grant's, a count
// above kMaxCount, leases counted in a revoked slot) is a protocol
// violation: the daemon counts the slot as holding nothing, revokes it at
// its next look and ends its lease (read_held(), revoke_slot()). So what a
// client writes into its page never reaches the daemon's figures (STATS,
// LIST, the drain) beyond kMaxCount per slot, and never holds memory the
// daemon wants back.
//
// Every change is one compare-and-swap of the whole word, so the two sides
// never disagree on who moved it last. Header-only: the daemon, the client
// library and the tests use the same code.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace genomed::layout {

inline constexpr std::uint64_t kLeaseSlotMagic = 0x31544f4c534d4e47ull;  // "GNMSLOT1"
inline constexpr std::uint32_t kLeaseSlotVersion = 1;

struct LeaseSlot {
  std::atomic<std::uint64_t> word;
  std::atomic<std::uint64_t> uses;
};
static_assert(sizeof(LeaseSlot) == 16);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free,
              "slots are shared between processes: their atomics must not take a lock");

struct LeaseSlotHeader {
  std::uint64_t magic;
  std::uint32_t version;
  std::uint32_t slots;
};
static_assert(sizeof(LeaseSlotHeader) == 16);

// Bytes of a page of `slots` slots (the header, then the slots).
constexpr std::size_t lease_slot_page_bytes(std::uint32_t slots) {
  return sizeof(LeaseSlotHeader) + static_cast<std::size_t>(slots) * sizeof(LeaseSlot);
}

namespace slot_word {
inline constexpr std::uint64_t kCountMask = 0xffffffffull;
inline constexpr std::uint64_t kWanted = 1ull << 32;
inline constexpr std::uint64_t kRevoked = 1ull << 33;
inline constexpr int kTagShift = 40;
inline constexpr std::uint32_t kTagMask = 0xffffff;
// The most leases held through one slot (2^16: far more than a server runs
// requests on one adapter at once). take_slot_lease refuses to go past it.
inline constexpr std::uint32_t kMaxCount = 1u << 16;

constexpr std::uint32_t count(std::uint64_t w) { return static_cast<std::uint32_t>(w & kCountMask); }
constexpr std::uint32_t tag(std::uint64_t w) { return static_cast<std::uint32_t>(w >> kTagShift); }
constexpr bool wanted(std::uint64_t w) { return (w & kWanted) != 0; }
constexpr bool revoked(std::uint64_t w) { return (w & kRevoked) != 0; }
// A freshly granted slot: one lease (the granting ACQUIRE's).
constexpr std::uint64_t granted(std::uint32_t tag) {
  return (static_cast<std::uint64_t>(tag & kTagMask) << kTagShift) | 1;
}
}  // namespace slot_word

// ---- the client's side ---------------------------------------------------------

// Takes one more lease through the slot granted with `tag`. False when the
// slot is not that grant any more, is revoked or wanted, or its count is at
// kMaxCount: the caller asks over the socket instead.
inline bool take_slot_lease(LeaseSlot& slot, std::uint32_t tag) {
  using namespace slot_word;
  std::uint64_t w = slot.word.load(std::memory_order_acquire);
  for (;;) {
    if (slot_word::tag(w) != tag || (w & (kWanted | kRevoked)) != 0 || count(w) >= kMaxCount)
      return false;
    if (slot.word.compare_exchange_weak(w, w + 1, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
      slot.uses.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
  }
}

enum class GiveBack {
  kept,    // done: nothing to send
  notify,  // the last lease after `wanted`: the slot is revoked now; send RELEASE of its lease id
  stale,   // the word is not what this client left there (it wrote its own page
           // wrongly): send RELEASE of the lease id, as without a slot
};

// Gives back one lease taken through the slot granted with `tag`.
inline GiveBack give_back_slot_lease(LeaseSlot& slot, std::uint32_t tag) {
  using namespace slot_word;
  std::uint64_t w = slot.word.load(std::memory_order_acquire);
  for (;;) {
    if (slot_word::tag(w) != tag || revoked(w) || count(w) == 0) return GiveBack::stale;
    std::uint64_t next = w - 1;
    const bool last_wanted = count(next) == 0 && wanted(w);
    if (last_wanted) next |= kRevoked;
    if (slot.word.compare_exchange_weak(w, next, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
      return last_wanted ? GiveBack::notify : GiveBack::kept;
    }
  }
}

// ---- the daemon's side ---------------------------------------------------------

// Whether `w` is a word an honest client can leave in the slot granted with
// `tag`: the grant's tag, a count of at most kMaxCount, and no count left in
// a revoked slot (the client revokes only with its last give-back).
constexpr bool plausible(std::uint64_t w, std::uint32_t tag) {
  using namespace slot_word;
  return slot_word::tag(w) == tag && count(w) <= kMaxCount && !(revoked(w) && count(w) != 0);
}

// The leases the client holds through the slot granted with `tag`, as the
// daemon counts them: the count; 1 for a slot the client revoked (its
// RELEASE is on the way: the lease is not ended yet); nullopt for a word
// that is not plausible() (a protocol violation: it counts for nothing).
constexpr std::optional<std::uint32_t> read_held(std::uint64_t w, std::uint32_t tag) {
  if (!plausible(w, tag)) return std::nullopt;
  return slot_word::revoked(w) ? 1 : slot_word::count(w);
}

enum class Revoke {
  revoked,    // it was idle: revoked now; the daemon ends its lease
  in_use,     // leases are held through it (or the client revoked it and its RELEASE is on
              // the way): marked wanted; its lease ends with the client's RELEASE or its
              // disconnect
  violation,  // the word is not plausible(): revoked now; the daemon ends its lease (the
              // client broke the contract, its views through the slot are its own problem)
};

// Wants the slot granted with `tag` back. Two steps, neither of which a
// client can make fail or repeat (no loop: the daemon never spins on a
// client's word):
//  1. `wanted` is set (fetch_or always succeeds). From then on an honest
//     client takes nothing through the slot, so its count only falls, and
//     the give-back that brings it to 0 revokes it and sends RELEASE.
//  2. If the count was 0 already, no give-back will come: the daemon
//     revokes it itself (one compare-and-swap, which only a client writing
//     its page wrongly can make fail: then the slot stays held, as a lease
//     never released would, until the daemon's next look or the
//     connection's end).
// A word that is not plausible() is revoked at once (an atomic OR) and
// reported as a violation.
inline Revoke revoke_slot(LeaseSlot& slot, std::uint32_t tag) {
  using namespace slot_word;
  const std::uint64_t old = slot.word.fetch_or(kWanted, std::memory_order_acq_rel);
  if (!plausible(old, tag)) {
    slot.word.fetch_or(kRevoked, std::memory_order_acq_rel);
    return Revoke::violation;
  }
  if (revoked(old) || count(old) != 0) return Revoke::in_use;
  std::uint64_t w = old | kWanted;
  return slot.word.compare_exchange_strong(w, w | kRevoked, std::memory_order_acq_rel,
                                           std::memory_order_acquire)
             ? Revoke::revoked
             : Revoke::in_use;
}

}  // namespace genomed::layout
