// The pin policy: PIN makes a resident adapter unevictable, and UNLOAD
// refuses it (`pinned`), until UNPIN. Pins are the daemon's, not a
// connection's: they outlive the client that set them. Pinned bytes
// (page-rounded footprints) together stay within the pin budget
// (--pin-budget, at most the whole budget): a PIN that would pass it is
// pin_budget_exceeded, and the adapter stays resident, unpinned.
//
// The cache keeps which adapters are pinned and their bytes (it must not
// evict them); this part decides what may be pinned.
//
// Threads and locks: not thread-safe; the coordinator owns it as a member
// guarded by its mutex.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "cache/resident_cache.h"
#include "common/status.h"

namespace genomed::loader {

class PinPolicy {
 public:
  // `pin_budget` 0: the whole arena.
  PinPolicy(cache::ResidentCache& cache, std::uint64_t pin_budget, std::uint64_t arena_size)
      : cache_(cache),
        budget_(pin_budget == 0 ? arena_size : std::min(pin_budget, arena_size)) {}

  // Pins the resident `name`; true if it was pinned already (a no-op).
  Result<bool> pin(const std::string& name);
  // Unpins the resident `name`; true if it was pinned.
  bool unpin(const std::string& name);

  std::uint64_t budget() const { return budget_; }

  // Aborts unless the pinned bytes are within the budget.
  void check_invariants() const;

 private:
  cache::ResidentCache& cache_;
  // Invariant: cache_.bytes_pinned() <= budget_.
  const std::uint64_t budget_;
};

}  // namespace genomed::loader
