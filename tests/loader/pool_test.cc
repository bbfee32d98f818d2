// The pool on a FakeWaitClock, with real genome-worker processes made to
// hang or crash by the test-only fault injection: job deadlines (and, on a
// RunClock over the fake clock, the pause that is not charged to them), the
// kill grace, the restart backoff, the unhealthy window and run()'s own
// wait are measured by the clock the test moves. Before each expiry the test waits for the pool to sleep until
// exactly that instant (await_sleeper_until) and checks that nothing has
// happened yet. No sleeps and no timing assertions: real time only bounds
// a hang (kHang).
#include "loader/pool.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <future>
#include <memory>
#include <string>
#include <vector>

#include "common/run_clock.h"
#include "jobs/job_protocol.h"
#include "tests/loader/fake_clock.h"
#include "tools/testkit/eventually.h"
#include "tools/testkit/proc.h"
#include "worker/fault.h"

namespace genomed::loader {
namespace {

using genomed::testing::FakeWaitClock;
using genomed::testkit::eventually;
using namespace std::chrono_literals;

// Real time after which a wait for the pool counts as a hang (a test failure).
constexpr auto kHang = 10s;

// What run() answered, and the fate of the job's worker.
struct Ran {
  Result<std::string> result = Status(Errc::internal, "not run");
  JobFate fate;
};

// Whether a worker_gone is ready (false when run() gave none: it hung).
bool ready(const std::shared_future<void>& f, std::chrono::seconds within = 0s) {
  return f.valid() && f.wait_for(within) == std::future_status::ready;
}

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    arena_fd_ = ::memfd_create("pool-test-arena", MFD_CLOEXEC);
    ASSERT_GE(arena_fd_, 0);
    ASSERT_EQ(::ftruncate(arena_fd_, 1 << 20), 0);
  }
  void TearDown() override {
    // A failed test may leave a slot waiting out a kill grace on the clock.
    if (HasFailure()) {
      clock_.release_ready_waits();  // a slot held as if genomed were stopped
      clock_.advance(24h);
      if (run_clock_) run_clock_->beat();  // else a pause: a RunClock would charge 150 ms of it
    }
    if (pool_) pool_->stop();  // answers every run() still waiting
    if (arena_fd_ >= 0) ::close(arena_fd_);
  }

  // One worker that performs `fault` (ACTION@STAGE, see worker/fault.h).
  PoolOptions options(const std::string& fault = "") {
    PoolOptions o;
    o.worker_executable = GENOMED_WORKER_PATH;
    o.workers = 1;
    o.arena_fd = arena_fd_;
    if (!fault.empty()) o.worker_extra_args = {"--fault", fault};
    return o;
  }
  // The pool on clock_ itself, or (`run_clock`) on a RunClock over it, as
  // genomed runs it: the test is then its heartbeat (run_for, pause).
  void start(PoolOptions o, bool run_clock = false) {
    if (!o.worker_extra_args.empty() && !jobs::fault_injection_built())
      FAIL() << "needs a build with -DGENOMED_FAULT_INJECTION=ON (scripts/test.sh configures it)";
    if (run_clock) run_clock_ = std::make_unique<RunClock>(clock_, kBeat, kSlack);
    pool_ = std::make_unique<Pool>(std::move(o),
                                   run_clock_ ? static_cast<WaitClock&>(*run_clock_) : clock_);
    ASSERT_TRUE(pool_->start().ok());
    ASSERT_EQ(pool_->worker_pids().size(), 1u);
  }

  // A probe of an adapter that does not exist: a healthy worker answers it
  // with an error reply, which is still a reply (the pool does not read it).
  static jobs::Job probe() {
    jobs::Job job;
    job.paths = {"/nonexistent/pool-test/adapter_config.json",
                 "/nonexistent/pool-test/adapter_model.safetensors"};
    // A probe carries its two open files; the faults fire before either is
    // read, so any readable descriptors do.
    auto files = std::make_shared<layout::AdapterFds>();
    files->config = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    files->weights = Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    job.files = std::move(files);
    return job;
  }

