// Properties of the first-fit range allocator: alignment, placement,
// coalescing, exhaustion, and agreement with a byte-map model under random use.
#include "cache/range_allocator.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

namespace genomed::cache {
namespace {

TEST(RangeAllocator, AllocatesAligned) {
  RangeAllocator a(4096, 64);
  auto x = a.allocate(1);
  auto y = a.allocate(65);
  auto z = a.allocate(64);
  ASSERT_TRUE(x && y && z);
  EXPECT_EQ(*x % 64, 0u);
  EXPECT_EQ(*y % 64, 0u);
  EXPECT_EQ(*z % 64, 0u);
  EXPECT_EQ(*y, 64u);
  EXPECT_EQ(*z, 192u);
  EXPECT_EQ(a.bytes_allocated(), 64u + 128u + 64u);
  EXPECT_EQ(a.rounded(1), 64u);
  EXPECT_EQ(a.rounded(64), 64u);
  EXPECT_EQ(a.rounded(65), 128u);
}

TEST(RangeAllocator, FirstFit) {
  RangeAllocator a(1024, 64);
  auto r0 = a.allocate(128);  // [0,128)
  auto r1 = a.allocate(64);   // [128,192)
  auto r2 = a.allocate(256);  // [192,448)
  auto r3 = a.allocate(64);   // [448,512)
  ASSERT_TRUE(r0 && r1 && r2 && r3);
  a.free(*r0);  // hole of 128 at 0
  a.free(*r2);  // hole of 256 at 192
  // Fits the first hole although the later, larger one would fit too.
  EXPECT_EQ(a.allocate(64), 0u);
  // Too big for what is left of the first hole: goes to the second.
  EXPECT_EQ(a.allocate(128), 192u);
  EXPECT_EQ(a.allocate(64), 64u);
}

TEST(RangeAllocator, CoalescesOnFreeWithPreviousRange) {
  RangeAllocator a(256, 64);
  auto r0 = a.allocate(64), r1 = a.allocate(64), r2 = a.allocate(64), r3 = a.allocate(64);
  ASSERT_TRUE(r0 && r1 && r2 && r3);
  a.free(*r0);
  a.free(*r1);  // joins [0,64) on its left
  EXPECT_EQ(a.largest_free_range(), 128u);
  EXPECT_EQ(a.allocate(128), 0u);
}

TEST(RangeAllocator, CoalescesOnFreeWithNextRange) {
  RangeAllocator a(256, 64);
  auto r0 = a.allocate(64), r1 = a.allocate(64), r2 = a.allocate(64), r3 = a.allocate(64);
  ASSERT_TRUE(r0 && r1 && r2 && r3);
  a.free(*r2);
  a.free(*r1);  // joins [128,192) on its right
  EXPECT_EQ(a.largest_free_range(), 128u);
  EXPECT_EQ(a.allocate(128), 64u);
}

TEST(RangeAllocator, CoalescesOnFreeWithBothSides) {
  RangeAllocator a(256, 64);
  auto r0 = a.allocate(64), r1 = a.allocate(64), r2 = a.allocate(64), r3 = a.allocate(64);
  ASSERT_TRUE(r0 && r1 && r2 && r3);
  a.free(*r0);
  a.free(*r2);
  EXPECT_EQ(a.largest_free_range(), 64u);
  a.free(*r1);  // bridges [0,64) and [128,192)
  EXPECT_EQ(a.largest_free_range(), 192u);
  a.free(*r3);
  EXPECT_EQ(a.largest_free_range(), 256u);
  EXPECT_EQ(a.allocate(256), 0u);
}

TEST(RangeAllocator, ExhaustionReturnsNullopt) {
  RangeAllocator a(256, 64);
  ASSERT_TRUE(a.allocate(200));  // takes 256
  EXPECT_FALSE(a.allocate(1));
  RangeAllocator b(256, 64);
  EXPECT_FALSE(b.allocate(257));
  EXPECT_FALSE(b.allocate(UINT64_MAX));  // must not overflow while rounding
  EXPECT_EQ(b.bytes_allocated(), 0u);
  EXPECT_EQ(b.allocation_count(), 0u);
}

TEST(RangeAllocator, ZeroCapacityAllocatesNothing) {
  RangeAllocator a(0, 64);
  EXPECT_FALSE(a.allocate(1));
  EXPECT_EQ(a.largest_free_range(), 0u);
}

TEST(RangeAllocator, ReusesFreedRange) {
  RangeAllocator a(256, 64);
  auto r0 = a.allocate(64), r1 = a.allocate(64);
  ASSERT_TRUE(r0 && r1);
  a.free(*r0);
  EXPECT_EQ(a.allocation_count(), 1u);
  EXPECT_EQ(a.allocate(10), *r0);
  EXPECT_EQ(a.bytes_allocated(), 128u);
}

TEST(RangeAllocatorDeathTest, DoubleFreeAborts) {
  RangeAllocator a(256, 64);
  auto r0 = a.allocate(64);
  ASSERT_TRUE(r0);
  a.free(*r0);
  EXPECT_DEATH(a.free(*r0), "not allocated");
}

TEST(RangeAllocatorDeathTest, FreeOfUnknownOffsetAborts) {
  RangeAllocator a(256, 64);
  ASSERT_TRUE(a.allocate(128));
  EXPECT_DEATH(a.free(64), "not allocated");  // inside a range, not its start
}

// Random allocate/free against a map of owned bytes: ranges never overlap,
// stay aligned and in bounds, the byte count matches, and an allocation fails
// only when no free run of the rounded size exists in the model.
TEST(RangeAllocator, RandomizedAgainstModel) {
  constexpr std::uint64_t kUnit = 16, kUnits = 256;
  std::mt19937_64 rng(12345);
  RangeAllocator a(kUnit * kUnits, kUnit);
  std::vector<int> owner(kUnits, -1);                           // unit -> allocation id
  std::map<std::uint64_t, std::pair<int, std::uint64_t>> live;  // offset -> (id, units)
  int next_id = 0;
  int exhausted = 0;
  for (int step = 0; step < 20000; ++step) {
    if (live.empty() || rng() % 100 < 55) {
      const std::uint64_t length = 1 + rng() % (kUnit * 24);
      const std::uint64_t units = (length + kUnit - 1) / kUnit;
      auto got = a.allocate(length);
      // The model's first fit: lowest start of `units` free units in a row.
      std::optional<std::uint64_t> expected;
      std::uint64_t run = 0;
      for (std::uint64_t u = 0; u < kUnits; ++u) {
        run = owner[u] == -1 ? run + 1 : 0;
        if (run == units) {
          expected = (u + 1 - units) * kUnit;
          break;
        }
      }
      ASSERT_EQ(got, expected) << "step " << step;
      if (!got) {
        ++exhausted;
        continue;
      }
      ASSERT_EQ(*got % kUnit, 0u);
      for (std::uint64_t u = *got / kUnit; u < *got / kUnit + units; ++u) {
        ASSERT_EQ(owner[u], -1) << "overlap at step " << step;
        owner[u] = next_id;
      }
      live[*got] = {next_id++, units};
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      a.free(it->first);
      for (std::uint64_t u = it->first / kUnit; u < it->first / kUnit + it->second.second; ++u) {
        owner[u] = -1;
      }
      live.erase(it);
    }
    std::uint64_t used = 0, largest = 0, run = 0;
    for (std::uint64_t u = 0; u < kUnits; ++u) {
      used += owner[u] != -1;
      run = owner[u] == -1 ? run + 1 : 0;
      largest = std::max(largest, run);
    }
    ASSERT_EQ(a.bytes_allocated(), used * kUnit);
    ASSERT_EQ(a.largest_free_range(), largest * kUnit);
    ASSERT_EQ(a.allocation_count(), live.size());
  }
  EXPECT_GT(exhausted, 100);  // the run reached the hard case: fragmented and full
}

}  // namespace
}  // namespace genomed::cache
