// The idle unloader: a READY adapter with no lease and no pin that nobody
// has used (LOAD, ACQUIRE, PIN, a lease ending) for its keep-alive (the
// last request's `keep_alive`, else --idle-unload) is unloaded by a thread
// of its own, which sleeps on the clock until the earliest expiry. As redis
// keeps expiry (expire.c) beside eviction (evict.c): the cache evicts for
// room, this unloads for time.
//
// This part owns the thread, its clock and its schedule; the coordinator's
// sweep decides what has expired (the adapters and their lease slots are
// its state) and unloads it.
//
// Threads and locks: one thread, started with the first expiry (the
// coordinator never starts it when nothing can expire), stopped by stop().
// Everything here is under the coordinator's mutex `mu` (the coordinator
// owns it as a member guarded by it; the thread takes it to sweep, and
// sleeps without it).
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <optional>
#include <thread>
#include <utility>

#include "common/mutex.h"
#include "common/wait_clock.h"

namespace genomed::loader {

using Clock = std::chrono::steady_clock;  // as loader/pool.h

class IdleUnloader {
 public:
  // Unloads what expired by `now`; returns the next expiry (nullopt: none).
  // Called on the thread, under the mutex.
  using Sweep = std::function<std::optional<Clock::time_point>(Clock::time_point now)>;

  IdleUnloader(Mutex& mu, WaitClock& clock, std::chrono::milliseconds default_keep_alive,
               Sweep sweep)
      : mu_(mu), clock_(clock), default_keep_alive_(default_keep_alive), sweep_(std::move(sweep)) {}

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

  Mutex& mu_;
  WaitClock& clock_;
  const std::chrono::milliseconds default_keep_alive_;
  const Sweep sweep_;
  bool stopped_ = false;
  std::thread thread_;
  std::condition_variable cv_;
  // When the thread wakes next (time_point::max(): no expiry known).
  // Invariant: no expiry is scheduled earlier than this without a wake-up.
  Clock::time_point wake_at_ = Clock::time_point::max();
};

}  // namespace genomed::loader
