#include "client/slot_cache.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace genomed::client_detail {

SlotCache::SlotCache(layout::LeaseSlot* slots, std::uint32_t count)
    : slots_(slots), count_(count) {}

SlotCache::~SlotCache() {
  if (mapping_ != nullptr) ::munmap(mapping_, mapping_bytes_);
}

Result<std::unique_ptr<SlotCache>> SlotCache::map(int fd, std::uint32_t count) {
  const std::size_t bytes = layout::lease_slot_page_bytes(count);
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < 0 || static_cast<std::size_t>(st.st_size) < bytes) {
    return Status(Errc::protocol_error, "the daemon's page of " + std::to_string(count) +
                                            " lease slots is shorter than " +
                                            std::to_string(bytes) + " bytes");
  }
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) {
    return Status(Errc::environment,
                  std::string("cannot map the lease slot page: ") + std::strerror(errno));
  }
  const auto* header = static_cast<const layout::LeaseSlotHeader*>(p);
  if (header->magic != layout::kLeaseSlotMagic || header->version != layout::kLeaseSlotVersion ||
      header->slots != count) {
    ::munmap(p, bytes);
    return Status(Errc::protocol_error,
                  "the daemon's lease slot page has a wrong header (magic, version 1, slots)");
  }
  auto cache = std::make_unique<SlotCache>(
      reinterpret_cast<layout::LeaseSlot*>(static_cast<std::byte*>(p) +
                                           sizeof(layout::LeaseSlotHeader)),
      count);
  cache->mapping_ = p;
  cache->mapping_bytes_ = bytes;
  return cache;
}

std::optional<std::vector<std::pair<std::string, SlotGrant>>> SlotCache::take(
    const std::vector<std::string>& names, std::vector<std::uint64_t>* to_release) {
  std::vector<std::pair<std::string, SlotGrant>> taken;
  taken.reserve(names.size());
  bool all = true;
  {
    MutexLock lock(mu_);
    for (const std::string& name : names) {
      auto it = slot_of_.find(name);
      if (it == slot_of_.end()) {
        all = false;
        break;
      }
      if (!layout::take_slot_lease(slots_[it->second.index], it->second.tag)) {
        slot_of_.erase(it);
        all = false;
        break;
      }
      taken.emplace_back(name, it->second);
    }
  }
  if (all) return taken;
  for (const auto& [name, grant] : taken) {
    if (give_back(grant.index, grant.tag)) to_release->push_back(grant.lease);
  }
  return std::nullopt;
}

void SlotCache::remember(const std::string& name, SlotGrant grant) {
  MutexLock lock(mu_);
  // The daemon granted this index anew: whatever this client remembers of
  // an earlier grant of it is over (its tag could come back one day).
  std::erase_if(slot_of_, [&](const auto& e) { return e.second.index == grant.index; });
  slot_of_.insert_or_assign(name, std::move(grant));
}

bool SlotCache::give_back(std::uint32_t index, std::uint32_t tag) {
  return layout::give_back_slot_lease(slots_[index], tag) != layout::GiveBack::kept;
}

}  // namespace genomed::client_detail
