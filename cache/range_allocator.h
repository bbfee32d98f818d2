// First-fit allocator of byte ranges within the arena. Its bookkeeping lives in
// the supervisor's private memory only: no worker or client can corrupt it.
// Not thread-safe: the coordinator calls it under its own mutex.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace genomed::cache {

class RangeAllocator {
 public:
  // REQUIRES: alignment is a power of two; capacity is a multiple of it.
  RangeAllocator(std::uint64_t capacity, std::uint64_t alignment);

  // Returns the offset of a free range of at least `length` bytes (rounded up
  // to the alignment), or nullopt if no free range is large enough.
  // REQUIRES: length > 0.
  std::optional<std::uint64_t> allocate(std::uint64_t length);

  // REQUIRES: offset was returned by allocate() and not freed since.
  void free(std::uint64_t offset);

  std::uint64_t capacity() const { return capacity_; }
  std::uint64_t alignment() const { return alignment_; }
  std::uint64_t bytes_allocated() const { return allocated_bytes_; }
  std::uint64_t largest_free_range() const;
  std::size_t allocation_count() const { return used_.size(); }
  // The rounded size a request of `length` bytes occupies.
  std::uint64_t rounded(std::uint64_t length) const;

 private:
  std::uint64_t capacity_;
  std::uint64_t alignment_;
  std::uint64_t allocated_bytes_ = 0;
  std::map<std::uint64_t, std::uint64_t> free_;  // offset -> length; adjacent ranges coalesced
  std::map<std::uint64_t, std::uint64_t> used_;  // offset -> length
};

}  // namespace genomed::cache
