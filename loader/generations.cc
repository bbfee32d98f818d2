#include "loader/generations.h"

#include "cache/check.h"
#include "common/safe_text.h"
#include "loader/client_log.h"

namespace genomed::loader {

namespace {
constexpr char kHidden = '\0';  // validate_name refuses NUL in a name
}  // namespace

std::string next_key(const std::string& name) { return name + kHidden + "next"; }

std::string retired_key(const std::string& name, std::uint64_t generation) {
  return name + kHidden + std::to_string(generation);
}

bool is_hidden_key(std::string_view key) { return key.find(kHidden) != std::string_view::npos; }

Result<ipc::ReloadReply> Generations::swap(const std::string& name) {
  const std::string next = next_key(name);
  auto fresh = entries_.find(next);
  GENOMED_CHECK(fresh != entries_.end() && fresh->second.state == AdapterState::ready,
                "a swap of a generation that is not READY");
  ipc::ReloadReply reply;
  reply.name = name;
  bool pinned = false;
  std::optional<std::chrono::milliseconds> keep_alive;
  auto old = entries_.find(name);
  if (old != entries_.end() && old->second.state != AdapterState::ready) {
    return Status(Errc::cancelled,
                  old->second.state == AdapterState::draining
                      ? "adapter " + quote(name) + " was unloaded while it reloaded"
                      : "adapter " + quote(name) +
                            " was evicted while it reloaded and is loading again (from its "
                            "current files)");
  }
  if (old != entries_.end()) {
    reply.previous_generation = old->second.generation;
    reply.previous_digest = old->second.digest.hex();
    keep_alive = old->second.keep_alive;  // the name's, as its pin
    // Pins are the name's: the new generation takes it (below).
    pinned = pins_.unpin(name);
    // No new lease through a slot on the old generation: idle slots end
    // now, busy ones are wanted back (their clients ACQUIRE the new one).
    if (leases_.has_slots(name)) leases_.revoke(name);
    old = entries_.find(name);  // an ended slot lease may have freed it
  }
  if (old != entries_.end()) {
    if (cache_.find(name)->leases == 0) {
      hooks_.erase_resident(old);
    } else {
      const std::string retired = retired_key(name, reply.previous_generation);
      cache_.rename(name, retired);
      leases_.rename(name, retired);
      entries_.rename(name, retired)->second.state = AdapterState::draining;
      reply.previous_leases = leases_.held(retired);
    }
  }
  cache_.rename(next, name);
  leases_.rename(next, name);
  AdapterEntry& now = entries_.rename(next, name)->second;
  now.keep_alive = keep_alive;
  reply.generation = now.generation;
  reply.digest = now.digest.hex();
  reply.bytes = cache_.find(name)->length;
  if (pinned) {
    if (auto kept = pins_.pin(name); !kept.ok()) {
      client_log().warn("reload of {}: generation {} is not pinned: {}", quote(name),
                        reply.generation, printable(kept.status().message()));
    }
  }
  client_log().info("reload of {}: generation {} ({}) serves now; generation {} {}", quote(name),
                    reply.generation, reply.digest, reply.previous_generation,
                    reply.previous_leases > 0
                        ? "drains: " + std::to_string(reply.previous_leases) + " lease(s) held"
                        : std::string("freed"));
  return reply;
}

void Generations::discard(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.state != AdapterState::ready) return;
  if (cache_.find(key)->leases == 0)
    hooks_.erase_resident(it);
  else
    it->second.state = AdapterState::draining;
}

}  // namespace genomed::loader
