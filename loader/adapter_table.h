// The adapters the supervisor knows: every name LOADING, READY or DRAINING,
// with its generation.
//
//   ABSENT -> LOADING -> READY -> (DRAINING ->) ABSENT
//
// - LOADING: a flight (flight.h) loads it; nothing of it is in the cache.
// - READY: in the cache; it may be leased, pinned, evicted, unloaded.
// - DRAINING: unloaded while leased: no new lease; freed with the last one.
// Offsets, sizes and lease counts are the cache's alone: an entry keeps its
// state, its generation (a late result of a cancelled load can never
// overwrite a newer entry of the same name), and when it was last used.
//
// Threads and locks: not thread-safe; the coordinator owns it as a member
// guarded by its mutex.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "cache/resident_cache.h"
#include "layout/content_digest.h"
#include "loader/flight.h"

namespace genomed::loader {

enum class AdapterState { loading, ready, draining };
const char* state_name(AdapterState s);

struct AdapterEntry {
  AdapterState state = AdapterState::loading;
  std::uint64_t generation = 0;
  // Invariant: set (and running) exactly while LOADING.
  std::shared_ptr<Flight> flight;
  // Idle unload: when a request or a lease last used it (meaningful once
  // READY), and its own keep-alive (nullopt: --idle-unload).
  Clock::time_point last_used{};
  std::optional<std::chrono::milliseconds> keep_alive;
  // What the generation holds (layout/content_digest.h); set once READY.
  layout::ContentDigest digest;
};

class AdapterTable {
 public:
  using Map = std::map<std::string, AdapterEntry>;  // sorted: LIST pages in name order
  using iterator = Map::iterator;

  // A new LOADING entry of `name` for `flight`, with the next generation
  // (replacing any entry of that name).
  void start_loading(const std::string& name, const std::shared_ptr<Flight>& flight);

  iterator find(const std::string& name) { return entries_.find(name); }
  Map::const_iterator find(const std::string& name) const { return entries_.find(name); }
  AdapterEntry& at(const std::string& name) { return entries_.at(name); }
  const AdapterEntry& at(const std::string& name) const { return entries_.at(name); }
  iterator erase(iterator it) { return entries_.erase(it); }
  // The entry `from` goes on as `to` (loader/generations.h). REQUIRES:
  // `from` exists and `to` does not.
  iterator rename(const std::string& from, const std::string& to);
  iterator begin() { return entries_.begin(); }
  iterator end() { return entries_.end(); }
  Map::const_iterator begin() const { return entries_.begin(); }
  Map::const_iterator end() const { return entries_.end(); }
  // The first entry named after `name`.
  Map::const_iterator after(const std::string& name) const { return entries_.upper_bound(name); }
  std::size_t size() const { return entries_.size(); }
  std::size_t loading() const;

  // Aborts unless exactly the READY and DRAINING entries are in `cache`,
  // and exactly the LOADING ones have a flight, a running one.
  void check_invariants(const cache::ResidentCache& cache) const;

 private:
  Map entries_;
  std::uint64_t next_generation_ = 1;  // generations are never reused
};

}  // namespace genomed::loader
