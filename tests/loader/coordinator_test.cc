// The coordinator on a fake clock and an in-process job runner: admission,
// batches, cancellation and the one-load-per-name rule, with every deadline
// driven by FakeWaitClock::advance (no real waiting, no sleeps).
#include "loader/coordinator.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "layout/tensor_checksum.h"
#include "tests/loader/coordinator_fixture.h"
#include "tools/testkit/eventually.h"

namespace genomed::loader {
namespace {

using genomed::testing::Async;
using genomed::testing::CoordinatorTest;
using Kind = jobs::JobKind;
using namespace std::chrono_literals;

using genomed::testkit::eventually;

TEST_F(CoordinatorTest, TheAdmissionTimeoutIsMeasuredByItsClock) {
  const std::uint64_t one = footprint();
  add("a", 1);
  add("b", 2);
  start(one, {.admission_timeout = 60s});
  auto a = coordinator_->acquire({"a"}, 1);
  ASSERT_TRUE(a.ok()) << a.status().to_string();

  Result<ipc::AcquireReply> b = Status(Errc::internal, "not run");
  const auto t0 = clock_.now();
  std::thread t([&] { b = coordinator_->acquire({"b"}, 2); });
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 60s));  // the request, on its ticket
  EXPECT_EQ(stat("admission_waiting"), 1u);
  clock_.advance(60s);
  t.join();
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.code(), Errc::no_space) << b.status().to_string();
  // The refused request leaves nothing behind: its load was cancelled.
  const auto list = coordinator_->list();
  ASSERT_EQ(list.adapters.size(), 1u);
  EXPECT_EQ(list.adapters[0].name, "a");
  EXPECT_EQ(stat("admission_waiting"), 0u);
}

TEST_F(CoordinatorTest, AConnectionHoldsAtMostItsLeaseLimit) {
  const std::uint64_t one = footprint();
  add("a", 1);
  start(4 * one, {.max_leases_per_connection = 3});
  auto two = coordinator_->acquire({"a", "a"}, 1);
  ASSERT_TRUE(two.ok()) << two.status().to_string();
  auto over = coordinator_->acquire({"a", "a"}, 1);
  ASSERT_EQ(over.code(), Errc::limit_exceeded) << over.status().to_string();
  EXPECT_NE(over.status().message().find("--max-leases-per-connection"), std::string::npos)
      << over.status().message();
  EXPECT_TRUE(coordinator_->acquire({"a"}, 2).ok()) << "another connection has its own limit";
  EXPECT_TRUE(coordinator_->acquire({"a"}, 1).ok()) << "up to the limit";
  EXPECT_EQ(coordinator_->acquire({"a"}, 1).code(), Errc::limit_exceeded);
  EXPECT_TRUE(coordinator_->release(two->grants[0].lease, 1));
  EXPECT_TRUE(coordinator_->acquire({"a"}, 1).ok()) << "a released lease makes room";
  EXPECT_EQ(stat("leases_active"), 4u);
}

TEST_F(CoordinatorTest, ListComesInPagesInNameOrder) {
  const std::uint64_t one = footprint();
  for (const char* name : {"e", "a", "d", "c", "b"}) add(name, name[0]);
  start(8 * one);
  for (const char* name : {"e", "a", "d", "c", "b"})
    ASSERT_TRUE(coordinator_->load(name).ok()) << name;
  const auto names = [](const ipc::ListReply& r) {
    std::string out;
    for (const auto& a : r.adapters) out += a.name;
    return out;
  };
  const auto p1 = coordinator_->list("", 2);
  EXPECT_EQ(names(p1), "ab");
  ASSERT_EQ(p1.next, std::optional<std::string>("b"));
  const auto p2 = coordinator_->list(*p1.next, 2);
  EXPECT_EQ(names(p2), "cd");
  ASSERT_EQ(p2.next, std::optional<std::string>("d"));
  const auto p3 = coordinator_->list(*p2.next, 2);
  EXPECT_EQ(names(p3), "e");
  EXPECT_FALSE(p3.next.has_value());
  const auto whole = coordinator_->list("", 5);
  EXPECT_EQ(names(whole), "abcde");
  EXPECT_FALSE(whole.next.has_value()) << "no empty page after a full last one";
  EXPECT_EQ(names(coordinator_->list("bb", 2)), "cd") << "a cursor need not be a listed name";
}

