// The LRU index over the arena: which adapter occupies which range, which may
// be evicted, and in what order. Eviction walks only lru_, so an entry with a
// lease can never lose its memory (the serving systems' worst bug, vllm #14497).
#include "cache/resident_cache.h"

#include <algorithm>
#include <iterator>
#include <unordered_set>
#include <utility>

#include "cache/check.h"
#include "common/size_parse.h"

namespace genomed::cache {

ResidentCache::ResidentCache(std::uint64_t budget, std::uint64_t alignment)
    : allocator_(budget, alignment) {}

ResidentCache::~ResidentCache() { check_invariants(); }

void ResidentCache::check_invariants() const {
  GENOMED_CHECK(in_use_.size() + lru_.size() == entries_.size(),
                "an entry is missing from both lists or is in both");
  std::size_t pinned_count = 0;
  for (auto it = in_use_.begin(); it != in_use_.end(); ++it) {
    auto e = entries_.find(*it);
    GENOMED_CHECK(e != entries_.end(), "in_use_ names an absent entry");
    GENOMED_CHECK(e->second.held(), "an in_use_ entry has no lease and no pin");
    GENOMED_CHECK(e->second.pos == it, "an in_use_ entry's position is stale");
    pinned_count += e->second.pinned ? 1 : 0;
  }
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    auto e = entries_.find(*it);
    GENOMED_CHECK(e != entries_.end(), "lru_ names an absent entry");
    GENOMED_CHECK(!e->second.held(), "an lru_ entry is leased or pinned");
    GENOMED_CHECK(e->second.pos == it, "an lru_ entry's position is stale");
  }
  GENOMED_CHECK(pinned_count == pinned_count_, "pinned entry count drifted");
  // Every entry stands on a live copy, and each copy's counts are its entries'.
  std::unordered_map<std::uint64_t, std::pair<std::uint32_t, std::uint32_t>> on;  // names, pinned
  for (const auto& [name, e] : entries_) {
    const auto copy = copies_.all().find(e.offset);
    GENOMED_CHECK(copy != copies_.all().end(), "an entry stands on no live copy");
    GENOMED_CHECK(copy->second.footprint == e.footprint, "an entry's footprint is not its copy's");
    ++on[e.offset].first;
    on[e.offset].second += e.pinned ? 1 : 0;
  }
  GENOMED_CHECK(on.size() == copies_.size(), "a copy no entry stands on");
  for (const auto& [offset, counts] : on) {
    const SharedCopies::Copy& c = copies_.at(offset);
    GENOMED_CHECK(c.names == counts.first && c.pinned == counts.second,
                  "a copy's name or pin count is not its entries'");
  }
  copies_.check_invariants();
  GENOMED_CHECK(copies_.bytes() + bytes_reserved() == allocator_.bytes_allocated(),
                "allocator and cache disagree on bytes in use");
}

Result<ResidentCache::Reservation> ResidentCache::reserve(std::uint64_t length) {
  GENOMED_ASSIGN_OR_RETURN(Reservations all, reserve_all({length}));
  return Reservation{all.ranges[0].offset, all.ranges[0].length, std::move(all.evicted)};
}

namespace {

// True when every length finds a range in `allocator` (tried on a copy).
bool all_fit(RangeAllocator allocator, const std::vector<std::uint64_t>& lengths) {
  for (std::uint64_t length : lengths) {
    if (!allocator.allocate(length)) return false;
  }
  return true;
}

}  // namespace

