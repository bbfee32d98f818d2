#include "cache/shared_copies.h"

#include "cache/check.h"

namespace genomed::cache {

void SharedCopies::add(std::uint64_t offset, std::uint64_t footprint, const std::string& content) {
  const bool added = copies_.emplace(offset, Copy{footprint, 1, 0, content}).second;
  GENOMED_CHECK(added, "a copy added over a live one");
  bytes_ += footprint;
  if (!content.empty()) by_content_.emplace(content, offset);  // keeps an indexed one
}

std::optional<std::uint64_t> SharedCopies::find(const std::string& content,
                                                std::uint64_t footprint) const {
  if (content.empty()) return std::nullopt;
  const auto it = by_content_.find(content);
  if (it == by_content_.end() || copies_.at(it->second).footprint != footprint) return std::nullopt;
  return it->second;
}

void SharedCopies::join(std::uint64_t offset) {
  Copy& c = copies_.at(offset);
  GENOMED_CHECK(c.names < UINT32_MAX, "names per copy overflow");
  if (++c.names == 2) ++shared_;
  bytes_shared_ += c.footprint;
}

bool SharedCopies::leave(std::uint64_t offset) {
  const auto it = copies_.find(offset);
  GENOMED_CHECK(it != copies_.end() && it->second.names > it->second.pinned,
                "an unpinned name left a copy it was not on");
  Copy& c = it->second;
  if (--c.names > 0) {
    if (c.names == 1) --shared_;
    bytes_shared_ -= c.footprint;
    return false;
  }
  bytes_ -= c.footprint;
  if (const auto indexed = by_content_.find(c.content);
      indexed != by_content_.end() && indexed->second == offset) {
    by_content_.erase(indexed);
  }
  copies_.erase(it);
  return true;
}

void SharedCopies::set_pinned(std::uint64_t offset, bool pinned) {
  Copy& c = copies_.at(offset);
  if (pinned) {
    GENOMED_CHECK(c.pinned < c.names, "more pins than names on a copy");
    if (c.pinned++ == 0) pinned_bytes_ += c.footprint;
  } else {
    GENOMED_CHECK(c.pinned > 0, "an unpin of a copy with no pin");
    if (--c.pinned == 0) pinned_bytes_ -= c.footprint;
  }
}

void SharedCopies::check_invariants() const {
  std::uint64_t bytes = 0, pinned = 0, saved = 0;
  std::size_t shared = 0;
  for (const auto& [offset, c] : copies_) {
    GENOMED_CHECK(c.names >= 1 && c.pinned <= c.names, "a copy's counts are impossible");
    bytes += c.footprint;
    pinned += c.pinned > 0 ? c.footprint : 0;
    shared += c.names > 1 ? 1 : 0;
    saved += (c.names - 1) * c.footprint;
  }
  GENOMED_CHECK(bytes == bytes_ && pinned == pinned_bytes_, "copy byte totals drifted");
  GENOMED_CHECK(shared == shared_ && saved == bytes_shared_, "shared copy totals drifted");
  for (const auto& [content, offset] : by_content_) {
    const auto it = copies_.find(offset);
    GENOMED_CHECK(it != copies_.end() && it->second.content == content,
                  "the content index names a copy that is gone or holds other content");
  }
}

}  // namespace genomed::cache