TEST_F(CoordinatorTest, TwoBatchesWithRoomForOneNeverHoldHalfEach) {
  const std::uint64_t one = footprint();
  for (const auto& [name, seed] :
       std::vector<std::pair<std::string, int>>{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}})
    add(name, seed);
  start(2 * one, {.admission_timeout = 60s});
  runner_->hold(Kind::fill);
  const auto t0 = clock_.now();

  std::mutex mu;
  std::condition_variable finished;
  std::vector<int> order;
  std::vector<Result<ipc::AcquireReply>> replies;
  for (int i = 0; i < 2; ++i) replies.emplace_back(Status(Errc::internal, "not run"));
  const std::vector<std::vector<std::string>> batches{{"a", "b"}, {"c", "d"}};
  std::vector<std::thread> threads;
  for (int i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      auto r = coordinator_->acquire(batches[i], static_cast<ConnectionId>(i + 1));
      std::lock_guard g(mu);
      replies[i] = std::move(r);
      order.push_back(i);
      finished.notify_all();
    });
  }
  // One batch was admitted whole and fills; the other waits holding nothing.
  ASSERT_TRUE(runner_->await_started(Kind::fill, 2));
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 60s));  // the other request, on its ticket
  EXPECT_EQ(stat("admission_waiting"), 1u);
  EXPECT_EQ(stat("leases_active"), 0u);
  EXPECT_EQ(stat("bytes_reserved"), 2 * one);

  runner_->let_go(Kind::fill);
  std::unique_lock lock(mu);
  ASSERT_TRUE(finished.wait_for(lock, 10s, [&] { return order.size() == 1; }));
  const int first = order[0];
  ASSERT_TRUE(replies[first].ok()) << replies[first].status().to_string();
  EXPECT_EQ(replies[first]->grants.size(), 2u);
  EXPECT_EQ(stat("admission_waiting"), 1u) << "the other batch must still wait";
  // Its leases end: the other batch is admitted whole and loads.
  for (const auto& g : replies[first]->grants)
    coordinator_->release(g.lease, static_cast<ConnectionId>(first + 1));
  ASSERT_TRUE(finished.wait_for(lock, 10s, [&] { return order.size() == 2; }));
  lock.unlock();
  for (auto& t : threads) t.join();
  const int second = 1 - first;
  ASSERT_TRUE(replies[second].ok()) << replies[second].status().to_string();
  EXPECT_EQ(replies[second]->grants.size(), 2u);
  EXPECT_EQ(stat("loads_started"), 4u);  // no adapter was loaded twice
  EXPECT_EQ(stat("request_restarts"), 0u);
}

TEST_F(CoordinatorTest, UnloadOfALoadingAdapterStopsItsJob) {
  add("a", 1);
  start(footprint() * 2);
  runner_->hold(Kind::probe);
  Result<ipc::AcquireReply> r = Status(Errc::internal, "not run");
  std::thread t([&] { r = coordinator_->acquire({"a"}, 1); });
  ASSERT_TRUE(runner_->await_started(Kind::probe, 1));
  auto unloaded = coordinator_->unload("a");
  ASSERT_TRUE(unloaded.ok());
  EXPECT_EQ(unloaded->outcome, "cancelled");
  t.join();
  EXPECT_EQ(r.code(), Errc::cancelled) << r.status().to_string();
  EXPECT_TRUE(runner_->await_cancelled(1)) << "the job itself was not stopped";
  EXPECT_TRUE(coordinator_->list().adapters.empty());
}

// A worker that ignores its stop keeps its load from ending; a reload of the
// name runs no job beside it and gives up after load_timeout on the clock.
TEST_F(CoordinatorTest, AReloadNeverRunsBesideAStuckLoadOfTheSameName) {
  add("a", 1);
  start(footprint() * 2, {.load_timeout = 30s});
  runner_->hold(Kind::probe);
  runner_->ignore_cancellation(true);
  Result<ipc::AcquireReply> first = Status(Errc::internal, "not run");
  std::thread t1([&] { first = coordinator_->acquire({"a"}, 1); });
  ASSERT_TRUE(runner_->await_started(Kind::probe, 1));
  ASSERT_TRUE(coordinator_->unload("a").ok());
  t1.join();
  EXPECT_EQ(first.code(), Errc::cancelled);

  Result<ipc::AcquireReply> second = Status(Errc::internal, "not run");
  const auto t0 = clock_.now();
  std::thread t2([&] { second = coordinator_->acquire({"a"}, 2); });
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s));  // the new load, on its predecessor
  EXPECT_EQ(runner_->started(Kind::probe), 1);
  clock_.advance(30s);
  t2.join();
  EXPECT_EQ(second.code(), Errc::timeout) << second.status().to_string();
  EXPECT_EQ(runner_->started(Kind::probe), 1) << "a second probe ran beside the stuck one";
  runner_->let_go(Kind::probe);
}

// --- red team ---------------------------------------------------------------

