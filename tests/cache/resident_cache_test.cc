// Properties of the LRU index: eviction order, leases pinning entries, the
// explicit refusals (too_large, no_space without collateral eviction), and
// agreement with a simple model under random use.
#include "cache/resident_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace genomed::cache {
namespace {

using Names = std::vector<std::string>;

// Reserves and inserts `name`; the reservation must succeed.
ResidentCache::Reservation Put(ResidentCache& cache, const std::string& name,
                               std::uint64_t length) {
  auto r = cache.reserve(length);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  if (!r.ok()) return {};
  cache.insert(name, r->offset, length);
  return *r;
}

TEST(ResidentCache, InsertedEntryIsFoundUnleased) {
  ResidentCache cache(1024, 64);
  auto r = Put(cache, "a", 100);
  auto e = cache.find("a");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->offset, r.offset);
  EXPECT_EQ(e->length, 100u);
  EXPECT_EQ(e->leases, 0u);
  EXPECT_EQ(r.length, 128u);
  EXPECT_EQ(cache.bytes_resident(), 128u);
  EXPECT_FALSE(cache.find("b"));
}

TEST(ResidentCache, EvictsInLruOrder) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  Put(cache, "c", 64);
  Put(cache, "d", 64);
  auto r = cache.reserve(128);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, (Names{"a", "b"}));
  EXPECT_EQ(cache.evictions(), 2u);
  EXPECT_FALSE(cache.find("a"));
  EXPECT_FALSE(cache.find("b"));
  EXPECT_TRUE(cache.find("c"));
  cache.cancel_reservation(r->offset);
}

TEST(ResidentCache, ReserveAllIsAllOrNothing) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  ASSERT_TRUE(cache.lease("a"));
  // 4 x 64 can never fit beside the leased "a": nothing is evicted for it.
  auto refused = cache.reserve_all({64, 64, 64, 64});
  EXPECT_EQ(refused.code(), Errc::no_space);
  EXPECT_TRUE(cache.find("b"));
  EXPECT_EQ(cache.bytes_reserved(), 0u);
  // 3 x 64 fits by evicting "b" only.
  auto r = cache.reserve_all({64, 64, 64});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->evicted, (Names{"b"}));
  ASSERT_EQ(r->ranges.size(), 3u);
  EXPECT_NE(r->ranges[0].offset, r->ranges[1].offset);
  EXPECT_EQ(cache.bytes_reserved(), 192u);
  for (const auto& range : r->ranges) cache.cancel_reservation(range.offset);
}

TEST(ResidentCache, ReserveAllNeverEvictsWhatItKeeps) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  Put(cache, "c", 64);
  Put(cache, "d", 64);
  auto r = cache.reserve_all({64}, {"a"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, (Names{"b"}));  // "a" is least recently used but kept
  EXPECT_TRUE(cache.find("a"));
  cache.cancel_reservation(r->ranges[0].offset);
  // Keeping everything unleased and a lease on the rest leave no room:
  // refused, nothing evicted.
  ASSERT_TRUE(cache.lease("d"));
  EXPECT_EQ(cache.reserve_all({128}, {"a", "c"}).code(), Errc::no_space);
  EXPECT_EQ(cache.entry_count(), 3u);
  cache.release("d");
}

TEST(ResidentCache, ReserveAllCountsWhatItKeepsAgainstTheBudget) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  Put(cache, "c", 64);
  // 192 kept + 128 asked can never fit in 256, whatever is evicted.
  auto r = cache.reserve_all({128}, {"a", "b", "c", "a"});
  EXPECT_EQ(r.code(), Errc::too_large) << r.status().to_string();
  EXPECT_EQ(cache.entry_count(), 3u);
  // 128 kept + 128 asked fits once "c" is evicted.
  auto ok = cache.reserve_all({128}, {"a", "b"});
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  EXPECT_EQ(ok->evicted, (Names{"c"}));
  cache.cancel_reservation(ok->ranges[0].offset);
}

TEST(ResidentCache, ReserveAllRefusesMoreThanTheBudgetTogether) {
  ResidentCache cache(256, 64);
  EXPECT_EQ(cache.reserve_all({192, 128}).code(), Errc::too_large);
  EXPECT_EQ(cache.bytes_reserved(), 0u);
}

TEST(ResidentCache, TouchRefreshesLruPosition) {
  ResidentCache cache(192, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  Put(cache, "c", 64);
  cache.touch("a");
  cache.touch("absent");  // no effect
  EXPECT_EQ(cache.names(), (Names{"a", "c", "b"}));
  auto r = cache.reserve(64);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, (Names{"b"}));
  cache.cancel_reservation(r->offset);
}