  // run() on a thread of its own. The fixture keeps a copy of the future,
  // so a run() that hangs is joined only after TearDown's stop().
  std::shared_future<Ran> run_async(Clock::time_point deadline,
                                    std::shared_ptr<CancelToken> cancel = nullptr) {
    runs_.push_back(std::async(std::launch::async, [this, deadline, cancel] {
                      Ran r;
                      r.result = pool_->run(probe(), deadline, &r.fate, cancel);
                      return r;
                    }).share());
    return runs_.back();
  }
  static bool pending(const std::shared_future<Ran>& f) {
    return f.wait_for(0s) == std::future_status::timeout;
  }
  // The answer; an internal error if none came (a hang).
  static Ran answer(const std::shared_future<Ran>& f) {
    if (f.wait_for(kHang) != std::future_status::ready) {
      ADD_FAILURE() << "run() did not return";
      return Ran{};
    }
    return f.get();
  }

  // genomed running for `d`: time moves in heartbeats, each looked at.
  void run_for(std::chrono::milliseconds d) {
    for (auto left = d; left > 0ms; left -= kBeat) {
      clock_.advance(std::min(left, kBeat));
      run_clock_->beat();
    }
  }

  static constexpr std::chrono::milliseconds kBeat{50};
  static constexpr std::chrono::milliseconds kSlack{100};
  int arena_fd_ = -1;
  std::vector<std::shared_future<Ran>> runs_;
  FakeWaitClock clock_;                   // outlives the pool
  std::unique_ptr<RunClock> run_clock_;  // over clock_; null unless start() asked for it
  std::unique_ptr<Pool> pool_;
};

TEST_F(PoolTest, AJobOnAHungWorkerTimesOutWhenTheClockPassesItsDeadline) {
  ASSERT_NO_FATAL_FAILURE(start(options("hang@probe")));
  const auto t0 = clock_.now();
  auto job = run_async(t0 + 250ms);
  // Watched in slices of 100 ms of the clock, then the rest of the budget.
  for (const auto slice_end : {t0 + 100ms, t0 + 200ms}) {
    ASSERT_TRUE(clock_.await_sleeper_until(slice_end));
    EXPECT_TRUE(pending(job));
    clock_.advance(100ms);
  }
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 250ms));
  EXPECT_TRUE(pending(job)) << "answered before the clock reached its deadline";
  clock_.advance(50ms);

  const Ran r = answer(job);
  EXPECT_EQ(r.result.code(), Errc::timeout) << r.result.status().to_string();
  EXPECT_TRUE(r.fate.worker_died);
  EXPECT_EQ(r.fate.blame, Blame::adapter);
  // SIGTERM ends the hung worker at once: the grace is not waited out.
  EXPECT_TRUE(ready(r.fate.worker_gone, kHang));
  EXPECT_EQ(pool_->stats().worker_timeouts, 1u);
}

// A pause of genomed (no heartbeat for 10 s) costs a running job only
// beat + slack (150 ms) of its budget; a hung worker is still stopped once
// genomed has run for the rest of it.
TEST_F(PoolTest, APauseOfTheSupervisorIsNotChargedToTheJob) {
  ASSERT_NO_FATAL_FAILURE(start(options("hang@probe"), /*run_clock=*/true));
  const auto t0 = clock_.now();
  auto job = run_async(t0 + 300ms);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 100ms));
  clock_.advance(10s);  // genomed stopped: no heartbeat
  run_clock_->beat();   // the first look once it runs again
  EXPECT_EQ(run_clock_->paused(), 10s - kBeat - kSlack);
  // 150 ms charged, 150 ms left: the next slice ends 100 ms later.
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 10s + 100ms)) << "the pause was charged";
  EXPECT_TRUE(pending(job));
  run_for(100ms);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 10s + 150ms));
  EXPECT_TRUE(pending(job));
  run_for(50ms);
  EXPECT_EQ(answer(job).result.code(), Errc::timeout);
}