// A request whose one load already got its range through another request's
// ticket needs no room at all. Its own ticket must not wait behind an
// unrelated head that cannot fit: here a LOAD of `a` behind a batch [b, c]
// that waits for two slots. `a` is loaded and resident, yet the LOAD waits
// for the full admission timeout and then reports no_space.
TEST_F(CoordinatorTest, RedTeamATicketNeedingNoRoomDoesNotWaitBehindABlockedHead) {
  const std::uint64_t one = footprint();
  for (const auto& [name, seed] :
       std::vector<std::pair<std::string, int>>{{"x", 1}, {"y", 2}, {"a", 3}, {"b", 4}, {"c", 5}})
    add(name, seed);
  start(2 * one, {.admission_timeout = 60s});
  auto x = coordinator_->acquire({"x"}, 9);
  ASSERT_TRUE(x.ok()) << x.status().to_string();
  auto y = coordinator_->acquire({"y"}, 8);
  ASSERT_TRUE(y.ok()) << y.status().to_string();

  const auto t0 = clock_.now();
  Async<Result<ipc::AcquireReply>> first([&] { return coordinator_->acquire({"a"}, 1); });
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 60s));  // on its ticket (the head)
  clock_.advance(1ms);
  const auto t1 = clock_.now();
  Async<Result<ipc::AcquireReply>> batch([&] { return coordinator_->acquire({"b", "c"}, 2); });
  ASSERT_TRUE(clock_.await_sleeper_until(t1 + 60s));  // on its ticket, behind
  clock_.advance(1ms);
  const auto t2 = clock_.now();
  Async<Result<ipc::LoadReply>> load([&] { return coordinator_->load("a", 3); });
  ASSERT_TRUE(clock_.await_sleeper_until(t2 + 60s));  // joined a's load; ticket behind the batch
  EXPECT_EQ(stat("admission_waiting"), 3u);

  // One slot frees: the head (a) is served, the batch still does not fit.
  coordinator_->release(x->grants[0].lease, 9);
  // a's range is reserved: the LOAD needs no room any more, only the batch waits.
  EXPECT_EQ(stat("admission_waiting"), 1u)
      << "the LOAD, whose load already has its range, still waits for room behind [b, c]";
  ASSERT_TRUE(first.get().ok()) << first.get().status().to_string();  // a is published

  clock_.advance(60s);  // let everything still waiting time out
  EXPECT_TRUE(load.get().ok()) << load.get().status().to_string();
  EXPECT_EQ(batch.get().code(), Errc::no_space);
}

// Same set-up, continued: once the batch fits it evicts `a` (unleased,
// only "kept" by the waiting LOAD's ticket), the LOAD starts over and `a`
// is loaded a second time for one single-name request.
TEST_F(CoordinatorTest, RedTeamASingleNameRequestNeverLoadsItsAdapterTwice) {
  const std::uint64_t one = footprint();
  for (const auto& [name, seed] :
       std::vector<std::pair<std::string, int>>{{"x", 1}, {"y", 2}, {"a", 3}, {"b", 4}, {"c", 5}})
    add(name, seed);
  start(2 * one, {.admission_timeout = 60s});
  auto x = coordinator_->acquire({"x"}, 9);
  ASSERT_TRUE(x.ok()) << x.status().to_string();
  auto y = coordinator_->acquire({"y"}, 8);
  ASSERT_TRUE(y.ok()) << y.status().to_string();

  const auto t0 = clock_.now();
  Async<Result<ipc::AcquireReply>> first([&] { return coordinator_->acquire({"a"}, 1); });
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 60s));
  clock_.advance(1ms);
  const auto t1 = clock_.now();
  Async<Result<ipc::AcquireReply>> batch([&] { return coordinator_->acquire({"b", "c"}, 2); });
  ASSERT_TRUE(clock_.await_sleeper_until(t1 + 60s));
  clock_.advance(1ms);
  const auto t2 = clock_.now();
  Async<Result<ipc::AcquireReply>> second([&] { return coordinator_->acquire({"a"}, 3); });
  ASSERT_TRUE(clock_.await_sleeper_until(t2 + 60s));

  coordinator_->release(x->grants[0].lease, 9);
  ASSERT_TRUE(first.get().ok()) << first.get().status().to_string();
  // Counted when a load starts (a load's completion is counted only after
  // its waiters were woken).
  const std::uint64_t loads_before = stat("loads_started");  // x, y, a, b, c
  // Everything else lets go: the batch is served by evicting what is unleased.
  coordinator_->release(first.get()->grants[0].lease, 1);
  coordinator_->release(y->grants[0].lease, 8);
  // Whichever finishes first lets go, so the other can finish.
  ASSERT_TRUE(eventually([&] { return second.done() || batch.done(); }));
  if (second.done()) {
    ASSERT_TRUE(second.get().ok()) << second.get().status().to_string();
    coordinator_->release(second.get()->grants[0].lease, 3);
    ASSERT_TRUE(batch.get().ok()) << batch.get().status().to_string();
    for (const auto& g : batch.get()->grants) coordinator_->release(g.lease, 2);
  } else {
    ASSERT_TRUE(batch.get().ok()) << batch.get().status().to_string();
    for (const auto& g : batch.get()->grants) coordinator_->release(g.lease, 2);
    ASSERT_TRUE(second.get().ok()) << second.get().status().to_string();
    coordinator_->release(second.get()->grants[0].lease, 3);
  }
  EXPECT_EQ(loads_before, 5u);
  EXPECT_EQ(stat("loads_started"), 5u) << "a was loaded twice for one single-name request";
  EXPECT_EQ(stat("leases_active"), 0u);
  EXPECT_EQ(stat("bytes_reserved"), 0u);
  EXPECT_EQ(stat("admission_waiting"), 0u);
}

