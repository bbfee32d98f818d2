// Shared copies in the LRU index (cache/shared_copies.h): names whose content
// key is equal stand on one copy, which the budget counts once; a name
// leaving frees nothing while another stands on the copy; a copy is evicted
// whole, only when none of its names is held or kept, at the place of its
// most recently used name; pins count a copy once.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cache/resident_cache.h"

namespace genomed::cache {
namespace {

using Names = std::vector<std::string>;

// Reserves and inserts `name` as a new copy of `content`.
void Put(ResidentCache& cache, const std::string& name, std::uint64_t length,
         const std::string& content) {
  auto r = cache.reserve(length);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  cache.insert(name, r->offset, length, content);
}

TEST(SharedCopies, AnAliasStandsOnTheSameRangeAndIsCountedOnce) {
  ResidentCache cache(1024, 64);
  Put(cache, "a", 100, "x");
  ASSERT_TRUE(cache.insert_shared("b", "x", 100));
  const auto a = cache.find("a");
  const auto b = cache.find("b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(b->offset, a->offset);
  EXPECT_EQ(b->length, 100u);
  EXPECT_EQ(b->footprint, 128u);
  EXPECT_EQ(a->names_on_copy, 2u);
  EXPECT_EQ(cache.bytes_resident(), 128u);
  EXPECT_EQ(cache.shared_copies(), 1u);
  EXPECT_EQ(cache.bytes_shared(), 128u);
  EXPECT_EQ(cache.entry_count(), 2u);
}

TEST(SharedCopies, NoAliasForOtherContentAnotherSizeOrNoContent) {
  ResidentCache cache(1024, 64);
  Put(cache, "a", 100, "x");
  Put(cache, "n", 100, "");
  EXPECT_FALSE(cache.insert_shared("b", "y", 100));
  EXPECT_FALSE(cache.insert_shared("b", "x", 200));  // another footprint
  EXPECT_FALSE(cache.insert_shared("b", "", 100));   // no content key: never shared
  EXPECT_FALSE(cache.find("b"));
  EXPECT_EQ(cache.bytes_resident(), 256u);
  EXPECT_EQ(cache.shared_copies(), 0u);
}

TEST(SharedCopies, TheBytesStayUntilTheLastNameGoes) {
  ResidentCache cache(128, 64);
  Put(cache, "a", 128, "x");
  ASSERT_TRUE(cache.insert_shared("b", "x", 128));
  ASSERT_TRUE(cache.lease("b"));
  EXPECT_TRUE(cache.erase("a"));
  EXPECT_EQ(cache.bytes_resident(), 128u) << "b still stands on the copy";
  EXPECT_EQ(cache.shared_copies(), 0u);
  EXPECT_FALSE(cache.reserve(64).ok()) << "the range is not free";
  EXPECT_FALSE(cache.erase("b")) << "leased";
  cache.release("b");
  EXPECT_TRUE(cache.erase("b"));
  EXPECT_EQ(cache.bytes_resident(), 0u);
  auto r = cache.reserve(128);
  ASSERT_TRUE(r.ok()) << "the last name freed the range";
  cache.cancel_reservation(r->offset);
}

TEST(SharedCopies, ALeaseOfEitherNameKeepsTheCopyFromEviction) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 128, "x");  // least recently used
  Put(cache, "c", 128, "y");
  ASSERT_TRUE(cache.insert_shared("b", "x", 128));
  ASSERT_TRUE(cache.lease("b"));
  auto r = cache.reserve(128);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->evicted, Names{"c"}) << "a alone frees nothing while b is leased";
  EXPECT_TRUE(cache.find("a"));
  cache.cancel_reservation(r->offset);
  EXPECT_FALSE(cache.reserve(256).ok()) << "nothing evicted for a room b holds";
  EXPECT_TRUE(cache.find("a"));
  cache.release("b");
}

