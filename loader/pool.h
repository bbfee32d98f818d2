// The pool of genome-worker processes. One slot thread per worker owns that
// worker: it spawns it, feeds it one job at a time from a shared bounded
// queue, and learns of its death from the process itself: the worker's end
// of the socketpair closes when it exits, which the slot sees as EOF whether
// the worker was busy or idle (an idle slot polls its worker's socket and
// the pool's wake-up eventfd together). The slot then reaps it (the only
// reaper), logs how it ended, and starts a replacement when the
// RestartPolicy allows.
//
// A job that outlives its deadline gets `timeout` at once; then its worker
// is stopped (SIGTERM, grace, SIGKILL) and replaced. Retrying a failed job is
// the caller's decision (the coordinator knows which adapter it was).
//
// Deadlines judge the worker, not the clock: a reply already waiting on the
// worker's socket is always taken before the deadline is checked, and time
// in which the supervisor itself did not run (SIGSTOP, a VM pause, a
// debugger) is not charged to a job, running or queued, because genomed's
// clock stands still then (common/run_clock.h).
//
// Time: the pool's time is the WaitClock it is given (common/wait_clock.h;
// genomed passes its RunClock over the steady clock). Every reading of the time and every
// timed wait goes through it: job deadlines and their watch slices, the
// kill grace, the restart backoff and the unhealthy window (RestartPolicy
// reads the same clock), run()'s wait for its result. So
// tests/loader/pool_test.cc runs real workers on a FakeWaitClock and moves
// time by hand: no sleeps, no timing assertions.
//
// Cancellation: a caller may cancel a job through the CancelToken it passed
// to run(). A queued job is taken out of the queue; a running one is
// answered `cancelled` at once and its worker stopped as for a missed
// deadline (SIGTERM, grace, SIGKILL) and reaped by its slot. The token's
// eventfd wakes the slot, which polls it beside the worker's socket. Such a
// death blames no one: no strike, no breaker failure, no timeout, no
// restart backoff or intensity.
//
// Blame: the pool knows whether it sent the signal that ended a worker and
// how the worker ended (from its reap), and reports in JobFate whether the
// death is something the job's adapter can cause.
//
// Threads: `workers` slot threads. Lock: mu_ guards the queue, the slots'
// spawn state and the counters; it is never held across I/O with a worker.
// The annotations (common/mutex.h) let clang's -Wthread-safety check that
// (scripts/thread-safety.sh).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/mutex.h"
#include "common/status.h"
#include "common/wait_clock.h"
#include "jobs/job_protocol.h"
#include "loader/cancel_token.h"
#include "loader/restart_policy.h"
#include "loader/worker_process.h"

namespace genomed::loader {

using Clock = std::chrono::steady_clock;

struct PoolOptions {
  std::string worker_executable;
  int workers = 2;
  int arena_fd = -1;              // read-write arena descriptor, inherited by workers
  std::size_t queue_limit = 256;  // pending jobs beyond which run() fails with overloaded
  std::chrono::milliseconds kill_grace{500};  // SIGTERM -> SIGKILL for a hung worker
  RestartOptions restart;
  std::vector<std::string> worker_extra_args;  // --base-model, --memory-limit, test-only --fault
};

// Whom the death of a job's worker is blamed on.
enum class Blame {
  none,      // no worker died running the job
  adapter,   // what an adapter's job can cause: a crash signal (SIGSEGV, SIGBUS,
             // SIGABRT, SIGFPE, SIGILL), an exit in the middle of the job, a
             // missed deadline, a protocol violation
  external,  // a signal genomed did not send (SIGKILL from the OOM killer or an
             // operator, SIGTERM, ...), or an end the reap could not tell
};
const char* blame_name(Blame blame);

// The blame for a worker that ended on its own during a job (the pool had
// not decided to stop it), from how its reap says it ended.
Blame blame_for_exit(const WorkerExit& exit);

// What became of the worker that ran a job, for callers that must not reuse
// the job's arena range while that worker could still write into it, and
// that decide whether the job's adapter earns a strike.
struct JobFate {
  bool worker_died = false;   // it crashed, hung, broke the protocol or was killed
                              // (also when stopped because the job was cancelled)
  Blame blame = Blame::none;  // none unless worker_died; none for a cancelled job
  // Ready once that worker is reaped (only meaningful when worker_died).
  std::shared_future<void> worker_gone;
};

struct PoolStats {
  std::uint64_t workers_alive = 0;
  std::uint64_t worker_restarts = 0;  // workers retired (each is replaced)
  std::uint64_t worker_crashes = 0;   // died on their own (exit, signal, protocol)
  std::uint64_t worker_timeouts = 0;  // killed for missing a deadline
  // (a worker stopped because its job was cancelled is only a restart)
  std::uint64_t queue_depth = 0;
  std::uint64_t jobs_run = 0;
  std::uint64_t workers_busy = 0;  // running a job now
  // For how long every worker has been running its current job: since the
  // latest of their starts, while all are busy; 0 otherwise. Long means the
  // pool is saturated by slow jobs and cold loads wait.
  std::int64_t all_busy_ms = 0;
  bool healthy = true;  // false while restart intensity paused spawning
  std::int64_t unhealthy_ms_left = 0;
};

// What runs jobs for the coordinator: the Pool of worker processes, or a
// fake in unit tests. See Pool for the contract of each call.
class JobRunner {
 public:
  virtual Result<std::string> run(const jobs::Job& job, Clock::time_point deadline,
                                  JobFate* fate = nullptr,
                                  std::shared_ptr<CancelToken> cancel = nullptr) = 0;
  virtual void cancel(CancelToken& token) = 0;
  virtual void stop() = 0;
  virtual PoolStats stats() const = 0;
  virtual int workers() const = 0;