// A batch whose kept (READY) names plus the ranges it still needs exceed the
// whole budget can never be admitted: keep forbids evicting what it holds.
// It must fail at once with too_large, not sit at the head of the FIFO for
// the admission timeout, blocking every request behind it.
TEST_F(CoordinatorTest, RedTeamABatchThatCanNeverFitFailsAtOnceAndBlocksNobody) {
  const std::uint64_t one = footprint();
  for (const auto& [name, seed] :
       std::vector<std::pair<std::string, int>>{{"a", 1}, {"b", 2}, {"c", 3}, {"d", 4}})
    add(name, seed);
  start(2 * one, {.admission_timeout = 60s});
  ASSERT_TRUE(coordinator_->load("a").ok());  // resident, unleased

  const auto t0 = clock_.now();
  Async<Result<ipc::AcquireReply>> big([&] { return coordinator_->acquire({"a", "b", "c"}, 1); });
  ASSERT_TRUE(eventually([&] { return big.done() || clock_.has_sleeper_until(t0 + 60s); }));
  EXPECT_TRUE(big.done()) << "[a, b, c] needs three slots of two; it waits at the head instead";
  // Someone else needing one slot (a is unleased and may be evicted).
  clock_.advance(1ms);
  const auto t1 = clock_.now();
  Async<Result<ipc::AcquireReply>> small([&] { return coordinator_->acquire({"d"}, 2); });
  ASSERT_TRUE(eventually([&] { return small.done() || clock_.has_sleeper_until(t1 + 60s); }));
  EXPECT_TRUE(small.done()) << "[d] fits but waits behind a batch that can never fit";

  clock_.advance(60s);
  EXPECT_EQ(big.get().code(), Errc::too_large) << big.get().status().to_string();
  ASSERT_TRUE(small.get().ok()) << small.get().status().to_string();
  coordinator_->release(small.get()->grants[0].lease, 2);
  EXPECT_EQ(stat("leases_active"), 0u);
  EXPECT_EQ(stat("bytes_reserved"), 0u);
  EXPECT_EQ(stat("admission_waiting"), 0u);
}

// A batch takes its ticket only when every one of its loads has probed. A
// load that probed early waits for its range only admission_timeout + 1 s
// from its own probe, then fails with no_space: a batch whose other probe
// is slow (queued behind other jobs, a large file) fails with no_space on an
// empty budget, before its own admission timeout even started.
TEST_F(CoordinatorTest, RedTeamASlowProbeInABatchDoesNotFailItsFastSibling) {
  const std::uint64_t one = footprint();
  add("a", 1);
  add("b", 2);
  start(8 * one, {.admission_timeout = 5s});
  runner_->hold_adapter("b");
  Async<Result<ipc::AcquireReply>> r([&] { return coordinator_->acquire({"a", "b"}, 1); });
  ASSERT_TRUE(runner_->await_started(Kind::probe, 2));
  // The request waits for the probes; a's load waits for a ticket.
  ASSERT_TRUE(eventually([&] { return clock_.sleepers() == 2; }));
  clock_.advance(6s);  // b's probe is slow
  runner_->let_go_adapter("b");
  auto& reply = r.get();
  ASSERT_TRUE(reply.ok()) << "an empty budget, yet: " << reply.status().to_string();
  for (const auto& g : reply->grants) coordinator_->release(g.lease, 1);
  EXPECT_EQ(stat("leases_active"), 0u);
  EXPECT_EQ(stat("bytes_reserved"), 0u);
}

