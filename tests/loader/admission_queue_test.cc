// The admission queue: all-or-nothing tickets, strict arrival order, only
// the unblocked tickets returned, stale tickets when what they keep goes.
#include "loader/admission_queue.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace genomed::loader {
namespace {

using Outcome = AdmissionTicket::Outcome;

std::shared_ptr<RangeClaim> Claim(std::uint64_t length) {
  auto c = std::make_shared<RangeClaim>();
  c->length = length;
  return c;
}

TicketPtr Ticket(std::vector<std::shared_ptr<RangeClaim>> claims,
                 std::vector<std::string> keep = {}) {
  auto t = std::make_shared<AdmissionTicket>();
  t->claims = std::move(claims);
  t->keep = std::move(keep);
  return t;
}

// Puts an adapter of `length` bytes into the cache, leased once.
void PutLeased(cache::ResidentCache& cache, const std::string& name, std::uint64_t length) {
  auto r = cache.reserve(length);
  ASSERT_TRUE(r.ok());
  cache.insert(name, r->offset, length);
  ASSERT_TRUE(cache.lease(name));
}

TEST(AdmissionQueue, ServesAtOnceWhenItFits) {
  cache::ResidentCache cache(4096, 1024);
  AdmissionQueue queue(cache);
  auto claim = Claim(2048);
  auto t = Ticket({claim});
  auto done = queue.submit(t);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], t);
  EXPECT_EQ(t->outcome, Outcome::served);
  ASSERT_TRUE(claim->range);
  EXPECT_EQ(claim->range->length, 2048u);
  EXPECT_EQ(queue.waiting(), 0u);
}

// Two batches of two with room for two: the first is served whole, the
// second holds nothing and waits, and is served whole once the first's
// leases end. This is the hold-and-wait deadlock of the tracker, avoided.
TEST(AdmissionQueue, BatchesAreServedWholeOneAfterTheOther) {
  cache::ResidentCache cache(2048, 1024);
  AdmissionQueue queue(cache);
  auto a = Claim(1024), b = Claim(1024), c = Claim(1024), d = Claim(1024);
  auto first = Ticket({a, b});
  auto second = Ticket({c, d});
  EXPECT_EQ(queue.submit(first).size(), 1u);
  EXPECT_TRUE(queue.submit(second).empty());
  EXPECT_EQ(second->outcome, Outcome::waiting);
  EXPECT_FALSE(c->range);
  EXPECT_FALSE(d->range);  // holds nothing while it waits

  // The first batch's loads publish and are leased, then released.
  cache.insert("a", a->range->offset, 1024);
  cache.insert("b", b->range->offset, 1024);
  ASSERT_TRUE(cache.lease("a"));
  ASSERT_TRUE(cache.lease("b"));
  EXPECT_TRUE(queue.pump().empty());
  cache.release("a");
  EXPECT_TRUE(queue.pump().empty()) << "one free slot is not enough for a batch of two";
  cache.release("b");
  auto done = queue.pump();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], second);
  EXPECT_TRUE(c->range && d->range);
  EXPECT_EQ(second->evicted, (std::vector<std::string>{"a", "b"}));
}

// A large request waits behind leases; small ones arriving after it would
// fit, but wait behind it (strict FIFO), so it is served once room frees.
TEST(AdmissionQueue, LargeHeadIsNotStarvedBySmallOnes) {
  cache::ResidentCache cache(4096, 1024);
  AdmissionQueue queue(cache);
  PutLeased(cache, "held1", 1024);
  PutLeased(cache, "held2", 1024);
  PutLeased(cache, "held3", 1024);
  auto large = Ticket({Claim(3072)});
  EXPECT_TRUE(queue.submit(large).empty());
  std::vector<TicketPtr> small;
  for (int i = 0; i < 5; ++i) {
    // 1 KiB is free: each would fit, but none may pass the head.
    small.push_back(Ticket({Claim(1024)}));
    EXPECT_TRUE(queue.submit(small.back()).empty()) << "a small ticket passed the large head";
  }
  EXPECT_EQ(queue.position(small.back()), 5u);
  cache.release("held2");
  EXPECT_TRUE(queue.pump().empty());
  cache.release("held3");  // held2, held3 and the free KiB are one run of 3 KiB
  auto done = queue.pump();
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], large);
  EXPECT_EQ(large->outcome, Outcome::served);
  EXPECT_EQ(queue.waiting(), 5u);
}