Result<ResidentCache::Reservations> ResidentCache::reserve_all(
    const std::vector<std::uint64_t>& lengths, const std::vector<std::string>& keep,
    bool may_evict) {
  std::uint64_t total = 0;  // as the allocator rounds them
  std::uint64_t asked = 0;  // as asked, for messages
  for (std::uint64_t length : lengths) {
    if (length == 0) return Result<Reservations>(Errc::bad_request, "cannot reserve zero bytes");
    total += allocator_.rounded(length);
    asked += length;
  }
  // What `keep` names stays resident while this is served: it can never be
  // evicted to make this room, so it counts against the budget too. Without
  // it a request could wait (at the head of a FIFO) for room that can never
  // exist.
  std::uint64_t kept_bytes = 0;
  std::unordered_set<std::uint64_t> kept_copies;  // two kept names may share one
  for (const std::string& name : keep) {
    if (auto e = entries_.find(name); e != entries_.end() && kept_copies.insert(e->second.offset).second)
      kept_bytes += e->second.footprint;
  }
  if (total > budget() || kept_bytes > budget() - total) {
    const bool several = lengths.size() > 1 || kept_bytes > 0;
    return Result<Reservations>(
        Errc::too_large,
        std::string(several ? "together the adapters need " : "the adapter needs ") +
            format_size(asked + kept_bytes) + " (" + std::to_string(asked + kept_bytes) +
            " bytes) but the whole budget is " + format_size(budget()) + " (" +
            std::to_string(budget()) + " bytes): raise --budget");
  }

  // Decide on a copy before touching anything: if evicting every unleased
  // entry would still not make room (leases, reservations or `keep` pin the
  // space, or fragment it), evicting some would destroy cached adapters for
  // nothing. Fragmentation is why this asks the allocator after each
  // eviction instead of comparing byte totals.
  const auto kept = [&](const std::string& name) {
    return std::find(keep.begin(), keep.end(), name) != keep.end();
  };
  std::vector<std::string> victims;
  bool fits = all_fit(allocator_, lengths);
  if (!fits && !may_evict) {
    return Result<Reservations>(Errc::no_space,
                                "the free room of the budget (" +
                                    format_size(budget() - allocator_.bytes_allocated()) +
                                    ", maybe fragmented) does not hold " + format_size(total) +
                                    " and nothing may be evicted for it");
  }
  if (!fits) {
    if (auto plan = plan_evictions(lengths, kept)) {
      victims = std::move(*plan);
      fits = true;
    }
  }
  if (!fits) {
    // Held: the copies of leased or pinned entries (in_use_), and of
    // unleased ones the same request wants (`keep`).
    const std::uint64_t held = bytes_resident() - freeable_bytes(kept);
    const std::uint64_t freeable = budget() - held - bytes_reserved();
    // Two sizes that print alike ("2.0 MiB" and "2.0 MiB") get their bytes.
    const bool alike = format_size(total) == format_size(freeable);
    const auto exact = [&](std::uint64_t v) {
      return format_size(v) + (alike ? " (" + std::to_string(v) + " bytes)" : "");
    };
    std::string why =
        std::string(lengths.size() > 1 ? "together the adapters need " : "the adapter needs ") +
        exact(total) + " but only " + exact(freeable) + " of the " + format_size(budget()) +
        " budget can be freed: " + format_size(held) + " is held by " +
        std::to_string(in_use_.size()) + " adapter(s) in use (leased or pinned" +
        (pinned_count_ == 0 ? "" : "; " + format_size(bytes_pinned()) + " pinned by " +
                                       std::to_string(pinned_count_) + " of them") +
        ")" + (keep.empty() ? "" : " or wanted by the same request") + " and " +
        format_size(bytes_reserved()) + " is reserved by " + std::to_string(reservations_.size()) +
        " load(s) in flight";
    if (freeable >= total) {
      why += "; the room that could be freed is split into ranges too small for it "
             "(fragmentation): retry when leases end";
    }
    return Result<Reservations>(Errc::no_space, why);
  }

  Reservations r;
  for (const std::string& name : victims) {
    evict(name);
    r.evicted.push_back(name);
  }
  for (std::uint64_t length : lengths) {
    auto offset = allocator_.allocate(length);
    GENOMED_CHECK(offset.has_value(), "the eviction plan did not make room");
    const std::uint64_t rounded = allocator_.rounded(length);
    reservations_.emplace(*offset, rounded);
    r.ranges.push_back(Range{*offset, rounded});
  }
  return r;
}

template <typename Kept>
std::optional<std::vector<std::string>> ResidentCache::plan_evictions(
    const std::vector<std::uint64_t>& lengths, const Kept& kept) const {
  // A copy frees its range only with its last name: walking lru_ from the
  // least recently used, a copy is freed when the walk has passed every one
  // of its names (so at the place of its most recently used one), and its
  // names are evicted then, together. A copy with a held or kept name never
  // completes: its names stay.
  RangeAllocator trial = allocator_;
  std::vector<std::string> victims;
  std::unordered_map<std::uint64_t, std::vector<std::string>> passed;  // copy -> its names so far
  for (const std::string& name : lru_) {
    if (kept(name)) continue;
    const std::uint64_t offset = entries_.at(name).offset;
    auto& names = passed[offset];
    names.push_back(name);
    if (names.size() < copies_.at(offset).names) continue;
    trial.free(offset);
    victims.insert(victims.end(), names.begin(), names.end());
    if (all_fit(trial, lengths)) return victims;
  }
  return std::nullopt;
}

template <typename Kept>
std::uint64_t ResidentCache::freeable_bytes(const Kept& kept) const {
  std::unordered_map<std::uint64_t, std::uint32_t> passed;
  std::uint64_t bytes = 0;
  for (const std::string& name : lru_) {
    if (kept(name)) continue;
    const std::uint64_t offset = entries_.at(name).offset;
    if (++passed[offset] == copies_.at(offset).names) bytes += copies_.at(offset).footprint;
  }
  return bytes;
}

void ResidentCache::evict(const std::string& name) {
  auto e = entries_.find(name);
  GENOMED_CHECK(e != entries_.end() && e->second.leases == 0, "eviction of a leased entry");
  remove_unheld(e);
  ++evictions_;
}