// The files a load opened are read by every job; one rewritten in place
// between the probe and the fill (same header, other bytes) fails the load
// with file_changed rather than serve what the fill read, and leaves nothing
// behind: the next load reads the new version.
TEST_F(CoordinatorTest, AFileRewrittenInPlaceDuringItsLoadFailsItAndTheNextLoadReadsIt) {
  const std::uint64_t one = footprint();
  add("a", 1);
  add("v2", 2);  // the same shapes, other bytes
  start(4 * one);
  const std::string weights = root_ + "/a/" + layout::kWeightsFileName;
  std::string v2;
  {
    std::ifstream in(root_ + "/v2/" + layout::kWeightsFileName, std::ios::binary);
    v2.assign(std::istreambuf_iterator<char>(in), {});
  }
  runner_->hold(Kind::fill);
  Async<Result<ipc::AcquireReply>> r([&] { return coordinator_->acquire({"a"}, 1); });
  ASSERT_TRUE(runner_->await_started(Kind::fill, 1));
  {
    std::fstream out(weights, std::ios::in | std::ios::out | std::ios::binary);  // same inode
    out.write(v2.data(), static_cast<std::streamsize>(v2.size()));
  }
  runner_->let_go(Kind::fill);
  const auto& failed = r.get();
  ASSERT_EQ(failed.code(), Errc::file_changed) << failed.status().to_string();
  EXPECT_NE(failed.status().message().find(weights), std::string::npos)
      << failed.status().message();
  EXPECT_EQ(stat("loads_failed"), 1u);
  EXPECT_EQ(stat("bytes_reserved"), 0u);
  EXPECT_EQ(stat("quarantined"), 0u);

  auto again = coordinator_->acquire({"a"}, 1);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  const ipc::LeaseGrant& g = again->grants[0];
  const auto range = std::span<const std::byte>(runner_->arena().data + g.offset, g.length);
  auto layout = layout::read_layout_header(range);
  ASSERT_TRUE(layout.ok()) << layout.status().to_string();
  EXPECT_TRUE(layout::verify_checksums(*layout, range).ok());
  // The resident bytes are the new file's.
  auto files = format::open_adapter_files(
      {root_ + "/v2/" + layout::kConfigFileName, root_ + "/v2/" + layout::kWeightsFileName});
  ASSERT_TRUE(files.ok());
  auto header = format::read_safetensors_header(files->weights.get(), "v2");
  ASSERT_TRUE(header.ok());
  for (std::size_t i = 0; i < layout->tensors.size(); ++i) {
    const layout::ResidentTensor& t = layout->tensors[i];
    EXPECT_EQ(
        std::memcmp(range.data() + t.offset,
                    v2.data() + header->data_offset + header->tensors[i].data_begin, t.length),
        0)
        << t.name;
  }
  coordinator_->release(g.lease, 1);
}

// A fill split into parts leaves the header to one more job, the seal, which
// writes it with every checksum the parts reported; the copy then verifies.
TEST_F(CoordinatorTest, ASplitFillIsSealedWithEveryPartsChecksums) {
  ASSERT_TRUE(
      fixture::write_adapter(root_ + "/big",
                             {.rank = 64, .layers = 5, .hidden = 4096, .dtype = layout::DType::F16})
          .ok());
  start(32ull << 20, {.fill_parts = 3});
  auto r = coordinator_->acquire({"big"}, 1);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(runner_->started(Kind::fill), 3);
  EXPECT_EQ(runner_->started(Kind::seal), 1);
  const ipc::LeaseGrant& g = r->grants[0];
  const auto range = std::span<const std::byte>(runner_->arena().data + g.offset, g.length);
  auto layout = layout::read_layout_header(range);
  ASSERT_TRUE(layout.ok()) << layout.status().to_string();
  EXPECT_TRUE(layout::verify_checksums(*layout, range).ok());
  coordinator_->release(g.lease, 1);
}

// The verify step holds the header's checksums against the fill's reports.
TEST_F(CoordinatorTest, AFillWhoseReportedChecksumsDifferFromTheHeaderIsAWorkerProtocolError) {
  add("a", 1);
  start(4 * footprint());
  runner_->misreport_checksums(true);
  auto r = coordinator_->acquire({"a"}, 1);
  ASSERT_EQ(r.code(), Errc::worker_protocol) << r.status().to_string();
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos) << r.status().message();
  EXPECT_EQ(stat("bytes_reserved"), 0u);
  runner_->misreport_checksums(false);
  EXPECT_TRUE(coordinator_->acquire({"a"}, 1).ok());
}

}  // namespace
}  // namespace genomed::loader
