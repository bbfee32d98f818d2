// The probe budget on a fake clock: turns up to its slots at once, the rest
// wait for one to come back, their deadline, their cancellation or stop();
// and the header length it reads from a weights file's prefix.
#include "loader/probe_budget.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>

#include "tests/loader/fake_clock.h"

namespace genomed::loader {
namespace {

using genomed::testing::FakeWaitClock;
using namespace std::chrono_literals;

class ProbeBudgetTest : public ::testing::Test {
 protected:
  // take() on another thread.
  std::future<Result<ProbeBudget::Turn>> take_async(ProbeBudget& budget,
                                                    WaitClock::TimePoint deadline,
                                                    const CancelToken* cancel = nullptr) {
    return std::async(std::launch::async,
                      [&budget, deadline, cancel] { return budget.take(deadline, cancel); });
  }
  FakeWaitClock clock_;
};

TEST_F(ProbeBudgetTest, TurnsUpToItsSlotsAreGivenAtOnceAndTheNextWaitsForOneBack) {
  ProbeBudget budget(2, clock_);
  const auto deadline = clock_.now() + 30s;
  std::optional<Result<ProbeBudget::Turn>> first(budget.take(deadline, nullptr));
  auto second = budget.take(deadline, nullptr);
  ASSERT_TRUE(first->ok());
  ASSERT_TRUE(second.ok());

  auto third = take_async(budget, deadline);
  ASSERT_TRUE(clock_.await_sleeper_until(deadline));  // it waits for a turn
  EXPECT_EQ(budget.waiting(), 1u);
  first.reset();  // a turn comes back
  auto got = third.get();
  EXPECT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(budget.waiting(), 0u);
}

TEST_F(ProbeBudgetTest, WaitPastTheProbesDeadlineIsATimeout) {
  ProbeBudget budget(1, clock_);
  const auto deadline = clock_.now() + 30s;
  auto held = budget.take(deadline, nullptr);
  ASSERT_TRUE(held.ok());
  auto waiter = take_async(budget, deadline);
  ASSERT_TRUE(clock_.await_sleeper_until(deadline));
  clock_.advance(30s);
  const auto r = waiter.get();
  EXPECT_EQ(r.code(), Errc::timeout) << r.status().to_string();
  EXPECT_NE(r.status().message().find("large-header"), std::string::npos) << r.status().message();
}

TEST_F(ProbeBudgetTest, CancelledWaiterLeavesAtOnceWithoutATurn) {
  ProbeBudget budget(1, clock_);
  const auto deadline = clock_.now() + 30s;
  auto held = budget.take(deadline, nullptr);
  CancelToken token;
  auto waiter = take_async(budget, deadline, &token);
  ASSERT_TRUE(clock_.await_sleeper_until(deadline));
  token.fire();
  budget.wake();  // as LoadPipeline::cancel does after the pool fired the token
  EXPECT_EQ(waiter.get().code(), Errc::cancelled);
  EXPECT_EQ(budget.take(deadline, &token).code(), Errc::cancelled);
}

TEST_F(ProbeBudgetTest, StopFailsTheWaitersAndEveryLaterTake) {
  ProbeBudget budget(1, clock_);
  const auto deadline = clock_.now() + 30s;
  auto held = budget.take(deadline, nullptr);
  auto waiter = take_async(budget, deadline);
  ASSERT_TRUE(clock_.await_sleeper_until(deadline));
  budget.stop();
  EXPECT_EQ(waiter.get().code(), Errc::shutting_down);
  EXPECT_EQ(budget.take(deadline, nullptr).code(), Errc::shutting_down);
}

class DeclaredHeaderBytes : public ::testing::Test {
 protected:
  DeclaredHeaderBytes() {
    char templ[] = "/tmp/genomed-probe-budget-XXXXXX";
    dir_ = ::mkdtemp(templ);
  }
  ~DeclaredHeaderBytes() override { std::filesystem::remove_all(dir_); }
  std::string file(const std::string& name, std::uint64_t declared, std::size_t body) {
    const std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>(declared >> (8 * i)));
    out << std::string(body, ' ');
    return path;
  }
  std::string dir_;
};

TEST_F(DeclaredHeaderBytes, IsThePrefixCappedAtTheFile) {
  EXPECT_EQ(declared_header_bytes(file("a", 5000, 6000)), 5000u);
  EXPECT_EQ(declared_header_bytes(file("b", 1ull << 40, 100)), 100u);  // past the end
}

TEST_F(DeclaredHeaderBytes, IsZeroForWhatTheWorkerWillRefuse) {
  EXPECT_EQ(declared_header_bytes(dir_ + "/missing"), 0u);
  const std::string tiny = dir_ + "/tiny";
  std::ofstream(tiny) << "abc";
  EXPECT_EQ(declared_header_bytes(tiny), 0u);
  const std::string link = dir_ + "/link";
  std::filesystem::create_symlink(file("target", 5000, 6000), link);
  EXPECT_EQ(declared_header_bytes(link), 0u);
  const std::string fifo = dir_ + "/fifo";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_EQ(declared_header_bytes(fifo), 0u);  // and the open does not block
  EXPECT_EQ(declared_header_bytes(dir_), 0u);
}

}  // namespace
}  // namespace genomed::loader
