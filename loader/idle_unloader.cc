#include "loader/idle_unloader.h"

#include <string>
#include <vector>

#include "common/safe_text.h"
#include "loader/client_log.h"

namespace genomed::loader {

std::optional<Clock::time_point> IdleUnloader::expiry(
    Clock::time_point last_used, std::optional<std::chrono::milliseconds> keep_alive) const {
  const auto k = keep_alive.value_or(default_keep_alive_);
  if (k.count() <= 0) return std::nullopt;
  return last_used + k;
}

void IdleUnloader::mark_used(const std::string& name,
                             std::optional<std::chrono::milliseconds> keep_alive) {
  const auto it = entries_.find(name);
  if (it == entries_.end()) return;
  it->second.last_used = clock_.now();
  if (keep_alive) it->second.keep_alive = *keep_alive;
  if (const auto at = expiry_of(name, it->second)) schedule(*at);
}

std::optional<Clock::time_point> IdleUnloader::expiry_of(const std::string& name,
                                                         const AdapterEntry& e) const {
  if (e.state != AdapterState::ready) return std::nullopt;
  const auto view = cache_.find(name);
  // Slot leases alone do not: the client may not use them any more (the
  // expiry looks at their uses, sweep()).
  if (!view || leases_.ordinary(name) > 0 || view->pinned) return std::nullopt;
  return expiry(e.last_used, e.keep_alive);
}

std::optional<Clock::time_point> IdleUnloader::sweep(Clock::time_point now) {
  // Names first: erasing one settles the admission queue, which may erase
  // other entries (evictions) under a live iterator.
  std::vector<std::string> expired;
  for (const auto& [name, e] : entries_) {
    if (const auto expiry = expiry_of(name, e); expiry && *expiry <= now) expired.push_back(name);
  }
  for (const auto& name : expired) {
    auto it = entries_.find(name);
    if (it == entries_.end()) continue;
    const auto expiry = expiry_of(name, it->second);
    if (!expiry || *expiry > now) continue;
    const auto idle_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - it->second.last_used);
    if (leases_.has_slots(name)) {
      if (leases_.slot_used_since_last_look(name)) {  // used through a slot: not idle
        mark_used(name);
        continue;
      }
      const auto last_used = it->second.last_used;
      leases_.revoke(name);  // ending a lease marks it used now: not what happened
      it = entries_.find(name);
      if (it == entries_.end()) continue;  // evicted for a waiting request meanwhile
      if (cache_.find(name)->leases > 0) {
        // Busy: wanted now, it ends with its client's RELEASE (which marks
        // it used then). Until then its expiry is not due again.
        it->second.last_used = now;
        continue;
      }
      it->second.last_used = last_used;
    }
    hooks_.unload(it);
    client_log().info("unloaded {}: unused for {} ms (its keep-alive)", quote(name),
                      idle_ms.count());
  }
  std::optional<Clock::time_point> next;
  for (const auto& [name, e] : entries_) {
    if (const auto expiry = expiry_of(name, e); expiry && (!next || *expiry < *next))
      next = expiry;
  }
  return next;
}

void IdleUnloader::schedule(Clock::time_point at) {
  if (stopped_) return;
  if (!thread_.joinable()) {
    thread_ = std::thread([this] { run(); });
  } else if (at < wake_at_) {
    cv_.notify_all();
  }
}

std::thread IdleUnloader::stop() {
  stopped_ = true;
  cv_.notify_all();
  return std::exchange(thread_, {});
}

void IdleUnloader::run() {
  MutexLock lock(mu_);
  while (!stopped_) {
    const auto now = clock_.now();
    const auto next = sweep(now);
    hooks_.check();
    wake_at_ = next.value_or(Clock::time_point::max());
    // With nothing to expire it still looks once an hour (a bound, not a
    // schedule: schedule() wakes it for any earlier expiry).
    clock_.wait_until(cv_, lock.native(), next.value_or(now + std::chrono::hours(1)));
  }
}

}  // namespace genomed::loader