TEST(AdmissionQueue, WithdrawnHeadLetsTheNextOneIn) {
  cache::ResidentCache cache(2048, 1024);
  AdmissionQueue queue(cache);
  PutLeased(cache, "held", 1024);
  auto large = Ticket({Claim(2048)});
  auto small = Ticket({Claim(1024)});
  EXPECT_TRUE(queue.submit(large).empty());
  EXPECT_TRUE(queue.submit(small).empty());
  EXPECT_FALSE(queue.head_blocked_by().empty());
  auto done = queue.withdraw(large);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], small);
  EXPECT_EQ(large->outcome, Outcome::waiting);  // withdrawn, never served
}

TEST(AdmissionQueue, AClaimSharedByTwoTicketsIsReservedOnce) {
  cache::ResidentCache cache(4096, 1024);
  AdmissionQueue queue(cache);
  PutLeased(cache, "held", 4096);
  auto shared = Claim(1024);
  auto first = Ticket({shared, Claim(1024)});
  auto second = Ticket({shared});
  EXPECT_TRUE(queue.submit(first).empty());
  EXPECT_TRUE(queue.submit(second).empty());
  cache.release("held");
  auto done = queue.pump();
  ASSERT_EQ(done.size(), 2u);  // the second needs nothing more once the first is served
  EXPECT_EQ(cache.bytes_reserved(), 2048u);
}

TEST(AdmissionQueue, TooLargeFailsAndTheQueueMovesOn) {
  cache::ResidentCache cache(2048, 1024);
  AdmissionQueue queue(cache);
  auto huge = Ticket({Claim(4096)});
  auto done = queue.submit(huge);
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(huge->outcome, Outcome::failed);
  EXPECT_EQ(huge->error.code(), Errc::too_large);
}

TEST(AdmissionQueue, KeptAdaptersAreNotEvictedAndTheirLossMakesTicketsStale) {
  cache::ResidentCache cache(2048, 1024);
  AdmissionQueue queue(cache);
  PutLeased(cache, "k", 1024);
  cache.release("k");  // resident, unleased, evictable but kept below
  PutLeased(cache, "held", 1024);
  auto t = Ticket({Claim(1024)}, {"k"});
  EXPECT_TRUE(queue.submit(t).empty()) << "served by evicting what it keeps";
  EXPECT_TRUE(cache.find("k"));
  // Unloaded while the ticket waits: stale, its request starts over.
  ASSERT_TRUE(cache.erase("k"));
  auto done = queue.unavailable("k");
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(t->outcome, Outcome::stale);
  EXPECT_EQ(queue.waiting(), 0u);
}

TEST(AdmissionQueue, EvictionForOneTicketMakesAnotherThatKeptItStale) {
  cache::ResidentCache cache(2048, 1024);
  AdmissionQueue queue(cache);
  PutLeased(cache, "k", 1024);
  PutLeased(cache, "held", 1024);
  auto first = Ticket({Claim(1024)});
  auto second = Ticket({Claim(1024)}, {"k"});
  EXPECT_TRUE(queue.submit(first).empty());
  EXPECT_TRUE(queue.submit(second).empty());
  cache.release("k");
  auto done = queue.pump();  // first evicts "k", which second kept
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(first->outcome, Outcome::served);
  EXPECT_EQ(first->evicted, (std::vector<std::string>{"k"}));
  EXPECT_EQ(second->outcome, Outcome::stale);
}

// Two tickets served in one pump: the second must not evict what the first
// keeps, which the coordinator leases only after the pump returns.
TEST(AdmissionQueue, ALaterTicketOfOnePumpDoesNotEvictWhatAnEarlierOneKeeps) {
  cache::ResidentCache cache(3072, 1024);
  AdmissionQueue queue(cache);
  PutLeased(cache, "k", 1024);
  PutLeased(cache, "held", 1024);
  PutLeased(cache, "x", 1024);
  auto first = Ticket({Claim(1024)}, {"k"});
  auto second = Ticket({Claim(1024)});
  EXPECT_TRUE(queue.submit(first).empty());
  EXPECT_TRUE(queue.submit(second).empty());
  cache.release("held");
  cache.release("k");
  auto done = queue.pump();  // first evicts "held"; "k" is first's to lease
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(done[0], first);
  EXPECT_EQ(first->outcome, Outcome::served);
  EXPECT_EQ(first->evicted, (std::vector<std::string>{"held"}));
  EXPECT_TRUE(cache.find("k")) << "evicted before the first ticket's lease on it";
  EXPECT_EQ(second->outcome, Outcome::waiting);
  EXPECT_EQ(queue.waiting(), 1u);
}

}  // namespace
}  // namespace genomed::loader
