// What the daemon reports about adapters and itself: the results of LOAD,
// UNLOAD, PIN/UNPIN, LIST, STATS and HEALTH, shared by the client library and the wire
// codec (ipc/protocol.h) so there is one definition of each.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace genomed {

struct LoadInfo {
  std::string name;
  std::uint64_t bytes = 0;
  std::uint64_t generation = 0;
  bool was_resident = false;
  // The content digest of the resident copy: 32 lowercase hex digits of
  // XXH3-128 over its config and tensors (docs/protocol.md §8.2); equal for
  // equal content under any name or generation. "" from older daemons.
  std::string digest;
};

struct UnloadInfo {
  std::string name;
  std::string outcome;  // "freed" | "draining" | "cancelled" | "unquarantined"
  std::uint64_t leases = 0;
};

// The result of RELOAD: the generation now served under `name`, and the one
// it replaced (docs/protocol.md, "reload").
struct ReloadInfo {
  std::string name;
  std::uint64_t bytes = 0;       // resident size of the new generation
  std::uint64_t generation = 0;  // the new generation: every acquire from now on gets it
  std::string digest;            // its content digest (as LoadInfo::digest)
  // The generation it replaced; 0 when none was resident (RELOAD loaded it).
  std::uint64_t previous_generation = 0;
  std::string previous_digest;        // "" when none was resident
  std::uint64_t previous_leases = 0;  // leases the old one still has: freed when they end
};

// How urgently a LOAD, ACQUIRE or PIN wants its loads' worker jobs run: the
// loader's job queue serves higher first, in arrival order within one.
enum class Priority : std::uint8_t { low = 0, normal = 1, high = 2 };

// The result of PIN and UNPIN.
struct PinInfo {
  std::string name;
  std::uint64_t bytes = 0;  // resident size
  std::uint64_t generation = 0;
  bool pinned = false;      // now
  bool was_pinned = false;  // before the request (PIN and UNPIN are idempotent)
  std::string digest;       // content digest (as LoadInfo::digest)
};

struct AdapterInfo {
  std::string name;
  std::string state;        // "loading" | "ready" | "draining"
  std::uint64_t bytes = 0;  // resident size (0 while loading)
  std::uint64_t leases = 0;
  std::uint64_t generation = 0;
  bool pinned = false;  // never evicted; UNLOAD refuses it (false from older daemons)
  // Content digest (as LoadInfo::digest); "" while loading.
  std::string digest;
  // Idle unload: ms since it was last used (0 while leased or loading), and
  // ms until it is unloaded for idleness (nullopt: never, e.g. leased,
  // pinned, keep-alive 0 or --idle-unload off).
  std::uint64_t idle_ms = 0;
  std::optional<std::uint64_t> expires_in_ms;
  // While loading: the bytes its fill writes (0 until probed) and those
  // written so far (counted per completed fill part). 0 otherwise, and from
  // older daemons.
  std::uint64_t fill_total = 0;
  std::uint64_t filled = 0;
};

using StatValue = std::variant<std::uint64_t, std::string>;
using Stats = std::vector<std::pair<std::string, StatValue>>;

struct Health {
  bool healthy = false;
  std::string reason;  // "" when healthy; otherwise why not
  // Every loader worker has been on its current job for --saturated-after-ms
  // or longer: cold loads wait (cached adapters are still served). Also makes
  // `healthy` false. A daemon older than this field reports false.
  bool saturated = false;
};

}  // namespace genomed
