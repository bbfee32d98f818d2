// The LRU index over the arena: which adapter occupies which range, which may
// be evicted, and in what order. Eviction walks only lru_, so an entry with a
// lease can never lose its memory (the serving systems' worst bug, vllm #14497).
#include "cache/resident_cache.h"

#include <iterator>
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
  std::uint64_t resident = 0;
  for (auto it = in_use_.begin(); it != in_use_.end(); ++it) {
    auto e = entries_.find(*it);
    GENOMED_CHECK(e != entries_.end(), "in_use_ names an absent entry");
    GENOMED_CHECK(e->second.leases > 0, "an in_use_ entry has no lease");
    GENOMED_CHECK(e->second.pos == it, "an in_use_ entry's position is stale");
    resident += e->second.footprint;
  }
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    auto e = entries_.find(*it);
    GENOMED_CHECK(e != entries_.end(), "lru_ names an absent entry");
    GENOMED_CHECK(e->second.leases == 0, "an lru_ entry is leased");
    GENOMED_CHECK(e->second.pos == it, "an lru_ entry's position is stale");
    resident += e->second.footprint;
  }
  GENOMED_CHECK(resident == resident_bytes_, "resident byte count drifted");
  GENOMED_CHECK(resident + bytes_reserved() == allocator_.bytes_allocated(),
                "allocator and cache disagree on bytes in use");
}

Result<ResidentCache::Reservation> ResidentCache::reserve(std::uint64_t length) {
  if (length == 0) return Result<Reservation>(Errc::bad_request, "cannot reserve zero bytes");
  if (length > budget()) {
    return Result<Reservation>(Errc::too_large,
                               "the adapter needs " + format_size(length) + " (" +
                                   std::to_string(length) + " bytes) but the whole budget is " +
                                   format_size(budget()) + " (" + std::to_string(budget()) +
                                   " bytes): raise --budget");
  }
  Reservation r{0, allocator_.rounded(length), {}};

  if (auto offset = allocator_.allocate(length)) {
    r.offset = *offset;
    reservations_.emplace(r.offset, r.length);
    return r;
  }

  // Decide on a copy before touching anything: if evicting every unleased
  // entry would still not make room (leases or reservations pin the space, or
  // fragment it), evicting some would destroy cached adapters for nothing.
  // Fragmentation is why this asks the allocator after each eviction instead
  // of comparing byte totals.
  RangeAllocator trial = allocator_;
  std::size_t needed = 0;
  bool fits = false;
  for (const std::string& name : lru_) {
    trial.free(entries_.at(name).offset);
    ++needed;
    if (trial.allocate(length)) {
      fits = true;
      break;
    }
  }
  if (!fits) {
    const std::uint64_t leased = resident_bytes_ - [&] {
      std::uint64_t unleased = 0;
      for (const std::string& name : lru_) unleased += entries_.at(name).footprint;
      return unleased;
    }();
    return Result<Reservation>(
        Errc::no_space, "the adapter needs " + format_size(r.length) + " but only " +
                            format_size(budget() - leased - bytes_reserved()) + " of the " +
                            format_size(budget()) + " budget can be freed: " + format_size(leased) +
                            " is leased by " + std::to_string(in_use_.size()) +
                            " adapter(s) in use and " + format_size(bytes_reserved()) +
                            " is reserved by " + std::to_string(reservations_.size()) +
                            " load(s) in flight");
  }

  for (std::size_t i = 0; i < needed; ++i) r.evicted.push_back(evict_lru_front());
  auto offset = allocator_.allocate(length);
  GENOMED_CHECK(offset.has_value(), "the eviction plan did not make room");
  r.offset = *offset;
  reservations_.emplace(r.offset, r.length);
  return r;
}

std::string ResidentCache::evict_lru_front() {
  GENOMED_CHECK(!lru_.empty(), "nothing to evict");
  std::string name = std::move(lru_.front());
  lru_.pop_front();
  auto e = entries_.find(name);
  allocator_.free(e->second.offset);
  resident_bytes_ -= e->second.footprint;
  entries_.erase(e);
  ++evictions_;
  return name;
}

void ResidentCache::cancel_reservation(std::uint64_t offset) {
  auto it = reservations_.find(offset);
  GENOMED_CHECK(it != reservations_.end(), "cancel of an unknown reservation");
  reservations_.erase(it);
  allocator_.free(offset);
}

void ResidentCache::insert(const std::string& name, std::uint64_t offset, std::uint64_t length) {
  auto res = reservations_.find(offset);
  GENOMED_CHECK(res != reservations_.end(), "insert at an offset that is not reserved");
  GENOMED_CHECK(length > 0 && length <= res->second, "length does not fit its reservation");
  GENOMED_CHECK(!entries_.contains(name), "insert of a resident name");
  const std::uint64_t footprint = res->second;
  reservations_.erase(res);
  auto pos = lru_.insert(lru_.end(), name);
  entries_.emplace(name, Entry{offset, length, footprint, 0, pos});
  resident_bytes_ += footprint;
}

bool ResidentCache::lease(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return false;
  Entry& e = it->second;
  GENOMED_CHECK(e.leases < UINT32_MAX, "lease count overflow");
  if (e.leases++ == 0) in_use_.splice(in_use_.end(), lru_, e.pos);
  return true;
}

void ResidentCache::release(const std::string& name) {
  auto it = entries_.find(name);
  GENOMED_CHECK(it != entries_.end(), "release of an absent entry");
  Entry& e = it->second;
  GENOMED_CHECK(e.leases > 0, "release of an unleased entry");
  if (--e.leases == 0) lru_.splice(lru_.end(), in_use_, e.pos);
}

void ResidentCache::touch(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.leases > 0) return;
  lru_.splice(lru_.end(), lru_, it->second.pos);
}

bool ResidentCache::erase(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.leases > 0) return false;
  lru_.erase(it->second.pos);
  allocator_.free(it->second.offset);
  resident_bytes_ -= it->second.footprint;
  entries_.erase(it);
  return true;
}

std::optional<ResidentCache::EntryView> ResidentCache::find(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) return std::nullopt;
  return EntryView{it->second.offset, it->second.length, it->second.leases};
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