TEST(ResidentCache, LeasedEntriesAreNeverEvicted) {
  ResidentCache cache(192, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  Put(cache, "c", 64);
  ASSERT_TRUE(cache.lease("a"));
  EXPECT_FALSE(cache.lease("absent"));
  auto r = cache.reserve(128);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, (Names{"b", "c"}));
  ASSERT_TRUE(cache.find("a"));
  EXPECT_EQ(cache.find("a")->leases, 1u);
  cache.insert("d", r->offset, 128);
  cache.release("a");
}

TEST(ResidentCache, PinnedEntriesExceedBudgetRefusesWithNoSpaceAndEvictsNothing) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  Put(cache, "c", 64);
  ASSERT_TRUE(cache.lease("b"));
  ASSERT_TRUE(cache.lease("c"));
  // Evicting "a" alone would free 64 + the 64 tail = 128 bytes, not 192.
  auto r = cache.reserve(192);
  EXPECT_EQ(r.code(), Errc::no_space);
  EXPECT_NE(r.status().message().find("leased"), std::string::npos) << r.status().message();
  EXPECT_TRUE(cache.find("a"));
  EXPECT_EQ(cache.evictions(), 0u);
  EXPECT_EQ(cache.entry_count(), 3u);
  cache.release("b");
  cache.release("c");
}

TEST(ResidentCache, LargerThanBudgetIsTooLarge) {
  ResidentCache cache(1024, 64);
  Put(cache, "a", 64);
  auto r = cache.reserve(1025);
  EXPECT_EQ(r.code(), Errc::too_large);
  EXPECT_NE(r.status().message().find("1025"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("1024"), std::string::npos) << r.status().message();
  EXPECT_TRUE(cache.find("a"));
  EXPECT_EQ(cache.evictions(), 0u);
  // Exactly the budget is allowed, evicting everything unleased.
  auto whole = cache.reserve(1024);
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(whole->evicted, (Names{"a"}));
  cache.cancel_reservation(whole->offset);
}

TEST(ResidentCache, ZeroLengthIsBadRequest) {
  ResidentCache cache(1024, 64);
  EXPECT_EQ(cache.reserve(0).code(), Errc::bad_request);
}

TEST(ResidentCache, ReleaseMakesEntryEvictableAgain) {
  ResidentCache cache(128, 64);
  Put(cache, "a", 128);
  ASSERT_TRUE(cache.lease("a"));
  ASSERT_TRUE(cache.lease("a"));
  EXPECT_EQ(cache.reserve(64).code(), Errc::no_space);
  cache.release("a");
  EXPECT_EQ(cache.reserve(64).code(), Errc::no_space);  // one lease remains
  cache.release("a");
  auto r = cache.reserve(64);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, (Names{"a"}));
  cache.cancel_reservation(r->offset);
}

TEST(ResidentCache, ReleasedEntryBecomesMostRecentlyUsed) {
  ResidentCache cache(128, 64);
  Put(cache, "a", 64);
  Put(cache, "b", 64);
  ASSERT_TRUE(cache.lease("a"));
  EXPECT_EQ(cache.names(), (Names{"a", "b"}));  // in use first
  cache.release("a");
  EXPECT_EQ(cache.names(), (Names{"a", "b"}));
  auto r = cache.reserve(64);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, (Names{"b"}));
  cache.cancel_reservation(r->offset);
}

TEST(ResidentCache, EraseRefusesLeased) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 64);
  ASSERT_TRUE(cache.lease("a"));
  EXPECT_FALSE(cache.erase("a"));
  EXPECT_TRUE(cache.find("a"));
  cache.release("a");
  EXPECT_TRUE(cache.erase("a"));
  EXPECT_FALSE(cache.find("a"));
  EXPECT_FALSE(cache.erase("a"));
  EXPECT_EQ(cache.bytes_resident(), 0u);
  EXPECT_EQ(cache.evictions(), 0u);  // an erase is not an eviction
  EXPECT_TRUE(Put(cache, "b", 256).evicted.empty());
}

