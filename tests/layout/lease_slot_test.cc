// The lease-slot word protocol (layout/lease_slot.h), both sides, with real
// threads racing on one word as a client's threads and the daemon do.
#include "layout/lease_slot.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace genomed::layout {
namespace {

namespace w = slot_word;

// A slot as the daemon grants it.
struct GrantedSlot : LeaseSlot {
  explicit GrantedSlot(std::uint32_t tag) {
    word.store(w::granted(tag));
    uses.store(0);
  }
};

TEST(LeaseSlot, TakesAndGivesBackWithoutTheDaemon) {
  GrantedSlot s(7);
  EXPECT_EQ(w::count(s.word.load()), 1u);  // the granting ACQUIRE's lease
  ASSERT_TRUE(take_slot_lease(s, 7));
  ASSERT_TRUE(take_slot_lease(s, 7));
  EXPECT_EQ(w::count(s.word.load()), 3u);
  EXPECT_EQ(s.uses.load(), 2u);
  EXPECT_EQ(give_back_slot_lease(s, 7), GiveBack::kept);
  EXPECT_EQ(give_back_slot_lease(s, 7), GiveBack::kept);
  EXPECT_EQ(give_back_slot_lease(s, 7), GiveBack::kept);
  EXPECT_EQ(w::count(s.word.load()), 0u);
  EXPECT_EQ(w::tag(s.word.load()), 7u);
}

TEST(LeaseSlot, AnotherGrantsTagIsRefusedBothWays) {
  GrantedSlot s(7);
  EXPECT_FALSE(take_slot_lease(s, 8));
  EXPECT_EQ(give_back_slot_lease(s, 8), GiveBack::stale);
  EXPECT_EQ(w::count(s.word.load()), 1u);  // untouched
  // To the daemon, a word that is not its grant is a violation (no honest
  // client changes the tag): it holds nothing, and is revoked at once.
  EXPECT_EQ(read_held(s.word.load(), 8), std::nullopt);
  EXPECT_EQ(revoke_slot(s, 8), Revoke::violation);
  EXPECT_TRUE(w::revoked(s.word.load()));
  EXPECT_FALSE(take_slot_lease(s, 7));
}

TEST(LeaseSlot, AnIdleSlotIsRevokedAndTakesNothingMore) {
  GrantedSlot s(3);
  ASSERT_EQ(give_back_slot_lease(s, 3), GiveBack::kept);
  EXPECT_EQ(revoke_slot(s, 3), Revoke::revoked);
  EXPECT_FALSE(take_slot_lease(s, 3));
  EXPECT_EQ(give_back_slot_lease(s, 3), GiveBack::stale);  // nothing held there any more
  EXPECT_EQ(revoke_slot(s, 3), Revoke::in_use);           // revoked already: not twice
}

TEST(LeaseSlot, ABusySlotIsWantedAndItsLastGiveBackRevokesAndNotifies) {
  GrantedSlot s(5);
  ASSERT_TRUE(take_slot_lease(s, 5));  // count 2
  EXPECT_EQ(revoke_slot(s, 5), Revoke::in_use);
  EXPECT_TRUE(w::wanted(s.word.load()));
  EXPECT_FALSE(take_slot_lease(s, 5)) << "a wanted slot must send the client to the daemon";
  EXPECT_EQ(revoke_slot(s, 5), Revoke::in_use);  // still busy, still wanted
  EXPECT_EQ(give_back_slot_lease(s, 5), GiveBack::kept);
  EXPECT_EQ(give_back_slot_lease(s, 5), GiveBack::notify);
  EXPECT_TRUE(w::revoked(s.word.load()));
  EXPECT_EQ(w::count(s.word.load()), 0u);
  // The client's RELEASE ends the lease: the daemon must not end it too.
  EXPECT_EQ(revoke_slot(s, 5), Revoke::in_use);
}

TEST(LeaseSlot, ACountTheClientFilledIsNotPassed) {
  LeaseSlot s;
  s.word.store(w::granted(9) | w::kCountMask);
  s.uses.store(0);
  EXPECT_FALSE(take_slot_lease(s, 9));
  EXPECT_EQ(w::count(s.word.load()), w::kCountMask);
}

// kMaxCount bounds what a slot holds: a client takes no more, and the
// daemon counts no more (a larger count is a violation, worth nothing).
TEST(LeaseSlot, NoSlotHoldsMoreThanItsMaximum) {
  GrantedSlot s(4);
  const std::uint64_t at = w::granted(4) & ~w::kCountMask;
  s.word.store(at | (w::kMaxCount - 1));
  EXPECT_TRUE(take_slot_lease(s, 4));
  EXPECT_EQ(w::count(s.word.load()), w::kMaxCount);
  EXPECT_FALSE(take_slot_lease(s, 4)) << "took past the slot's maximum";
  EXPECT_EQ(read_held(s.word.load(), 4), w::kMaxCount);
  EXPECT_EQ(revoke_slot(s, 4), Revoke::in_use) << "a plausible count is held";

  for (const std::uint64_t hostile : {at | (w::kMaxCount + 1), at | w::kCountMask,
                                      at | w::kRevoked | 2, w::granted(5)}) {
    EXPECT_FALSE(plausible(hostile, 4)) << std::hex << hostile;
    EXPECT_EQ(read_held(hostile, 4), std::nullopt) << std::hex << hostile;
    s.word.store(hostile);
    EXPECT_EQ(revoke_slot(s, 4), Revoke::violation) << std::hex << hostile;
    EXPECT_TRUE(w::revoked(s.word.load()));
  }
  // What honest clients leave: counts up to the maximum; a slot they
  // revoked with their last give-back counts its lease until RELEASE.
  EXPECT_EQ(read_held(at | 3, 4), 3u);
  EXPECT_EQ(read_held(at | w::kWanted | w::kRevoked, 4), 1u);
}

// Client threads take and give back on one slot while the daemon wants it
// back. Whatever the interleaving: the daemon revokes only a slot nobody
// holds a lease through, and each grant ends exactly once (the daemon's
// revoke, or one client's notify), never both, never neither.
TEST(LeaseSlot, RacingClientsAndDaemonEndEachGrantExactlyOnce) {
  constexpr int kRounds = 300;
  constexpr int kClients = 3;
  LeaseSlot s;
  s.uses.store(0);
  for (int round = 0; round < kRounds; ++round) {
    const std::uint32_t tag = static_cast<std::uint32_t>(round + 1);
    s.word.store(w::granted(tag));
    std::atomic<int> holders{1};  // the granting lease, given back below
    std::atomic<int> notifies{0};
    std::atomic<bool> start{false};
    std::vector<std::thread> clients;
    for (int c = 0; c < kClients; ++c) {
      clients.emplace_back([&] {
        while (!start.load()) {
        }
        for (int i = 0; i < 200; ++i) {
          if (!take_slot_lease(s, tag)) break;
          holders.fetch_add(1);
          holders.fetch_sub(1);  // before the give-back: it may be the last lease
          if (give_back_slot_lease(s, tag) == GiveBack::notify) notifies.fetch_add(1);
        }
      });
    }
    start.store(true);
    holders.fetch_sub(1);
    if (give_back_slot_lease(s, tag) == GiveBack::notify) notifies.fetch_add(1);
    int revoked = 0;
    while (!w::revoked(s.word.load())) {
      if (revoke_slot(s, tag) == Revoke::revoked) {
        ++revoked;
        EXPECT_EQ(holders.load(), 0) << "revoked while a lease was held through the slot";
      } else {
        // However contended: wanted back from the first try, so that the
        // last give-back revokes it (nobody looks at this word again).
        const std::uint64_t now = s.word.load();
        EXPECT_TRUE(w::wanted(now) || w::revoked(now));
      }
    }
    for (auto& t : clients) t.join();
    EXPECT_EQ(revoked + notifies.load(), 1) << "round " << round;
    EXPECT_EQ(w::count(s.word.load()), 0u);
  }
}

}  // namespace
}  // namespace genomed::layout
