// Resident copies and how many names hold each (issue 23, "identical bytes
// once"). A copy is one range of the arena holding one adapter's bytes;
// every resident entry of the cache stands on exactly one copy. Two names
// whose content is equal (the same content key: the loader's content
// digest) stand on one copy: the second name is an alias, and the budget
// counts the copy's range once. The range is freed only when the last name
// on it goes (ResidentCache decides when a name goes: leases, pins, LRU).
//
// Copies are keyed by their offset (live ranges never overlap). The content
// index maps a content key to the copy a new name with that content joins;
// a copy with an empty key is never joined.
//
// Not thread-safe: the ResidentCache that owns it is used under its owner's
// mutex.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace genomed::cache {

class SharedCopies {
 public:
  struct Copy {
    std::uint64_t footprint = 0;  // the range's rounded length: what the budget counts once
    std::uint32_t names = 0;      // resident entries standing on it; >= 1 while it lives
    std::uint32_t pinned = 0;     // of those, the pinned ones (<= names)
    std::string content;          // its content key ("": none, never joined)
  };

  // A new copy at `offset`, held by one (unpinned) name. REQUIRES: no copy at
  // `offset`.
  void add(std::uint64_t offset, std::uint64_t footprint, const std::string& content);
  // The offset of the copy a name with `content` and `footprint` may join;
  // nullopt if none (or `content` is empty).
  std::optional<std::uint64_t> find(const std::string& content, std::uint64_t footprint) const;
  // One more name stands on the copy at `offset`. REQUIRES: it lives.
  void join(std::uint64_t offset);
  // One name (unpinned) leaves the copy at `offset`; true if it was the
  // last: the copy is gone and the caller frees its range.
  bool leave(std::uint64_t offset);
  // A name on the copy at `offset` is pinned (`pinned`) or unpinned.
  void set_pinned(std::uint64_t offset, bool pinned);

  const Copy& at(std::uint64_t offset) const { return copies_.at(offset); }
  const std::unordered_map<std::uint64_t, Copy>& all() const { return copies_; }
  std::size_t size() const { return copies_.size(); }
  // Bytes of the budget the copies hold, each once.
  std::uint64_t bytes() const { return bytes_; }
  // Bytes of the copies at least one of whose names is pinned, each once.
  std::uint64_t bytes_pinned() const { return pinned_bytes_; }
  // Copies more than one name stands on, and the bytes the budget would
  // hold more if each of their names had a copy of its own.
  std::size_t shared() const { return shared_; }
  std::uint64_t bytes_shared() const { return bytes_shared_; }

  // Aborts unless the totals and the content index agree with the copies.
  void check_invariants() const;

 private:
  std::unordered_map<std::uint64_t, Copy> copies_;  // by offset
  // content -> the offset of a live copy with that content and key. A copy
  // whose content is already indexed (never made by the loader: it joins)
  // is not indexed itself.
  std::unordered_map<std::string, std::uint64_t> by_content_;
  std::uint64_t bytes_ = 0;
  std::uint64_t pinned_bytes_ = 0;
  std::size_t shared_ = 0;
  std::uint64_t bytes_shared_ = 0;
};

}  // namespace genomed::cache
