// The idle unloader: a READY adapter with no lease and no pin that nobody
// has used (LOAD, ACQUIRE, PIN, a lease ending) for its keep-alive (the
// last request's `keep_alive`, else --idle-unload) is unloaded by a thread
// of its own, which sleeps on the clock until the earliest expiry. As redis
// keeps expiry (expire.c) beside eviction (evict.c): the cache evicts for
// room, this unloads for time.
//
// An adapter held only by lease slots expires too, unless a slot was used
// since the last look (its reference bit): then its idle time restarts. At
// the expiry its idle slots are revoked; a busy one is wanted back, and the
// adapter expires with its client's RELEASE.
//
// This part owns the thread, its clock, its schedule and the sweep; the
// coordinator unloads what it finds expired (Hooks::unload).
//
// Threads and locks: one thread, started with the first expiry (the
// coordinator never starts it when nothing can expire), stopped by stop().
// Everything here, and the parts it is given, is under the coordinator's
// mutex `mu` (the coordinator owns it as a member guarded by it; the thread
// takes it to sweep, and sleeps without it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "cache/resident_cache.h"
#include "common/mutex.h"
#include "common/wait_clock.h"
#include "loader/adapter_table.h"
#include "loader/leases.h"

namespace genomed::loader {

using Clock = std::chrono::steady_clock;  // as loader/pool.h

class IdleUnloader {
 public:
  // Called on the thread, under the mutex.
  struct Hooks {
    std::function<void(AdapterTable::iterator)> unload;  // an expired READY entry, unleased
    std::function<void()> check;                         // after each sweep (invariants)
  };

  IdleUnloader(Mutex& mu, WaitClock& clock, std::chrono::milliseconds default_keep_alive,
               AdapterTable& entries, Leases& leases, const cache::ResidentCache& cache,
               Hooks hooks)
      : mu_(mu),
        clock_(clock),
        default_keep_alive_(default_keep_alive),
        entries_(entries),
        leases_(leases),
        cache_(cache),
        hooks_(std::move(hooks)) {}

  // `name` was used now (LOAD, ACQUIRE, PIN, a lease ending), with the
  // request's keep-alive if it gives one: its idle time starts again.
  void mark_used(const std::string& name,
                 std::optional<std::chrono::milliseconds> keep_alive = std::nullopt);
  // When the entry `e` of `name` is unloaded for idleness; nullopt: never
  // (not READY, leased other than by slots, pinned, keep-alive 0).
  std::optional<Clock::time_point> expiry_of(const std::string& name, const AdapterEntry& e) const;

  // When an idle adapter last used at `last_used` expires with its own
  // `keep_alive` (nullopt: the default); nullopt: never.
  std::optional<Clock::time_point> expiry(
      Clock::time_point last_used, std::optional<std::chrono::milliseconds> keep_alive) const;
  // Something expires at `at` now: starts the thread, or wakes it if that
  // is earlier than it sleeps until. Nothing after stop().
  void schedule(Clock::time_point at);
  // No sweep after this; returns the thread, to be joined without the mutex.
  std::thread stop();

 private:
  void run();
  // Unloads every entry whose expiry has passed; returns the next expiry.
  std::optional<Clock::time_point> sweep(Clock::time_point now);

  Mutex& mu_;
  WaitClock& clock_;
  const std::chrono::milliseconds default_keep_alive_;
  AdapterTable& entries_;
  Leases& leases_;
  const cache::ResidentCache& cache_;
  const Hooks hooks_;
  bool stopped_ = false;
  std::thread thread_;
  std::condition_variable cv_;
  // When the thread wakes next (time_point::max(): no expiry known).
  // Invariant: no expiry is scheduled earlier than this without a wake-up.
  Clock::time_point wake_at_ = Clock::time_point::max();
};

}  // namespace genomed::loader
