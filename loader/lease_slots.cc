#include "loader/lease_slots.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

#include "cache/check.h"

namespace genomed::loader {

// ---- LeaseSlotPage --------------------------------------------------------------

Result<std::shared_ptr<LeaseSlotPage>> LeaseSlotPage::create(std::uint32_t slots) {
  const auto fail = [](const char* what) {
    return Status(Errc::environment,
                  std::string("lease slots: ") + what + ": " + std::strerror(errno));
  };
  const std::size_t bytes = layout::lease_slot_page_bytes(slots);
  const int fd = ::memfd_create("genomed-lease-slots", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return fail("memfd_create");
  if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0 ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0) {
    Status s = fail("sizing and sealing the page");
    ::close(fd);
    return s;
  }
  void* map = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    Status s = fail("mmap");
    ::close(fd);
    return s;
  }
  auto* header = static_cast<layout::LeaseSlotHeader*>(map);
  header->magic = layout::kLeaseSlotMagic;
  header->version = layout::kLeaseSlotVersion;
  header->slots = slots;
  auto* first = reinterpret_cast<layout::LeaseSlot*>(header + 1);
  for (std::uint32_t i = 0; i < slots; ++i) {
    auto* s = new (first + i) layout::LeaseSlot;
    s->word.store(layout::slot_word::kRevoked, std::memory_order_relaxed);  // not granted
    s->uses.store(0, std::memory_order_relaxed);
  }
  return std::shared_ptr<LeaseSlotPage>(new LeaseSlotPage(fd, map, bytes, slots));
}

LeaseSlotPage::~LeaseSlotPage() {
  ::munmap(map_, bytes_);
  close_fd();
}

void LeaseSlotPage::close_fd() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

std::uint32_t LeaseSlotPage::next_tag() {
  const std::uint32_t tag = next_tag_;
  next_tag_ = next_tag_ >= layout::slot_word::kTagMask ? 1 : next_tag_ + 1;
  return tag;
}

layout::LeaseSlot& LeaseSlotPage::slot(std::uint32_t index) {
  GENOMED_CHECK(index < slots_, "lease slot index out of range");
  auto* first = reinterpret_cast<layout::LeaseSlot*>(static_cast<layout::LeaseSlotHeader*>(map_) + 1);
  return first[index];
}

// ---- SlotLeases -----------------------------------------------------------------

std::optional<SlotGrant> SlotLeases::attach(LeaseId id, const std::string& name,
                                            ConnectionId conn,
                                            const std::shared_ptr<LeaseSlotPage>& page) {
  if (leases_.contains(id)) return std::nullopt;
  auto [pit, fresh] = pages_.try_emplace(page.get());
  PageState& ps = pit->second;
  if (fresh) {
    ps.free.reserve(page->slots());
    for (std::uint32_t i = page->slots(); i > 0; --i) ps.free.push_back(i - 1);
  }
  if (ps.free.empty() || ps.by_name.contains(name)) {
    if (ps.by_name.empty()) pages_.erase(pit);
    return std::nullopt;
  }
  SlotGrant grant{ps.free.back(), page->next_tag()};
  ps.free.pop_back();
  layout::LeaseSlot& slot = page->slot(grant.index);
  slot.uses.store(0, std::memory_order_relaxed);
  slot.word.store(layout::slot_word::granted(grant.tag), std::memory_order_release);
  ps.by_name.emplace(name, id);
  by_name_[name].push_back(id);
  leases_.emplace(id, Held{name, conn, page, grant, 0, 0, 0});
  return grant;
}