TEST(SharedCopies, ACopyIsEvictedWholeAtThePlaceOfItsMostRecentName) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 128, "x");  // least recently used name of copy x
  Put(cache, "c", 128, "y");
  ASSERT_TRUE(cache.insert_shared("b", "x", 128));  // most recently used: x is newer than y
  auto r = cache.reserve(128);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->evicted, Names{"c"});
  cache.cancel_reservation(r->offset);
  Put(cache, "c", 128, "y");  // now the most recently used
  r = cache.reserve(128);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->evicted, (Names{"a", "b"})) << "both names of copy x, together";
  EXPECT_EQ(cache.evictions(), 3u);
  EXPECT_EQ(cache.bytes_resident(), 128u);
  cache.cancel_reservation(r->offset);
}

TEST(SharedCopies, AKeptNameKeepsItsCopyAndCountsItOnce) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 128, "x");
  ASSERT_TRUE(cache.insert_shared("b", "x", 128));
  // Both kept: one copy of 128 against the budget, so 128 more fits.
  auto r = cache.reserve_all({128}, {"a", "b"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  cache.cancel_reservation(r->ranges[0].offset);
  // One name kept: its copy is not evicted for the other's sake.
  auto full = cache.reserve_all({256}, {"b"});
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), Errc::too_large);
  auto over = cache.reserve_all({192}, {"b"});
  ASSERT_FALSE(over.ok());
  EXPECT_TRUE(cache.find("a") && cache.find("b"));
}

TEST(SharedCopies, NoSpaceCountsASharedCopyOnceAsHeld) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 128, "x");
  ASSERT_TRUE(cache.insert_shared("b", "x", 128));
  ASSERT_TRUE(cache.lease("a"));
  auto r = cache.reserve(192);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Errc::no_space);
  EXPECT_NE(r.status().message().find("only 128 B"), std::string::npos) << r.status().message();
  EXPECT_TRUE(cache.find("b")) << "evicting b would free nothing";
  cache.release("a");
}

TEST(SharedCopies, PinsCountACopyOnce) {
  ResidentCache cache(1024, 64);
  Put(cache, "a", 128, "x");
  ASSERT_TRUE(cache.insert_shared("b", "x", 128));
  EXPECT_EQ(cache.pin_cost("b"), 128u);
  cache.set_pinned("a", true);
  EXPECT_EQ(cache.pin_cost("b"), 0u);
  cache.set_pinned("b", true);
  EXPECT_EQ(cache.bytes_pinned(), 128u);
  EXPECT_EQ(cache.pinned_count(), 2u);
  cache.set_pinned("a", false);
  EXPECT_EQ(cache.bytes_pinned(), 128u) << "b still pins the copy";
  EXPECT_TRUE(cache.erase("a"));
  cache.set_pinned("b", false);
  EXPECT_EQ(cache.bytes_pinned(), 0u);
}

TEST(SharedCopies, ARenamedNameStaysOnItsCopy) {
  ResidentCache cache(1024, 64);
  Put(cache, "a", 128, "x");
  ASSERT_TRUE(cache.insert_shared("b", "x", 128));
  cache.rename("a", "a-retired");
  EXPECT_EQ(cache.find("a-retired")->offset, cache.find("b")->offset);
  EXPECT_TRUE(cache.erase("b"));
  EXPECT_EQ(cache.bytes_resident(), 128u);
  // The content is still found through the remaining name.
  EXPECT_TRUE(cache.insert_shared("c", "x", 128));
  EXPECT_EQ(cache.bytes_resident(), 128u);
}

TEST(SharedCopies, AFreedCopyIsNotJoinedByItsContent) {
  ResidentCache cache(1024, 64);
  Put(cache, "a", 128, "x");
  EXPECT_TRUE(cache.erase("a"));
  EXPECT_FALSE(cache.insert_shared("b", "x", 128));
  Put(cache, "d", 128, "z");  // may reuse the range: another content
  EXPECT_FALSE(cache.insert_shared("b", "x", 128));
}

}  // namespace
}  // namespace genomed::cache
