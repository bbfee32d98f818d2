// Pinned entries of the LRU index: never evicted, never erased, counted in
// bytes_pinned(), and evictable again (most recently used) once unpinned.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cache/resident_cache.h"

namespace genomed::cache {
namespace {

void Put(ResidentCache& cache, const std::string& name, std::uint64_t length) {
  auto r = cache.reserve(length);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  cache.insert(name, r->offset, length);
}

TEST(ResidentCachePin, APinnedEntryIsNeverEvictedNorErased) {
  ResidentCache cache(3 * 64, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  Put(cache, "c", 64);
  EXPECT_FALSE(cache.set_pinned("a", true));
  EXPECT_TRUE(cache.find("a")->pinned);
  EXPECT_EQ(cache.bytes_pinned(), 64u);
  EXPECT_EQ(cache.pinned_count(), 1u);
  EXPECT_FALSE(cache.erase("a")) << "erase refuses a pinned entry";

  // "a" is the least recently used, but pinned: "b" goes first.
  auto r = cache.reserve(64);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, std::vector<std::string>{"b"});
  cache.insert("d", r->offset, 64);
  // Room for two more only by evicting "a": no_space, and nothing evicted.
  auto two = cache.reserve_all({64, 64, 64});
  EXPECT_EQ(two.code(), Errc::no_space) << two.status().to_string();
  EXPECT_NE(two.status().message().find("pinned"), std::string::npos) << two.status().message();
  EXPECT_TRUE(cache.find("c") && cache.find("d"));
}

// "a" is pinned and has no lease: the refusal must say it is held as pinned,
// not "leased" (nothing is), and sizes that print alike get their bytes.
TEST(ResidentCachePin, NoSpaceNamesPinnedBytesAsHeldNotLeased) {
  ResidentCache cache(2 * 64, 64);
  Put(cache, "a", 64);
  EXPECT_FALSE(cache.set_pinned("a", true));
  auto r = cache.reserve_all({64, 64});
  ASSERT_EQ(r.code(), Errc::no_space) << r.status().to_string();
  const std::string m = r.status().message();
  EXPECT_NE(m.find("held by 1 adapter(s) in use (leased or pinned; 64 B pinned by 1 of them)"),
            std::string::npos)
      << m;
  EXPECT_EQ(m.find("is leased by"), std::string::npos) << m;
  EXPECT_NE(m.find("only 64 B of the"), std::string::npos) << m;
}

TEST(ResidentCachePin, ALeaseEndingOnAPinnedEntryKeepsItPinned) {
  ResidentCache cache(2 * 64, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  cache.set_pinned("a", true);
  ASSERT_TRUE(cache.lease("a"));
  cache.release("a");
  auto r = cache.reserve(64);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, std::vector<std::string>{"b"});
  cache.cancel_reservation(r->offset);
}

TEST(ResidentCachePin, UnpinnedItIsEvictableAsTheMostRecentlyUsed) {
  ResidentCache cache(2 * 64, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  cache.set_pinned("a", true);
  EXPECT_TRUE(cache.set_pinned("a", false));
  EXPECT_EQ(cache.bytes_pinned(), 0u);
  EXPECT_FALSE(cache.find("a")->pinned);
  auto r = cache.reserve(64);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, std::vector<std::string>{"b"}) << "unpinning made 'a' the most recent";
  cache.cancel_reservation(r->offset);
  EXPECT_TRUE(cache.erase("a"));
}

TEST(ResidentCachePin, PinningALeasedEntryOutlivesItsLease) {
  ResidentCache cache(64, 64);
  Put(cache, "a", 64);
  ASSERT_TRUE(cache.lease("a"));
  cache.set_pinned("a", true);
  cache.release("a");
  EXPECT_EQ(cache.reserve(64).code(), Errc::no_space);
  cache.set_pinned("a", false);
  EXPECT_TRUE(cache.reserve(64).ok());
}

}  // namespace
}  // namespace genomed::cache