TEST(ResidentCache, ReservationsCountAgainstBudget) {
  ResidentCache cache(256, 64);
  auto r1 = cache.reserve(128);
  ASSERT_TRUE(r1.ok());
  EXPECT_EQ(cache.bytes_reserved(), 128u);
  EXPECT_EQ(cache.bytes_resident(), 0u);
  auto r2 = cache.reserve(128);
  ASSERT_TRUE(r2.ok());
  EXPECT_NE(r1->offset, r2->offset);
  EXPECT_EQ(cache.reserve(64).code(), Errc::no_space);
  cache.insert("a", r1->offset, 100);
  EXPECT_EQ(cache.bytes_reserved(), 128u);
  EXPECT_EQ(cache.bytes_resident(), 128u);
  // "a" is evictable, the pending reservation is not.
  auto r3 = cache.reserve(128);
  ASSERT_TRUE(r3.ok());
  EXPECT_EQ(r3->evicted, (Names{"a"}));
  cache.cancel_reservation(r2->offset);
  cache.cancel_reservation(r3->offset);
}

TEST(ResidentCache, CancelReservationFreesRange) {
  ResidentCache cache(256, 64);
  auto r = cache.reserve(256);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(cache.reserve(64).code(), Errc::no_space);
  cache.cancel_reservation(r->offset);
  EXPECT_EQ(cache.bytes_reserved(), 0u);
  auto again = cache.reserve(256);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->offset, r->offset);
  cache.cancel_reservation(again->offset);
}

TEST(ResidentCache, ZeroSizeBudget) {
  ResidentCache cache(0, 64);
  EXPECT_EQ(cache.budget(), 0u);
  EXPECT_EQ(cache.reserve(1).code(), Errc::too_large);
  EXPECT_EQ(cache.entry_count(), 0u);
}

// Free bytes suffice before any eviction, but not contiguously: the cache must
// keep evicting in LRU order until the allocator finds one range.
TEST(ResidentCache, FragmentationEvictsUntilFit) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 64);  // [0,64)
  Put(cache, "b", 64);  // [64,128)
  Put(cache, "c", 64);  // [128,192)
  Put(cache, "d", 64);  // [192,256)
  ASSERT_TRUE(cache.erase("b"));
  cache.touch("a");  // LRU order now: c, d, a
  // 64 bytes free at [64,128); 128 needs "c" to go to make [64,192).
  auto r = cache.reserve(128);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, (Names{"c"}));
  EXPECT_EQ(r->offset, 64u);
  EXPECT_TRUE(cache.find("a"));
  EXPECT_TRUE(cache.find("d"));
  cache.cancel_reservation(r->offset);
}

// Evicting in LRU order may free bytes that do not help (not adjacent to a
// hole); it continues until a fit exists, never stopping at "enough bytes".
TEST(ResidentCache, FragmentationKeepsEvictingPastEnoughTotalBytes) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 64);  // [0,64)
  Put(cache, "b", 64);  // [64,128)
  Put(cache, "c", 64);  // [128,192)
  Put(cache, "d", 64);  // [192,256)
  ASSERT_TRUE(cache.lease("b"));
  cache.touch("c");  // LRU order among unleased: a, d, c
  // After "a" and "d": 128 bytes free, but split by leased "b" at [64,128).
  auto r = cache.reserve(128);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->evicted, (Names{"a", "d", "c"}));
  EXPECT_EQ(r->offset, 128u);
  cache.cancel_reservation(r->offset);
  cache.release("b");
}

TEST(ResidentCacheDeathTest, ReleaseOfUnleasedEntryAborts) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 64);
  EXPECT_DEATH(cache.release("a"), "unleased");
}

TEST(ResidentCacheDeathTest, InsertOfResidentNameAborts) {
  ResidentCache cache(256, 64);
  Put(cache, "a", 64);
  auto r = cache.reserve(64);
  ASSERT_TRUE(r.ok());
  EXPECT_DEATH(cache.insert("a", r->offset, 64), "resident name");
  cache.cancel_reservation(r->offset);
}

