// The client's lease-slot cache over a page in ordinary memory, playing the
// daemon by writing the slot words as layout/lease_slot.h says it does.
#include "client/slot_cache.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <cstring>

namespace genomed::client_detail {
namespace {

namespace word = layout::slot_word;

struct Page {
  Page() {
    for (auto& s : slots) {
      s.word.store(0);
      s.uses.store(0);
    }
  }
  // The daemon's grant of slot `index` with `tag` (its ACQUIRE's lease counted).
  SlotGrant grant(std::uint32_t index, std::uint32_t tag, std::uint64_t lease) {
    slots[index].word.store(word::granted(tag));
    return {index, tag, lease, /*generation=*/1, nullptr};
  }
  std::uint32_t count(std::uint32_t index) const { return word::count(slots[index].word.load()); }
  std::array<layout::LeaseSlot, 4> slots;
};

// A cache over a page of four slots in ordinary memory.
class SlotCacheTest : public ::testing::Test {
 protected:
  Page page;
  SlotCache cache{page.slots.data(), 4};
  std::vector<std::uint64_t> to_release;  // what take() asks to send
};

TEST_F(SlotCacheTest, AnAdapterWithoutASlotIsAskedOfTheDaemon) {
  EXPECT_FALSE(cache.take({"a"}, &to_release));
  EXPECT_TRUE(to_release.empty());
}

TEST_F(SlotCacheTest, ATakeAndItsGiveBackMoveOnlyTheSlotsCount) {
  cache.remember("a", page.grant(2, 7, 42));
  auto taken = cache.take({"a"}, &to_release);
  ASSERT_TRUE(taken);
  ASSERT_EQ(taken->size(), 1u);
  EXPECT_EQ((*taken)[0].first, "a");
  EXPECT_EQ((*taken)[0].second.lease, 42u);
  EXPECT_EQ((*taken)[0].second.index, 2u);
  EXPECT_EQ(page.count(2), 2u);  // the ACQUIRE's lease and this one
  EXPECT_EQ(page.slots[2].uses.load(), 1u);
  EXPECT_FALSE(cache.give_back(2, 7));
  EXPECT_EQ(page.count(2), 1u);
  EXPECT_TRUE(to_release.empty());
}

TEST_F(SlotCacheTest, AWantedSlotIsForgottenAndItsLastGiveBackCallsForRelease) {
  cache.remember("a", page.grant(0, 3, 9));
  ASSERT_TRUE(cache.take({"a"}, &to_release));  // count 2
  page.slots[0].word.fetch_or(word::kWanted);   // the daemon wants the memory
  EXPECT_FALSE(cache.take({"a"}, &to_release));
  EXPECT_FALSE(cache.give_back(0, 3));  // one lease left
  EXPECT_TRUE(cache.give_back(0, 3));   // the last: revoked, RELEASE its lease id
  EXPECT_TRUE(word::revoked(page.slots[0].word.load()));
  // Forgotten: even a slot no longer wanted is not used again without a grant.
  page.slots[0].word.store(word::granted(3));
  EXPECT_FALSE(cache.take({"a"}, &to_release));
  EXPECT_TRUE(to_release.empty());
}

TEST_F(SlotCacheTest, ABatchTakesEverySlotOrNone) {
  cache.remember("a", page.grant(0, 1, 10));
  cache.remember("b", page.grant(1, 1, 11));
  page.slots[1].word.fetch_or(word::kWanted);
  EXPECT_FALSE(cache.take({"a", "b"}, &to_release));
  EXPECT_EQ(page.count(0), 1u);  // a's lease was given back
  EXPECT_EQ(page.count(1), 1u);
  EXPECT_TRUE(to_release.empty());  // a's slot is not wanted: nothing to send
  auto a = cache.take({"a"}, &to_release);
  ASSERT_TRUE(a);
  EXPECT_EQ(page.count(0), 2u);
}

TEST_F(SlotCacheTest, AnIndexGrantedAgainForgetsItsEarlierAdapter) {
  cache.remember("a", page.grant(0, 1, 10));
  cache.remember("b", page.grant(0, 2, 11));
  EXPECT_FALSE(cache.take({"a"}, &to_release));
  auto b = cache.take({"b"}, &to_release);
  ASSERT_TRUE(b);
  EXPECT_EQ((*b)[0].second.lease, 11u);
}

TEST_F(SlotCacheTest, AGiveBackToASlotNotAsTheClientLeftItCallsForRelease) {
  cache.remember("a", page.grant(0, 1, 10));
  EXPECT_TRUE(cache.give_back(0, /*tag=*/2));  // another grant's tag
}

// A memfd holding a page as the daemon makes it.
int page_fd(std::uint32_t slots, std::uint64_t magic, std::size_t bytes) {
  const int fd = ::memfd_create("slot-page", MFD_CLOEXEC);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(bytes)), 0);
  const layout::LeaseSlotHeader header{magic, layout::kLeaseSlotVersion, slots};
  EXPECT_EQ(::pwrite(fd, &header, sizeof header, 0), static_cast<ssize_t>(sizeof header));
  return fd;
}

TEST(SlotCache, MapTakesTheDaemonsPageAndCountsInIt) {
  const int fd = page_fd(4, layout::kLeaseSlotMagic, layout::lease_slot_page_bytes(4));
  const std::uint64_t granted = word::granted(5);
  const off_t slot3 = sizeof(layout::LeaseSlotHeader) + 3 * sizeof(layout::LeaseSlot);
  ASSERT_EQ(::pwrite(fd, &granted, sizeof granted, slot3), static_cast<ssize_t>(sizeof granted));
  auto cache = SlotCache::map(fd, 4);
  ASSERT_TRUE(cache.ok()) << cache.status().message();
  EXPECT_EQ((*cache)->count(), 4u);
  (*cache)->remember("a", {3, 5, 1, 1, nullptr});
  std::vector<std::uint64_t> to_release;
  ASSERT_TRUE((*cache)->take({"a"}, &to_release));
  std::uint64_t now = 0;
  ASSERT_EQ(::pread(fd, &now, sizeof now, slot3), static_cast<ssize_t>(sizeof now));
  EXPECT_EQ(word::count(now), 2u);
  ::close(fd);
}

TEST(SlotCache, MapRefusesAShortPageAndAWrongHeader) {
  const int short_fd = page_fd(4, layout::kLeaseSlotMagic, layout::lease_slot_page_bytes(3));
  auto short_page = SlotCache::map(short_fd, 4);
  EXPECT_EQ(short_page.code(), Errc::protocol_error);
  ::close(short_fd);
  const int wrong_fd = page_fd(4, /*magic=*/1, layout::lease_slot_page_bytes(4));
  auto wrong = SlotCache::map(wrong_fd, 4);
  EXPECT_EQ(wrong.code(), Errc::protocol_error);
  ::close(wrong_fd);
  const int other_fd = page_fd(8, layout::kLeaseSlotMagic, layout::lease_slot_page_bytes(8));
  EXPECT_EQ(SlotCache::map(other_fd, 4).code(), Errc::protocol_error);  // announced 4, holds 8
  ::close(other_fd);
}

}  // namespace
}  // namespace genomed::client_detail
