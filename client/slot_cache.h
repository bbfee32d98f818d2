// The client side of lease slots (layout/lease_slot.h): the page the daemon
// passed with its HELLO reply and which adapter holds which slot of it.
//
// After the first ACQUIRE of an adapter over the socket grants it a slot,
// further leases on it are taken and given back with one compare-and-swap
// each on the slot's word, with no message, until the daemon wants the slot
// back. This class only counts: sending the RELEASE a give-back may call for
// is its caller's (it returns the lease ids to release), so it runs against
// a page in ordinary memory as well as the daemon's.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "client/header_cache.h"
#include "common/mutex.h"
#include "genomed/result.h"
#include "layout/lease_slot.h"

namespace genomed::client_detail {

// What one slot holds: the grant the daemon made of it.
struct SlotGrant {
  std::uint32_t index = 0;
  std::uint32_t tag = 0;
  std::uint64_t lease = 0;  // the daemon's lease id that holds the slot
  std::uint64_t generation = 0;
  std::shared_ptr<const ParsedAdapter> adapter;
};

class SlotCache {
 public:
  // Over `count` slots at `slots`, which the caller keeps mapped (tests: a
  // page in ordinary memory).
  SlotCache(layout::LeaseSlot* slots, std::uint32_t count);
  ~SlotCache();
  SlotCache(const SlotCache&) = delete;
  SlotCache& operator=(const SlotCache&) = delete;

  // Maps the daemon's page of `count` slots read-write from `fd` (which the
  // caller still closes), after checking that the descriptor holds the page
  // it announces (a short one would fault on access) and its header.
  // Errc::protocol_error for a wrong page, Errc::environment if mmap fails.
  static Result<std::unique_ptr<SlotCache>> map(int fd, std::uint32_t count);

  std::uint32_t count() const { return count_; }

  // Takes a lease on every name through its slot, or none (nullopt: ask the
  // daemon). A slot that refuses (wanted, revoked, granted again) is
  // forgotten: the daemon's reply to the ACQUIRE says what holds now. The
  // leases already taken are given back; the ids of those whose give-back
  // calls for a RELEASE are appended to `to_release`.
  std::optional<std::vector<std::pair<std::string, SlotGrant>>> take(
      const std::vector<std::string>& names, std::vector<std::uint64_t>* to_release)
      EXCLUDES(mu_);

  // Records a slot the daemon granted with an ACQUIRE (replacing any
  // earlier grant for that adapter, which the daemon has ended).
  // REQUIRES: grant.index < count().
  void remember(const std::string& name, SlotGrant grant) EXCLUDES(mu_);

  // Gives back one lease taken through slot `index` granted with `tag`:
  // true if the caller must now send RELEASE of the slot's lease id (the
  // daemon wanted the slot back and this was its last lease, or the slot
  // is not as this client left it).
  bool give_back(std::uint32_t index, std::uint32_t tag);

 private:
  layout::LeaseSlot* const slots_;  // constant; count_ of them
  const std::uint32_t count_;
  void* mapping_ = nullptr;  // map()'s read-write mapping of the page (null: not ours)
  std::size_t mapping_bytes_ = 0;

  Mutex mu_;
  // Adapter name -> the grant of the slot it holds; no two share an index.
  std::unordered_map<std::string, SlotGrant> slot_of_ GUARDED_BY(mu_);
};

}  // namespace genomed::client_detail
