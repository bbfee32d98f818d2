// The byte-budgeted LRU index of resident adapters. Modelled on leveldb's
// util/cache.cc: two lists, `in_use_` (entries with leases > 0 or pinned,
// never evicted) and `lru_` (unleased, unpinned, evictable, least recently
// used first). An entry moves between them only when it gains its first hold
// (a lease or the pin) or loses its last.
//
// Entries are names; the bytes are copies (shared_copies.h). Names whose
// content is equal stand on one copy (insert_shared): leases, pins and LRU
// places stay each name's own, the budget counts the copy once, and the
// copy's range is freed only when its last name goes. A copy is evicted
// whole or not at all: only once every name on it is in lru_ (none held or
// kept), at the place of its most recently used name, all its names with it.
//
// Not thread-safe: the coordinator owns one and calls it under its mutex.
#pragma once

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cache/range_allocator.h"
#include "cache/shared_copies.h"
#include "common/status.h"

namespace genomed::cache {

class ResidentCache {
 public:
  // `budget` bytes of arena managed in units of `alignment` bytes.
  ResidentCache(std::uint64_t budget, std::uint64_t alignment);
  ~ResidentCache();  // asserts the list invariants

  struct Reservation {
    std::uint64_t offset;
    std::uint64_t length;              // as rounded by the allocator
    std::vector<std::string> evicted;  // entries removed (LRU first) to make room
  };

  // Finds room for `length` bytes, evicting unleased entries in LRU order as
  // needed. Fails with Errc::too_large if length exceeds the budget, and with
  // Errc::no_space if it cannot fit even after evicting every unleased entry
  // (then nothing is evicted). The range stays reserved until insert() or
  // cancel_reservation().
  Result<Reservation> reserve(std::uint64_t length);

  // All or nothing: a range for every length in `lengths`, evicting unleased
  // entries in LRU order except those named in `keep` (what the request
  // asking for the room already wants). Fails as reserve() does, evicting
  // nothing then; too_large also when the kept entries and `lengths`
  // together exceed the budget (the kept ones are never evicted for it). An admission ticket of
  // several loads is served by one call, so a batch never holds part of its room while it waits for
  // the rest.
  struct Range {
    std::uint64_t offset;
    std::uint64_t length;  // as rounded by the allocator
  };
  struct Reservations {
    std::vector<Range> ranges;         // in the order of `lengths`
    std::vector<std::string> evicted;  // entries removed (LRU first) to make room
  };
  // With `may_evict` false it takes free room only (a prefetch): no_space
  // rather than evicting anything.
  Result<Reservations> reserve_all(const std::vector<std::uint64_t>& lengths,
                                   const std::vector<std::string>& keep = {},
                                   bool may_evict = true);
  // REQUIRES: offset came from reserve() and was neither inserted nor cancelled.
  void cancel_reservation(std::uint64_t offset);

  // Makes a reserved range a resident entry, unleased, most recently used:
  // a new copy, with content key `content` ("": never shared).
  // `length` is the adapter's own size (what find() reports); the entry keeps
  // occupying the whole reserved range.
  // REQUIRES: `name` is not resident; offset came from reserve() and was
  // neither inserted nor cancelled since; 0 < length <= the reserved length.
  void insert(const std::string& name, std::uint64_t offset, std::uint64_t length,
              const std::string& content = {});
  // Makes `name` a resident entry (unleased, most recently used) on the live
  // copy whose content key is `content` and whose range fits `length` the
  // way a reservation of it would: an alias, counted once in the budget.
  // False (nothing changed) when there is no such copy.
  // REQUIRES: `name` is not resident; 0 < length.
  bool insert_shared(const std::string& name, const std::string& content, std::uint64_t length);

  // Takes a lease: moves the entry to in_use_ when leases go 0 -> 1.
  // Returns false if `name` is not resident.
  bool lease(const std::string& name);
  // Ends a lease: moves the entry to the most recently used end of lru_ when
  // leases go 1 -> 0. REQUIRES: the entry is resident and leased.
  void release(const std::string& name);
  // Marks `name` most recently used without leasing it.
  void touch(const std::string& name);
  // Moves an unleased, unpinned entry to the least recently used end: the
  // next to be evicted. No-op otherwise.
  void make_least_recent(const std::string& name);
  // Pins or unpins a resident entry: a pinned entry is never evicted (it
  // stays in in_use_ while unleased) and erase() refuses it. Returns the
  // previous state. REQUIRES: `name` is resident.
  bool set_pinned(const std::string& name, bool pinned);
  // Footprint bytes (page-rounded ranges) of the copies a pinned entry
  // stands on, each copy once.
  std::uint64_t bytes_pinned() const { return copies_.bytes_pinned(); }
  std::size_t pinned_count() const { return pinned_count_; }  // pinned entries (names)
  // What pinning the resident `name` adds to bytes_pinned(): its footprint,
  // or 0 if another name on its copy is pinned already.
  std::uint64_t pin_cost(const std::string& name) const;

