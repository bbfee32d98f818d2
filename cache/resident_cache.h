// The byte-budgeted LRU index of resident adapters. Modelled on leveldb's
// util/cache.cc: two lists, `in_use_` (entries with leases > 0 or pinned,
// never evicted) and `lru_` (unleased, unpinned, evictable, least recently
// used first). An entry moves between them only when it gains its first hold
// (a lease or the pin) or loses its last.
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

  // Makes a reserved range a resident entry, unleased, most recently used.
  // `length` is the adapter's own size (what find() reports); the entry keeps
  // occupying the whole reserved range.
  // REQUIRES: `name` is not resident; offset came from reserve() and was
  // neither inserted nor cancelled since; 0 < length <= the reserved length.
  void insert(const std::string& name, std::uint64_t offset, std::uint64_t length);

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
  // Footprint bytes (page-rounded ranges) of the pinned entries.
  std::uint64_t bytes_pinned() const { return pinned_bytes_; }
  std::size_t pinned_count() const { return pinned_count_; }

  // Removes an unleased, unpinned entry and frees its range. Returns false
  // if absent, leased or pinned.
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
  };
  std::optional<EntryView> find(const std::string& name) const;
  // Resident names, most recently used first (in_use entries first).
  std::vector<std::string> names() const;

  std::uint64_t budget() const { return allocator_.capacity(); }
  // Bytes of the budget occupied by inserted entries (their reserved, rounded
  // ranges); bytes_resident() + bytes_reserved() is what the allocator holds.
  std::uint64_t bytes_resident() const { return resident_bytes_; }
  std::uint64_t bytes_reserved() const;  // bytes of pending reservations
  std::size_t entry_count() const { return entries_.size(); }
  std::uint64_t evictions() const { return evictions_; }

 private:
  struct Entry {
    std::uint64_t offset;
    std::uint64_t length;
    std::uint64_t footprint;  // the reserved range's rounded length, >= length
    std::uint32_t leases = 0;
    bool pinned = false;
    std::list<std::string>::iterator pos;  // into in_use_ (held()) or lru_ (not held())
    bool held() const { return leases > 0 || pinned; }
  };

  // Removes an unleased entry and frees its range. REQUIRES: resident, unleased.
  void evict(const std::string& name);
  // Aborts unless every entry is in exactly the list its lease count names.
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
  std::uint64_t resident_bytes_ = 0;
  std::uint64_t pinned_bytes_ = 0;  // footprints of the pinned entries
  std::size_t pinned_count_ = 0;
  std::uint64_t evictions_ = 0;
};

}  // namespace genomed::cache