// The measured case of issue 19: genomed stopped for 5 s with 2 s job
// deadlines; its only worker answered the running job meanwhile and a
// second job was queued behind it. When genomed runs again the waiting
// reply is taken and the queued job runs: neither is timed out, because the
// queue's wait (run()'s and the slot's check when it takes the job) is
// measured on the RunClock too. On the steady clock as is, the queued job
// got `timeout` ("no worker became free ... before the deadline").
TEST_F(PoolTest, AQueuedJobBehindAReplyThatArrivedDuringAPauseIsNotTimedOut) {
  ASSERT_NO_FATAL_FAILURE(start(options(), /*run_clock=*/true));
  const pid_t pid = pool_->worker_pids()[0];
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);  // it answers only once let go
  const auto t0 = clock_.now();
  auto running = run_async(t0 + 2s);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 100ms));  // sent; the slot watches it
  auto queued = run_async(t0 + 2s);
  ASSERT_TRUE(eventually([&] { return pool_->stats().queue_depth == 1; }));
  // genomed stops; its worker replies meanwhile (the slot finds the reply
  // ready and is held there, as by SIGSTOP); 5 s pass with no heartbeat.
  clock_.hold_ready_waits();
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  ASSERT_TRUE(clock_.await_held_waits(1));
  clock_.advance(5s);  // wakes run()'s waits (until deadline + 250 ms) first
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 5s + 2s + 250ms - kBeat - kSlack))
      << "run()'s wait did not resume for the rest of its time";
  EXPECT_TRUE(pending(queued));
  EXPECT_EQ(pool_->stats().queue_depth, 1u) << "withdrawn from the queue by the pause";
  clock_.release_ready_waits();
  run_clock_->beat();

  const Ran first = answer(running);
  EXPECT_TRUE(first.result.ok()) << first.result.status().to_string();
  const Ran second = answer(queued);
  EXPECT_TRUE(second.result.ok()) << "the queued job was timed out by genomed's own pause: "
                                  << second.result.status().to_string();
  EXPECT_FALSE(second.fate.worker_died);
  const PoolStats s = pool_->stats();
  EXPECT_EQ(s.worker_timeouts, 0u);
  EXPECT_EQ(s.worker_restarts, 0u);
  EXPECT_EQ(s.jobs_run, 2u);
  EXPECT_EQ(pool_->worker_pids(), std::vector<int>{pid});
}

TEST_F(PoolTest, AWorkerThatCannotActOnSigtermIsKilledWhenTheClockPassesTheGrace) {
  PoolOptions o = options("hang@probe");
  o.kill_grace = 1000ms;
  ASSERT_NO_FATAL_FAILURE(start(o));
  const pid_t pid = pool_->worker_pids()[0];
  const testkit::ProcessRef worker = testkit::ref_of(pid);
  const auto t0 = clock_.now();
  auto job = run_async(t0 + 100ms);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 100ms));
  // Stopped, the worker leaves SIGTERM pending: only SIGKILL ends it.
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);
  ASSERT_TRUE(eventually([&] { return testkit::process_state(pid) == 'T'; }));
  clock_.advance(100ms);
  const Ran r = answer(job);
  ASSERT_EQ(r.result.code(), Errc::timeout) << r.result.status().to_string();

  const auto grace_end = t0 + 100ms + 1000ms;
  ASSERT_TRUE(clock_.await_sleeper_until(grace_end));
  EXPECT_TRUE(testkit::alive(worker));
  EXPECT_FALSE(ready(r.fate.worker_gone));
  clock_.advance(999ms);
  ASSERT_TRUE(clock_.await_sleeper_until(grace_end)) << "killed before the grace ended";
  EXPECT_TRUE(testkit::alive(worker));
  EXPECT_FALSE(ready(r.fate.worker_gone));
  clock_.advance(1ms);
  ASSERT_TRUE(ready(r.fate.worker_gone, kHang));
  EXPECT_FALSE(testkit::alive(worker));
}