void ResidentCache::remove_unheld(std::unordered_map<std::string, Entry>::iterator e) {
  GENOMED_CHECK(!e->second.held(), "removal of a leased or pinned entry");
  lru_.erase(e->second.pos);
  if (copies_.leave(e->second.offset)) allocator_.free(e->second.offset);
  entries_.erase(e);
}

void ResidentCache::cancel_reservation(std::uint64_t offset) {
  auto it = reservations_.find(offset);
  GENOMED_CHECK(it != reservations_.end(), "cancel of an unknown reservation");
  reservations_.erase(it);
  allocator_.free(offset);
}

void ResidentCache::insert(const std::string& name, std::uint64_t offset, std::uint64_t length,
                           const std::string& content) {
  auto res = reservations_.find(offset);
  GENOMED_CHECK(res != reservations_.end(), "insert at an offset that is not reserved");
  GENOMED_CHECK(length > 0 && length <= res->second, "length does not fit its reservation");
  GENOMED_CHECK(!entries_.contains(name), "insert of a resident name");
  const std::uint64_t footprint = res->second;
  reservations_.erase(res);
  auto pos = lru_.insert(lru_.end(), name);
  entries_.emplace(name, Entry{offset, length, footprint, 0, false, pos});
  copies_.add(offset, footprint, content);
}

bool ResidentCache::insert_shared(const std::string& name, const std::string& content,
                                  std::uint64_t length) {
  GENOMED_CHECK(length > 0 && !entries_.contains(name), "insert_shared of a resident name");
  const std::uint64_t footprint = allocator_.rounded(length);
  const auto offset = copies_.find(content, footprint);
  if (!offset) return false;
  auto pos = lru_.insert(lru_.end(), name);
  entries_.emplace(name, Entry{*offset, length, footprint, 0, false, pos});
  copies_.join(*offset);
  return true;
}

bool ResidentCache::lease(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return false;
  Entry& e = it->second;
  GENOMED_CHECK(e.leases < UINT32_MAX, "lease count overflow");
  if (e.leases++ == 0 && !e.pinned) in_use_.splice(in_use_.end(), lru_, e.pos);
  return true;
}

void ResidentCache::release(const std::string& name) {
  auto it = entries_.find(name);
  GENOMED_CHECK(it != entries_.end(), "release of an absent entry");
  Entry& e = it->second;
  GENOMED_CHECK(e.leases > 0, "release of an unleased entry");
  if (--e.leases == 0 && !e.pinned) lru_.splice(lru_.end(), in_use_, e.pos);
}

bool ResidentCache::set_pinned(const std::string& name, bool pinned) {
  auto it = entries_.find(name);
  GENOMED_CHECK(it != entries_.end(), "pin of an absent entry");
  Entry& e = it->second;
  const bool was = e.pinned;
  if (was == pinned) return was;
  const bool was_held = e.held();
  e.pinned = pinned;
  copies_.set_pinned(e.offset, pinned);
  pinned_count_ = pinned ? pinned_count_ + 1 : pinned_count_ - 1;
  if (was_held != e.held()) {
    if (e.held())
      in_use_.splice(in_use_.end(), lru_, e.pos);
    else
      lru_.splice(lru_.end(), in_use_, e.pos);  // unpinned: evictable, most recently used
  }
  return was;
}

void ResidentCache::touch(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.held()) return;
  lru_.splice(lru_.end(), lru_, it->second.pos);
}

void ResidentCache::make_least_recent(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.held()) return;
  lru_.splice(lru_.begin(), lru_, it->second.pos);
}

bool ResidentCache::erase(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.held()) return false;
  remove_unheld(it);
  return true;
}

std::uint64_t ResidentCache::pin_cost(const std::string& name) const {
  const Entry& e = entries_.at(name);
  return e.pinned || copies_.at(e.offset).pinned > 0 ? 0 : e.footprint;
}

void ResidentCache::rename(const std::string& from, const std::string& to) {
  auto node = entries_.extract(from);
  GENOMED_CHECK(!node.empty(), "rename of an adapter that is not resident");
  GENOMED_CHECK(!entries_.contains(to), "rename onto a resident adapter");
  *node.mapped().pos = to;  // its place in in_use_ or lru_ keeps its order
  node.key() = to;
  entries_.insert(std::move(node));
  check_invariants();
}

std::optional<ResidentCache::EntryView> ResidentCache::find(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return std::nullopt;
  return EntryView{it->second.offset, it->second.length, it->second.leases, it->second.pinned,
                   it->second.footprint, copies_.at(it->second.offset).names};
}

std::vector<std::string> ResidentCache::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  out.insert(out.end(), in_use_.rbegin(), in_use_.rend());
  out.insert(out.end(), lru_.rbegin(), lru_.rend());
  return out;
}

std::uint64_t ResidentCache::bytes_reserved() const {
  std::uint64_t total = 0;
  for (const auto& [offset, length] : reservations_) total += length;
  return total;
}

}  // namespace genomed::cache