namespace {

// More than any client can take through one slot (2^40: a million a second
// for twelve days): a larger `uses` is a client writing its page, and is
// cut here so that no sum of them overflows.
constexpr std::uint64_t kMaxUses = 1ull << 40;

std::uint64_t saturating_add(std::uint64_t a, std::uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

}  // namespace

std::uint64_t SlotLeases::uses_of(const Held& h) const {
  const std::uint64_t read = h.page->slot(h.grant.index).uses.load(std::memory_order_relaxed);
  h.uses_high = std::max(h.uses_high, std::min(read, kMaxUses));
  return h.uses_high;
}

void SlotLeases::free_slot(std::unordered_map<LeaseId, Held>::iterator it) {
  Held& h = it->second;
  layout::LeaseSlot& slot = h.page->slot(h.grant.index);
  // Whatever the client does with it from now on counts for nothing.
  slot.word.fetch_or(layout::slot_word::kRevoked, std::memory_order_acq_rel);
  ended_uses_ = saturating_add(ended_uses_, uses_of(h));
  auto pit = pages_.find(h.page.get());
  GENOMED_CHECK(pit != pages_.end(), "a slot lease of an unknown page");
  pit->second.by_name.erase(h.name);
  pit->second.free.push_back(h.grant.index);
  if (pit->second.by_name.empty()) pages_.erase(pit);
  auto nit = by_name_.find(h.name);
  GENOMED_CHECK(nit != by_name_.end(), "a slot lease missing from its adapter's index");
  std::erase(nit->second, it->first);
  if (nit->second.empty()) by_name_.erase(nit);
  leases_.erase(it);
}

void SlotLeases::detach(LeaseId id) {
  auto it = leases_.find(id);
  if (it != leases_.end()) free_slot(it);
}

std::vector<std::pair<LeaseId, std::string>> SlotLeases::revoke(const std::string* name) {
  std::vector<LeaseId> candidates;
  if (name != nullptr) {
    if (auto nit = by_name_.find(*name); nit != by_name_.end()) candidates = nit->second;
  } else {
    candidates.reserve(leases_.size());
    for (const auto& [id, held] : leases_) candidates.push_back(id);
  }
  return revoke_each(candidates);
}

std::vector<std::pair<LeaseId, std::string>> SlotLeases::revoke_each(
    const std::vector<LeaseId>& ids) {
  std::vector<std::pair<LeaseId, std::string>> revoked;
  for (LeaseId id : ids) {
    const Held& h = leases_.at(id);
    switch (layout::revoke_slot(h.page->slot(h.grant.index), h.grant.tag)) {
      case layout::Revoke::violation:
        note_violation(h);
        [[fallthrough]];
      case layout::Revoke::revoked:
        revoked.emplace_back(id, h.name);
        break;
      case layout::Revoke::in_use:
        break;
    }
  }
  return revoked;
}

bool SlotLeases::used_since_last_look(const std::string& name) {
  bool used = false;
  if (auto nit = by_name_.find(name); nit != by_name_.end()) {
    for (LeaseId id : nit->second) {
      Held& h = leases_.at(id);
      const std::uint64_t now = uses_of(h);
      used = used || now != h.uses_seen;
      h.uses_seen = now;
    }
  }
  return used;
}

std::vector<std::string> SlotLeases::used_names() {
  std::vector<std::string> names;
  for (const auto& [name, ids] : by_name_) {
    if (used_since_last_look(name)) names.push_back(name);
  }
  return names;
}

void SlotLeases::rename(const std::string& from, const std::string& to) {
  auto named = by_name_.extract(from);
  if (named.empty()) return;
  GENOMED_CHECK(!by_name_.contains(to), "slots renamed onto an adapter with slots");
  for (const LeaseId id : named.mapped()) {
    Held& h = leases_.at(id);
    h.name = to;
    auto page = pages_.find(h.page.get());
    GENOMED_CHECK(page != pages_.end(), "a slot lease of an untracked page");
    auto slot = page->second.by_name.extract(from);
    GENOMED_CHECK(!slot.empty(), "a slot lease missing from its page's index");
    slot.key() = to;
    page->second.by_name.insert(std::move(slot));
  }
  named.key() = to;
  by_name_.insert(std::move(named));
}

std::size_t SlotLeases::count(const std::string& name) const {
  const auto nit = by_name_.find(name);
  return nit == by_name_.end() ? 0 : nit->second.size();
}

void SlotLeases::note_violation(const Held& h) const {
  if (h.violated) return;
  h.violated = true;
  ++violations_;
}

std::uint64_t SlotLeases::held_through(const Held& h) const {
  const std::uint64_t w = h.page->slot(h.grant.index).word.load(std::memory_order_acquire);
  const auto held = layout::read_held(w, h.grant.tag);
  if (!held) note_violation(h);
  return held.value_or(0);
}

std::uint64_t SlotLeases::held(const std::string& name) const {
  std::uint64_t total = 0;
  if (const auto nit = by_name_.find(name); nit != by_name_.end()) {
    for (LeaseId id : nit->second) total += held_through(leases_.at(id));
  }
  return total;
}

std::uint64_t SlotLeases::held_total() const {
  std::uint64_t total = 0;
  for (const auto& [id, h] : leases_) total += held_through(h);
  return total;
}

bool SlotLeases::busy(ConnectionId conn) const {
  return std::any_of(leases_.begin(), leases_.end(), [&](const auto& l) {
    return l.second.conn == conn && held_through(l.second) > 0;
  });
}

bool SlotLeases::used_by_since_last_look(ConnectionId conn) {
  bool used = false;
  for (auto& [id, h] : leases_) {
    if (h.conn != conn) continue;
    const std::uint64_t now = uses_of(h);
    used = used || now != h.conn_uses_seen;
    h.conn_uses_seen = now;
  }
  return used;
}

std::vector<std::pair<LeaseId, std::string>> SlotLeases::revoke_of(ConnectionId conn) {
  std::vector<LeaseId> candidates;
  for (const auto& [id, h] : leases_) {
    if (h.conn == conn) candidates.push_back(id);
  }
  return revoke_each(candidates);
}

std::uint64_t SlotLeases::uses() const {
  std::uint64_t total = ended_uses_;
  for (const auto& [id, h] : leases_) total = saturating_add(total, uses_of(h));
  return total;
}

void SlotLeases::check_invariants(const LeaseTable& table) const {
  std::size_t indexed = 0;
  for (const auto& [name, ids] : by_name_) {
    GENOMED_CHECK(!ids.empty(), "an empty per-adapter slot index");
    for (LeaseId id : ids) {
      const auto it = leases_.find(id);
      GENOMED_CHECK(it != leases_.end() && it->second.name == name,
                    "the per-adapter slot index names a lease it does not hold");
    }
    indexed += ids.size();
  }
  GENOMED_CHECK(indexed == leases_.size(), "slot leases missing from the per-adapter index");
  std::size_t by_page = 0;
  for (const auto& [page, ps] : pages_) {
    GENOMED_CHECK(!ps.by_name.empty(), "a page with no slot granted is still tracked");
    by_page += ps.by_name.size();
  }
  GENOMED_CHECK(by_page == leases_.size(), "slot leases missing from their page's index");
  for (const auto& [id, h] : leases_) {
    GENOMED_CHECK(table.contains(id), "a slot holds a lease that has ended");
  }
}

}  // namespace genomed::loader