 protected:
  ~JobRunner() = default;
};

class Pool final : public JobRunner {
 public:
  // `clock` measures every deadline, grace, backoff and wait of the pool.
  explicit Pool(PoolOptions options, WaitClock& clock = WaitClock::steady());
  ~Pool();  // stop()

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  // Spawns every worker; a worker that cannot start (wrong path) is an error
  // here rather than at the first load.
  Status start();

  // Runs `job` on some worker and returns its raw reply frame body. Errors:
  // worker_crashed (the worker died holding the job), timeout (the deadline
  // passed, queued or running), worker_protocol (garbage reply), overloaded
  // (queue full), unhealthy (restart intensity exceeded), shutting_down,
  // cancelled (`cancel` fired: before the job was queued, while it was
  // queued, or while a worker ran it; that worker is then stopped, and
  // `fate` says it died, blaming no one).
  // `fate` (optional) tells whether the job's worker died, as opposed to the
  // job failing before any worker ran it, whom that death is blamed on, and
  // when that worker is gone: a hung worker's result is delivered at the
  // deadline, before it is killed. `deadline` is a time of the pool's clock
  // (genomed's RunClock counts only time in which genomed ran, so a pause
  // of genomed itself extends it).
  Result<std::string> run(const jobs::Job& job, Clock::time_point deadline, JobFate* fate = nullptr,
                          std::shared_ptr<CancelToken> cancel = nullptr) override;

  // Fires `token`: its queued jobs leave the queue and their callers get
  // `cancelled`; a running one is answered `cancelled` by its slot within
  // moments and its worker stopped (SIGTERM, kill grace, SIGKILL) and reaped;
  // later run() calls with it fail with `cancelled` at once.
  void cancel(CancelToken& token) override;

  // Fails queued jobs with shutting_down, interrupts running ones, ends every
  // worker, joins the slots.
  void stop() override;

  PoolStats stats() const override;
  int workers() const override { return options_.workers; }
  // Pids of the live workers (tests send them signals).
  std::vector<int> worker_pids() const;

 private:
  struct Pending;
  struct Slot;
  enum class Death { crashed, timed_out, protocol, idle, cancelled };

  void slot_main(Slot& slot);
  // Waits for a job this slot can run, spawning or replacing its worker as
  // the restart policy allows. nullptr when stopping.
  std::shared_ptr<Pending> next_job(Slot& slot);
  // Runs one job; on failure reports how the worker must be retired and
  // whom its death is blamed on.
  Result<std::string> execute(Slot& slot, Pending& job, std::optional<Death>* death, Blame* blame);
  // Stops (if needed), reaps and forgets the slot's worker.
  void retire(Slot& slot, Death death, const std::string& what);
  // Starts the slot's worker, or records its failure (logged; the restart
  // policy sets when the slot tries again). Errc::worker_protocol: it ran
  // but was retired at once (WorkerProcess::spawn).
  Status try_spawn(Slot& slot);
  void wake_slots(std::uint64_t n);

  // A slot's spawn and run state, kept here rather than in Slot so that the
  // analysis can tie it to mu_.
  struct SlotState {
    int busy_fd = -1;                // the worker's socket while it runs a job, else -1
    Clock::time_point busy_since{};  // when it started that job (meaningful while busy)
    int consecutive_deaths = 0;      // reset when a job completes
    Clock::time_point next_spawn{};  // when a replacement may start
  };
  SlotState& state_of(const Slot& slot) REQUIRES(mu_);

  const PoolOptions options_;
  WaitClock& clock_;
  // Filled by start() before any slot thread exists, emptied by stop() (under
  // mu_) after every slot thread is joined; in between only read.
  std::vector<std::unique_ptr<Slot>> slots_;
  int stop_fd_ = -1;  // eventfd written once by stop(), never read
  int wake_fd_ = -1;  // eventfd: the queue gained a job or stop() began

  mutable Mutex mu_;
  // Jobs no slot has taken yet, oldest first (a slot takes the oldest of the
  // highest priority: CancelToken::priority); a job is in the queue or owned
  // by exactly one slot, never both. queue_.size() <= options_.queue_limit.
  std::deque<std::shared_ptr<Pending>> queue_ GUARDED_BY(mu_);
  // Set once by stop(), never cleared: no job enters the queue afterwards.
  bool stopping_ GUARDED_BY(mu_) = false;
  // One entry per slot of slots_ (same index) while the pool runs.
  std::vector<SlotState> slot_state_ GUARDED_BY(mu_);
  RestartPolicy restart_policy_ GUARDED_BY(mu_);  // not thread-safe itself
  // workers_alive counts slots whose worker is spawned and not yet retired.
  PoolStats stats_ GUARDED_BY(mu_);
};

}  // namespace genomed::loader
