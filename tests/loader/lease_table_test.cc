// The lease table keeps the cache's per-adapter counts and its per-connection
// records in step.
#include "loader/lease_table.h"

#include <gtest/gtest.h>

namespace genomed::loader {
namespace {

class LeaseTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"a", "b"}) {
      auto r = cache_.reserve(1024);
      ASSERT_TRUE(r.ok());
      cache_.insert(name, r->offset, 1024);
    }
  }
  cache::ResidentCache cache_{4096, 1024};
  LeaseTable table_{cache_};
};

TEST_F(LeaseTableTest, GrantAndEndKeepTheCacheCountInStep) {
  const LeaseId x = table_.grant("a", 1);
  const LeaseId y = table_.grant("a", 2);
  EXPECT_NE(x, y);
  EXPECT_EQ(cache_.find("a")->leases, 2u);
  table_.check_invariants();
  auto ended = table_.end(x);
  ASSERT_TRUE(ended);
  EXPECT_EQ(ended->name, "a");
  EXPECT_FALSE(ended->last);
  ended = table_.end(y);
  ASSERT_TRUE(ended);
  EXPECT_TRUE(ended->last);
  EXPECT_EQ(cache_.find("a")->leases, 0u);
  EXPECT_FALSE(table_.end(y)) << "ended twice";
  table_.check_invariants();
}

TEST_F(LeaseTableTest, AnotherConnectionCannotEndALease) {
  const LeaseId x = table_.grant("b", 7);
  EXPECT_FALSE(table_.end(x, ConnectionId{8}));
  EXPECT_TRUE(table_.holds_any(7));
  EXPECT_TRUE(table_.end(x, ConnectionId{7}));
  EXPECT_FALSE(table_.holds_any(7));
}

TEST_F(LeaseTableTest, LeasesOfAConnection) {
  table_.grant("a", 1);
  table_.grant("b", 1);
  table_.grant("b", 2);
  EXPECT_EQ(table_.of(1).size(), 2u);
  EXPECT_EQ(table_.of(3).size(), 0u);
  for (LeaseId id : table_.of(1)) table_.end(id);
  EXPECT_FALSE(table_.holds_any(1));
  EXPECT_EQ(table_.active(), 1u);
  EXPECT_EQ(table_.granted(), 3u);
  table_.check_records();
}

// A client that hoards leases (here the default cap of one connection)
// must not make another connection's release cost more: ending one
// connection's leases, and the bookkeeping check after it, look at that
// connection's records alone.
TEST_F(LeaseTableTest, EndingOneConnectionsLeasesLooksOnlyAtThose) {
  constexpr std::size_t kHoard = 4096;  // CoordinatorOptions::max_leases_per_connection
  for (std::size_t i = 0; i < kHoard; ++i) table_.grant(i % 2 ? "a" : "b", 1);
  for (int i = 0; i < 3; ++i) table_.grant("a", 2);
  EXPECT_EQ(table_.count_of(1), kHoard);
  EXPECT_EQ(table_.count_of(2), 3u);

  const std::uint64_t before = table_.records_visited();
  for (LeaseId id : table_.of(2)) ASSERT_TRUE(table_.end(id, ConnectionId{2}));
  table_.check_invariants();  // what the coordinator runs after every change in test builds
  EXPECT_LE(table_.records_visited() - before, 2u * 3) << "looked at the hoarder's leases";
  EXPECT_EQ(table_.count_of(2), 0u);
  EXPECT_EQ(table_.active(), kHoard);

  table_.check_records();  // the O(leases) check looks at all of them
  EXPECT_GE(table_.records_visited() - before, kHoard);
}

}  // namespace
}  // namespace genomed::loader