TEST_F(PoolTest, ACrashedWorkerIsReplacedWhenTheClockPassesItsBackoff) {
  PoolOptions o = options("crash@probe");
  o.restart.backoff_first = 1000ms;
  ASSERT_NO_FATAL_FAILURE(start(o));
  const pid_t first = pool_->worker_pids()[0];
  const auto t0 = clock_.now();
  JobFate fate;
  EXPECT_EQ(pool_->run(probe(), t0 + 60s, &fate).code(), Errc::worker_crashed);
  EXPECT_EQ(fate.blame, Blame::adapter);
  ASSERT_TRUE(ready(fate.worker_gone, kHang));

  const auto next_spawn = t0 + 1000ms;
  ASSERT_TRUE(clock_.await_sleeper_until(next_spawn));
  EXPECT_EQ(pool_->stats().workers_alive, 0u);
  EXPECT_TRUE(pool_->worker_pids().empty());
  clock_.advance(999ms);
  ASSERT_TRUE(clock_.await_sleeper_until(next_spawn)) << "replaced before its backoff ended";
  EXPECT_EQ(pool_->stats().workers_alive, 0u);
  clock_.advance(1ms);
  ASSERT_TRUE(eventually([&] { return pool_->stats().workers_alive == 1; }));
  const auto pids = pool_->worker_pids();
  ASSERT_EQ(pids.size(), 1u);
  EXPECT_NE(pids[0], first);
  EXPECT_EQ(pool_->stats().worker_crashes, 1u);
}

TEST_F(PoolTest, TheUnhealthyWindowIsMeasuredByTheClock) {
  PoolOptions o = options("crash@probe");
  o.restart.max_restarts = 0;  // the first restart pauses spawning
  o.restart.period = 30s;
  o.restart.backoff_first = 10ms;
  ASSERT_NO_FATAL_FAILURE(start(o));
  const auto t0 = clock_.now();
  JobFate fate;
  EXPECT_EQ(pool_->run(probe(), t0 + 60s, &fate).code(), Errc::worker_crashed);
  ASSERT_TRUE(ready(fate.worker_gone, kHang));

  PoolStats s = pool_->stats();
  EXPECT_FALSE(s.healthy);
  EXPECT_EQ(s.unhealthy_ms_left, 30'000);  // the clock stands still
  EXPECT_EQ(pool_->run(probe(), t0 + 60s).code(), Errc::unhealthy);
  // The replacement waits for the end of the pause, not for its 10 ms backoff.
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s));
  clock_.advance(29'999ms);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 30s));
  s = pool_->stats();
  EXPECT_FALSE(s.healthy);
  EXPECT_EQ(s.unhealthy_ms_left, 1);
  EXPECT_EQ(s.workers_alive, 0u);
  clock_.advance(1ms);
  ASSERT_TRUE(eventually([&] { return pool_->stats().workers_alive == 1; }));
  EXPECT_TRUE(pool_->stats().healthy);
}

TEST_F(PoolTest, AReplyWaitingWhenTheDeadlineIsCheckedIsTaken) {
  ASSERT_NO_FATAL_FAILURE(start(options()));
  const pid_t pid = pool_->worker_pids()[0];
  ASSERT_EQ(::kill(pid, SIGSTOP), 0);  // it answers only once let go
  const auto t0 = clock_.now();
  auto job = run_async(t0 + 100ms);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 100ms));  // sent; the slot watches it
  // The slot stands still (as genomed under SIGSTOP) once its worker's
  // reply is on the socket, while the clock passes the job's deadline.
  clock_.hold_ready_waits();
  ASSERT_EQ(::kill(pid, SIGCONT), 0);
  ASSERT_TRUE(clock_.await_held_waits(1));
  clock_.advance(150ms);  // within a slice + the slack: charged in full
  clock_.release_ready_waits();

  const Ran r = answer(job);
  EXPECT_TRUE(r.result.ok()) << "discarded as late: " << r.result.status().to_string();
  EXPECT_FALSE(r.fate.worker_died);
  const PoolStats s = pool_->stats();
  EXPECT_EQ(s.worker_timeouts, 0u);
  EXPECT_EQ(s.worker_restarts, 0u);
  EXPECT_EQ(pool_->worker_pids(), std::vector<int>{pid});
}