  // Removes an unleased, unpinned entry and frees its range unless another
  // name stands on its copy. Returns false if absent, leased or pinned.
  bool erase(const std::string& name);
  // The entry `from` goes on under the name `to`, with its range, leases,
  // pin and place in its list (a RELOAD retiring a generation, or
  // publishing one loaded under a hidden name: loader/generations.h).
  // REQUIRES: `from` is resident and `to` is not.
  void rename(const std::string& from, const std::string& to);

  struct EntryView {
    std::uint64_t offset;
    std::uint64_t length;
    std::uint32_t leases;
    bool pinned = false;
    std::uint64_t footprint = 0;  // the range it occupies (length rounded up)
    std::uint32_t names_on_copy = 1;  // it and the names sharing its copy
  };
  std::optional<EntryView> find(const std::string& name) const;
  // Resident names, most recently used first (in_use entries first).
  std::vector<std::string> names() const;

  std::uint64_t budget() const { return allocator_.capacity(); }
  // Bytes of the budget occupied by the copies of inserted entries (their
  // reserved, rounded ranges, each copy once); bytes_resident() +
  // bytes_reserved() is what the allocator holds.
  std::uint64_t bytes_resident() const { return copies_.bytes(); }
  // Copies more than one name stands on, and the bytes that saves.
  std::size_t shared_copies() const { return copies_.shared(); }
  std::uint64_t bytes_shared() const { return copies_.bytes_shared(); }
  std::uint64_t bytes_reserved() const;  // bytes of pending reservations
  std::size_t entry_count() const { return entries_.size(); }
  std::uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::uint64_t offset;  // of its copy (copies_.at(offset))
    std::uint64_t length;
    std::uint64_t footprint;  // its copy's range's rounded length, >= length
    std::uint32_t leases = 0;
    bool pinned = false;
    std::list<std::string>::iterator pos;  // into in_use_ (held()) or lru_ (not held())
    bool held() const { return leases > 0 || pinned; }
  };

  // Removes an unleased entry and frees its range. REQUIRES: resident, unleased.
  void evict(const std::string& name);
  // Takes the unheld entry `e` (`name`) out of lru_ and the table; frees
  // its copy's range if it was the copy's last name.
  void remove_unheld(std::unordered_map<std::string, Entry>::iterator e);
  // The plan of an eviction for `lengths` (which must fit `allocator` once
  // done): the names to evict, LRU first, copy by copy (see the top), never
  // one in `kept`; nullopt if evicting everything allowed does not make room.
  template <typename Kept>
  std::optional<std::vector<std::string>> plan_evictions(
      const std::vector<std::uint64_t>& lengths, const Kept& kept) const;
  // Bytes of the copies every one of whose names is in lru_ and not kept.
  template <typename Kept>
  std::uint64_t freeable_bytes(const Kept& kept) const;
  // Aborts unless every entry is in exactly the list its lease count names
  // and on a live copy, and each copy's counts are its entries'.
  void check_invariants() const;

  RangeAllocator allocator_;
  // Every entry is in exactly one of in_use_ and lru_, and its `pos` points at
  // its own name there; in_use_.size() + lru_.size() == entries_.size().
  std::unordered_map<std::string, Entry> entries_;
  // Entries with leases > 0 or pinned. Never evicted. Least recently held at the front.
  std::list<std::string> in_use_;
  // Entries with leases == 0 and not pinned, least recently used at the front.
  std::list<std::string> lru_;
  // Ranges handed out by reserve() and not yet inserted or cancelled.
  std::unordered_map<std::uint64_t, std::uint64_t> reservations_;  // offset -> length
  // The copies the entries stand on. Invariant: each copy's `names` is the
  // number of entries whose offset is its own, `pinned` of them pinned.
  SharedCopies copies_;
  std::size_t pinned_count_ = 0;
  std::uint64_t evictions_ = 0;
};

}  // namespace genomed::cache