// Random operations against a model of names, leases and footprints: leased
// entries are never evicted, refusals evict nothing, and the byte counts
// always equal the sums of what the model holds.
TEST(ResidentCache, RandomizedAgainstModel) {
  constexpr std::uint64_t kAlign = 64, kBudget = 64 * 64;
  std::mt19937_64 rng(777);
  ResidentCache cache(kBudget, kAlign);
  struct Model {
    std::uint64_t footprint;
    std::uint32_t leases;
    std::uint64_t last_used;  // meaningful while leases == 0
  };
  std::uint64_t clock = 0;
  int refusals = 0;
  std::map<std::string, Model> model;
  std::map<std::uint64_t, std::uint64_t> pending;  // offset -> footprint
  int next = 0;
  auto pick = [&](auto& m) {
    auto it = m.begin();
    std::advance(it, rng() % m.size());
    return it;
  };
  for (int step = 0; step < 20000; ++step) {
    const unsigned op = rng() % 100;
    if (op < 35) {
      const std::uint64_t length = 1 + rng() % (kBudget / 4);
      // Bytes that no eviction can free: leased entries and reservations.
      std::vector<bool> pinned(kBudget / kAlign, false);
      auto pin = [&](std::uint64_t offset, std::uint64_t footprint) {
        for (std::uint64_t u = offset / kAlign; u < (offset + footprint) / kAlign; ++u) {
          pinned[u] = true;
        }
      };
      for (const auto& [n, m] : model) {
        if (m.leases > 0) pin(cache.find(n)->offset, m.footprint);
      }
      for (const auto& [o, f] : pending) pin(o, f);
      std::uint64_t largest_gap = 0, run = 0;
      for (bool p : pinned) {
        run = p ? 0 : run + 1;
        largest_gap = std::max(largest_gap, run * kAlign);
      }
      const auto before = model.size();
      auto r = cache.reserve(length);
      if (!r.ok()) {
        ASSERT_EQ(r.code(), Errc::no_space);
        ++refusals;
        ASSERT_EQ(cache.entry_count(), before) << "a refusal evicted";
        ASSERT_LT(largest_gap, length) << "refused although evictions would fit it, step " << step;
        continue;
      }
      ASSERT_GE(largest_gap, length);
      // The victims are the least recently used unleased entries, in order.
      std::vector<std::pair<std::uint64_t, std::string>> lru;
      for (const auto& [n, m] : model) {
        if (m.leases == 0) lru.emplace_back(m.last_used, n);
      }
      std::sort(lru.begin(), lru.end());
      ASSERT_LE(r->evicted.size(), lru.size());
      for (std::size_t i = 0; i < r->evicted.size(); ++i) {
        ASSERT_EQ(r->evicted[i], lru[i].second) << "eviction out of LRU order, step " << step;
      }
      for (const std::string& victim : r->evicted) {
        auto it = model.find(victim);
        ASSERT_NE(it, model.end());
        ASSERT_EQ(it->second.leases, 0u) << "evicted a leased entry";
        model.erase(it);
      }
      pending[r->offset] = r->length;
      if (rng() % 4 == 0) {
        cache.cancel_reservation(r->offset);
        pending.erase(r->offset);
      } else if (rng() % 2 == 0) {
        const std::string name = "n" + std::to_string(next++);
        cache.insert(name, r->offset, length);
        model[name] = {r->length, 0, ++clock};
        pending.erase(r->offset);
      }
    } else if (op < 45 && !pending.empty()) {
      auto it = pick(pending);
      const std::string name = "n" + std::to_string(next++);
      cache.insert(name, it->first, it->second);
      model[name] = {it->second, 0, ++clock};
      pending.erase(it);
    } else if (op < 65 && !model.empty()) {
      auto it = pick(model);
      ASSERT_TRUE(cache.lease(it->first));
      ++it->second.leases;
    } else if (op < 85 && !model.empty()) {
      auto it = pick(model);
      if (it->second.leases > 0) {
        cache.release(it->first);
        if (--it->second.leases == 0) it->second.last_used = ++clock;
      }
    } else if (op < 92 && !model.empty()) {
      auto it = pick(model);
      const bool leased = it->second.leases > 0;
      ASSERT_EQ(cache.erase(it->first), !leased);
      if (!leased) model.erase(it);
    } else if (!model.empty()) {
      auto it = pick(model);
      cache.touch(it->first);
      if (it->second.leases == 0) it->second.last_used = ++clock;
    }

    std::uint64_t resident = 0, reserved = 0;
    for (const auto& [name, m] : model) {
      resident += m.footprint;
      auto e = cache.find(name);
      ASSERT_TRUE(e) << name;
      ASSERT_EQ(e->leases, m.leases);
    }
    for (const auto& [o, f] : pending) reserved += f;
    ASSERT_EQ(cache.entry_count(), model.size());
    ASSERT_EQ(cache.bytes_resident(), resident);
    ASSERT_EQ(cache.bytes_reserved(), reserved);
    ASSERT_LE(resident + reserved, kBudget);
    auto names = cache.names();
    ASSERT_EQ(std::set<std::string>(names.begin(), names.end()).size(), model.size());
  }
  // The run must have exercised both outcomes it checks.
  EXPECT_GT(refusals, 100);
  EXPECT_GT(cache.evictions(), 100u);
  for (auto& [name, m] : model) {
    while (m.leases-- > 0) cache.release(name);
  }
  for (const auto& [o, f] : pending) cache.cancel_reservation(o);
}

}  // namespace
}  // namespace genomed::cache
