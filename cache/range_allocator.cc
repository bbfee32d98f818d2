// First fit over an ordered map of free ranges. First fit keeps low offsets
// busy and leaves the large tail free, which suits a few large, long-lived
// allocations; the free map is coalesced eagerly so it never holds two
// adjacent ranges.
#include "cache/range_allocator.h"

#include <iterator>

#include "cache/check.h"

namespace genomed::cache {

RangeAllocator::RangeAllocator(std::uint64_t capacity, std::uint64_t alignment)
    : capacity_(capacity), alignment_(alignment) {
  GENOMED_CHECK(alignment != 0 && (alignment & (alignment - 1)) == 0,
                "alignment must be a power of two");
  GENOMED_CHECK(capacity % alignment == 0, "capacity must be a multiple of the alignment");
  if (capacity > 0) free_.emplace(0, capacity);
}

std::uint64_t RangeAllocator::rounded(std::uint64_t length) const {
  GENOMED_CHECK(length <= UINT64_MAX - (alignment_ - 1), "length overflows when rounded");
  return (length + alignment_ - 1) & ~(alignment_ - 1);
}

std::optional<std::uint64_t> RangeAllocator::allocate(std::uint64_t length) {
  GENOMED_CHECK(length > 0, "allocate() of zero bytes");
  if (length > capacity_) return std::nullopt;  // also keeps rounded() from overflowing
  const std::uint64_t need = rounded(length);
  for (auto it = free_.begin(); it != free_.end(); ++it) {
    if (it->second < need) continue;
    const std::uint64_t offset = it->first;
    const std::uint64_t rest = it->second - need;
    free_.erase(it);
    if (rest > 0) free_.emplace(offset + need, rest);
    used_.emplace(offset, need);
    allocated_bytes_ += need;
    return offset;
  }
  return std::nullopt;
}

void RangeAllocator::free(std::uint64_t offset) {
  auto used = used_.find(offset);
  GENOMED_CHECK(used != used_.end(), "free() of an offset that is not allocated");
  std::uint64_t begin = offset;
  std::uint64_t length = used->second;
  used_.erase(used);
  allocated_bytes_ -= length;

  auto next = free_.lower_bound(begin);
  if (next != free_.begin()) {
    auto prev = std::prev(next);
    GENOMED_CHECK(prev->first + prev->second <= begin, "freed range overlaps a free range");
    if (prev->first + prev->second == begin) {
      begin = prev->first;
      length += prev->second;
      free_.erase(prev);
    }
  }
  if (next != free_.end()) {
    GENOMED_CHECK(begin + length <= next->first, "freed range overlaps a free range");
    if (begin + length == next->first) {
      length += next->second;
      free_.erase(next);
    }
  }
  free_.emplace(begin, length);
}

std::uint64_t RangeAllocator::largest_free_range() const {
  std::uint64_t largest = 0;
  for (const auto& [offset, length] : free_) {
    if (length > largest) largest = length;
  }
  return largest;
}

}  // namespace genomed::cache
