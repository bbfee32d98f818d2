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
  table_.check_invariants();
}

}  // namespace
}  // namespace genomed::loader
