// Flights (loader/flight.h): the phase only moves forward, and a flight of
// a name runs only once every earlier flight of that name has ended.
#include "loader/flight.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <memory>
#include <thread>

namespace genomed::loader {
namespace {

using Phase = Flight::Phase;

TEST(FlightTest, ItsResultIsDecidedOnceAndItsPhaseOnlyMovesForward) {
  Flight f;
  EXPECT_FALSE(f.decided());
  EXPECT_TRUE(f.decide(Status(Errc::cancelled, "unloaded")));
  EXPECT_TRUE(f.decided());
  // A later outcome (the flight's own failure) does not overwrite it.
  EXPECT_FALSE(f.decide(Status(Errc::timeout, "late")));
  EXPECT_EQ(f.result.code(), Errc::cancelled);
  f.phase = Phase::finished;
  EXPECT_FALSE(f.decide(Status::Ok()));
  EXPECT_EQ(f.result.code(), Errc::cancelled);
}

TEST(FlightTest, ASecondFlightOfANameWaitsForTheFirstToEnd) {
  Mutex mu;
  FlightThreads threads(mu);
  auto first = std::make_shared<Flight>();
  auto second = std::make_shared<Flight>();
  auto other = std::make_shared<Flight>();
  first->name = second->name = "a";
  other->name = "b";
  std::condition_variable release_first;
  bool first_may_end = false;
  Phase first_seen_by_second = Phase::running;
  const auto finish = [&](Flight& f) {
    MutexLock l(mu);
    f.phase = Phase::finished;
  };
  {
    MutexLock lock(mu);
    threads.start(first, [&] {
      {
        MutexLock l(mu);
        l.wait(release_first, [&] { return first_may_end; });
      }
      finish(*first);
    });
    threads.start(second, [&] {
      {
        // As Coordinator::await_predecessors: the first, ending, wakes it.
        MutexLock l(mu);
        l.wait(second->cv, [&] { return second->predecessors_ended(); });
        first_seen_by_second = first->phase;
      }
      finish(*second);
    });
    threads.start(other, [&] { finish(*other); });
    ASSERT_EQ(second->predecessors.size(), 1u);
    EXPECT_EQ(second->predecessors[0], first);
    EXPECT_TRUE(other->predecessors.empty()) << "another name's flights are not in its chain";
    EXPECT_FALSE(second->predecessors_ended());
    threads.check_invariants();
    first_may_end = true;
    release_first.notify_all();
  }
  std::map<std::uint64_t, std::thread> started;
  {
    MutexLock lock(mu);
    started = threads.take_threads();
  }
  for (auto& [id, t] : started) t.join();
  MutexLock lock(mu);
  EXPECT_EQ(first->phase, Phase::ended);
  EXPECT_EQ(second->phase, Phase::ended);
  EXPECT_EQ(other->phase, Phase::ended);
  threads.check_invariants();
  EXPECT_EQ(first_seen_by_second, Phase::ended);
  EXPECT_TRUE(first->predecessors.empty() && second->predecessors.empty());
}

}  // namespace
}  // namespace genomed::loader