TEST_F(PoolTest, CancellingARunningJobAnswersWithoutTheClockMoving) {
  ASSERT_NO_FATAL_FAILURE(start(options("hang@probe")));
  const testkit::ProcessRef worker = testkit::ref_of(pool_->worker_pids()[0]);
  auto token = std::make_shared<CancelToken>();
  const auto t0 = clock_.now();
  auto job = run_async(t0 + 60s, token);
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 100ms));  // running: the slot watches its worker
  pool_->cancel(*token);

  const Ran r = answer(job);
  EXPECT_EQ(r.result.code(), Errc::cancelled) << r.result.status().to_string();
  EXPECT_TRUE(r.fate.worker_died);
  EXPECT_EQ(r.fate.blame, Blame::none);
  ASSERT_TRUE(ready(r.fate.worker_gone, kHang));  // SIGTERM ended it, within the grace
  EXPECT_FALSE(testkit::alive(worker));
  // Nobody's failure: replaced at once, outside the backoff.
  ASSERT_TRUE(eventually([&] { return pool_->stats().workers_alive == 1; }));
  const PoolStats s = pool_->stats();
  EXPECT_EQ(s.worker_timeouts, 0u);
  EXPECT_EQ(s.worker_crashes, 0u);
}

TEST_F(PoolTest, AQueuedJobTimesOutWhenTheClockPassesItsDeadline) {
  ASSERT_NO_FATAL_FAILURE(start(options("hang@probe")));
  const auto t0 = clock_.now();
  auto busy = run_async(t0 + 60s);  // holds the only worker
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 100ms));
  auto queued = run_async(t0 + 100ms);
  // run() waits for a queued job until its deadline + 250 ms.
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 350ms));
  EXPECT_EQ(pool_->stats().queue_depth, 1u);
  EXPECT_TRUE(pending(queued));
  clock_.advance(350ms);
  const Ran r = answer(queued);
  EXPECT_EQ(r.result.code(), Errc::timeout) << r.result.status().to_string();
  EXPECT_FALSE(r.fate.worker_died);
  EXPECT_EQ(pool_->stats().queue_depth, 0u);

  pool_->stop();  // interrupts the hung job
  EXPECT_EQ(answer(busy).result.code(), Errc::shutting_down);
}

TEST_F(PoolTest, AQueuedJobOfHigherPriorityIsTakenFirstFifoWithinOne) {
  ASSERT_NO_FATAL_FAILURE(start(options("hang@probe")));
  const auto t0 = clock_.now();
  auto busy_token = std::make_shared<CancelToken>();
  auto busy = run_async(t0 + 60s, busy_token);  // holds the only worker
  ASSERT_TRUE(clock_.await_sleeper_until(t0 + 100ms));
  auto low = std::make_shared<CancelToken>();  // Priority::low (0) until raised
  auto high = std::make_shared<CancelToken>();
  high->raise_priority(2);
  high->raise_priority(1);  // never lowered
  EXPECT_EQ(high->priority(), 2);
  auto first_low = run_async(t0 + 60s, low);
  ASSERT_TRUE(eventually([&] { return pool_->stats().queue_depth == 1; }));
  auto later_high = run_async(t0 + 60s, high);
  ASSERT_TRUE(eventually([&] { return pool_->stats().queue_depth == 2; }));

  pool_->cancel(*busy_token);  // the worker is replaced and takes the next job
  EXPECT_EQ(answer(busy).result.code(), Errc::cancelled);
  ASSERT_TRUE(eventually([&] {
    const PoolStats s = pool_->stats();
    return s.workers_alive == 1 && s.workers_busy == 1 && s.queue_depth == 1;
  }));
  // The low one, queued first, is still queued: cancelling it kills no worker.
  pool_->cancel(*low);
  const Ran r = answer(first_low);
  EXPECT_EQ(r.result.code(), Errc::cancelled);
  EXPECT_FALSE(r.fate.worker_died) << "the earlier low-priority job was taken before the high one";
  EXPECT_TRUE(pending(later_high)) << "the high one runs (and hangs)";
  pool_->stop();
  EXPECT_EQ(answer(later_high).result.code(), Errc::shutting_down);
}

}  // namespace
}  // namespace genomed::loader
