// The supervisor and its workers, with real processes and real signals:
// - nothing outlives the supervisor (a SIGKILLed genomed takes its workers
//   and its arena with it);
// - quarantine blames only what the adapter can cause (a SIGKILL genomed did
//   not send is retried without a strike; a crash signal is a strike);
// - deadlines judge the worker, not the clock (a pause of genomed itself is
//   never charged to a worker or an adapter).
//
// Ordering is established from /proc and from the daemon's log, never by
// sleeping; the only time-based wait is the one that lets a deadline pass
// while genomed is stopped, which is the condition under test.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "integration/daemon_fixture.h"
#include "integration/file_tensors.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

bool all_threads_stopped(pid_t pid) {
  std::error_code ec;
  bool any = false;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    any = true;
    const std::string stat = read_file(task.path() / "stat");
    const auto close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) return false;
    if (stat[close + 2] != 'T' && stat[close + 2] != 't') return false;
  }
  return any;
}

std::uint64_t voluntary_switches(pid_t pid) {
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0)
      return std::stoull(line.substr(line.find(':') + 1));
  }
  return 0;
}

// The worker sleeps in recvmsg on its job socket (fd 3): it waits for its
// next job, so it has sent the reply to the previous one.
bool waiting_for_a_job(pid_t pid) {
  if (process_state(pid) != 'S') return false;
  std::istringstream in(read_file("/proc/" + std::to_string(pid) + "/syscall"));
  long nr = -1;
  std::string fd;
  in >> nr >> fd;
  return nr == SYS_recvmsg && fd == "0x3";
}

// Where a once-fault writes its marker; removed when the test ends (after
// the daemon, which is declared later and so destroyed first).
ScratchDir marker_dir() { return ScratchDir("genomed-marker"); }

// --- Nothing outlives the supervisor --------------------------------------

TEST(Supervision, DaemonKilledWhileAWorkerHangsLeavesNoWorkerAndNoArena) {
  const ScratchDir dir = marker_dir();
  const std::string marker = dir / "fired";
  auto daemon = std::make_unique<Daemon>(
      DaemonOptions{.extra_args = {"--worker-fault", "hang@probe:stuck,once=" + marker}});
  daemon->add_adapter("stuck", {});
  const pid_t genomed = daemon->pid();
  const std::string arena = arena_path_of(genomed);
  ASSERT_FALSE(arena.empty()) << "no arena mapping in /proc/" << genomed << "/maps";
  std::vector<ProcessRef> workers;
  for (pid_t w : children_of(genomed)) workers.push_back(ref_of(w));
  ASSERT_EQ(workers.size(), 2u);

  // The client maps the arena too: it lives only while the load is asked for.
  auto client = std::make_unique<Client>(daemon->connect());
  std::thread t([&] { (void)client->acquire("stuck"); });
  pid_t stuck = -1;
  ASSERT_TRUE(eventually([&] { return (stuck = pid_in(marker)) > 0; }));
  // The check below can see what it looks for: the hung worker maps the arena.
  EXPECT_NE(read_file("/proc/" + std::to_string(stuck) + "/maps").find(arena), std::string::npos);

  ASSERT_EQ(::kill(genomed, SIGKILL), 0);
  t.join();  // the connection broke
  client.reset();
  daemon->stop();  // reaps the killed daemon

  // The kernel delivers the parent-death signal asynchronously: bounded wait.
  EXPECT_TRUE(eventually(
      [&] {
        return std::none_of(workers.begin(), workers.end(), [](const auto& w) { return alive(w); });
      },
      10000))
      << "a worker of the killed daemon is still alive";
  for (const auto& w : workers) EXPECT_FALSE(alive(w)) << "worker " << w.pid << " outlived genomed";
  EXPECT_TRUE(eventually([&] { return holders_of(arena).empty(); }, 10000))
      << "pid " << holders_of(arena).front() << " still maps or holds " << arena;
  for (const auto& w : workers) {
    if (alive(w)) ::kill(w.pid, SIGKILL);  // do not leave a failing run's orphan behind
  }
  daemon.reset();
}

// --- Quarantine blames what the adapter can cause --------------------------

TEST(Supervision, OutsideKillsOfAHealthyAdaptersWorkersAreRetriedWithoutAStrike) {
  // Defaults: 2 strikes quarantine, 2 retries. Two outside SIGKILLs (as the
  // OOM killer sends) during one load used to quarantine a healthy adapter.
  const ScratchDir dir = marker_dir();
  const std::string marker = dir / "fired";
  Daemon daemon({.extra_args = {"--worker-fault", "hang@probe:healthy,once=" + marker,
                                "--restart-backoff-ms", "1"}});
  const std::string adapter = daemon.add_adapter("healthy", {});
  Client client = daemon.connect();
  Result<Lease> lease = Status(Errc::internal, "not run");
  std::thread t([&] { lease = client.acquire("healthy"); });
  pid_t first = -1;
  ASSERT_TRUE(eventually([&] { return (first = pid_in(marker)) > 0; }));
  fs::remove(marker);  // re-arm: the retry's worker hangs too
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  pid_t second = -1;
  ASSERT_TRUE(eventually([&] { return (second = pid_in(marker)) > 0; }));
  ASSERT_NE(second, first);
  ASSERT_EQ(::kill(second, SIGKILL), 0);  // the third attempt does not hang
  t.join();
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  expect_file_bytes(*lease, adapter + "/adapter_model.safetensors");
  EXPECT_EQ(daemon.stat("load_retries"), 2u);
  EXPECT_EQ(daemon.stat("quarantined"), 0u);
  EXPECT_TRUE(eventually([&] { return daemon.stat("worker_crashes") == 2u; }));
  EXPECT_NE(daemon.log().find("which genomed did not send"), std::string::npos);
  EXPECT_NE(daemon.log().find("not counted against it"), std::string::npos);
  EXPECT_EQ(daemon.log().find("quarantined"), std::string::npos) << daemon.log();

  // And it loads fine afterwards, from scratch.
  lease->release();
  ASSERT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0u; }));
  ASSERT_TRUE(client.unload("healthy").ok());
  auto again = client.acquire("healthy");
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  expect_file_bytes(*again, adapter + "/adapter_model.safetensors");
  EXPECT_EQ(daemon.stat("loads_completed"), 2u);
}

TEST(Supervision, CrashSignalsStillQuarantineAfterTheConfiguredStrikes) {
  Daemon daemon({.extra_args = {"--worker-fault", "crash@probe:poison", "--quarantine-strikes", "3",
                                "--job-retries", "2", "--restart-backoff-ms", "1",
                                "--breaker-failures", "1000"}});
  daemon.add_adapter("poison", {});
  Client client = daemon.connect();
  // Three SIGSEGVs (the attempt and both retries): the third strike quarantines.
  auto first = client.acquire("poison");
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.code(), Errc::worker_crashed) << first.status().to_string();
  EXPECT_NE(first.status().message().find("signal SIGSEGV"), std::string::npos);
  EXPECT_NE(first.status().message().find("is now quarantined"), std::string::npos)
      << first.status().message();
  EXPECT_EQ(daemon.stat("load_retries"), 2u);
  EXPECT_EQ(daemon.stat("quarantined"), 1u);
  EXPECT_EQ(client.acquire("poison").code(), Errc::quarantined);
}

// --- Cancellation reaches the worker ----------------------------------------

// Gone for good: dead and reaped by genomed (no zombie left; its pid is
// free or names another process).
bool reaped(const ProcessRef& p) {
  const auto f = stat_fields(p.pid);
  return f.size() <= 19 || f[19] != p.start_time;
}

// Joins a test's client thread however the test leaves (a failed ASSERT
// must not destroy a joinable std::thread).
struct JoinOnExit {
  std::thread& thread;
  ~JoinOnExit() {
    if (thread.joinable()) thread.join();
  }
};

std::string breaker_state(const Daemon& daemon) {
  auto stats = daemon.connect().stats();
  if (!stats) return "?";
  for (const auto& [k, v] : *stats) {
    if (k == "breaker_state") return std::get<std::string>(v);
  }
  return "?";
}

// Where the `n`th (0-based) occurrence of `what` starts in `text`, or npos.
std::size_t nth(const std::string& text, const std::string& what, int n) {
  std::size_t at = text.find(what);
  while (at != std::string::npos && n-- > 0) at = text.find(what, at + 1);
  return at;
}

// UNLOAD of an adapter whose probe or fill hangs in a worker: the worker is
// stopped (SIGTERM, kill grace, SIGKILL) and reaped long before the job's
// 60 s deadline, the range and the worker are given back, nobody is blamed,
// and a reload asked for at once runs its first job only after the old
// worker is gone. The hung worker is SIGSTOPped before the unload, so
// SIGTERM cannot end it: it lives through the whole kill grace, a window in
// which the reload is already waiting.
void unload_stops_a_hung_job(const std::string& stage) {
  constexpr int kGraceMs = 1000;
  const ScratchDir dir = marker_dir();
  const std::string marker = dir / "fired";
  Daemon daemon({.workers = 2,
                 .load_timeout_ms = 60000,
                 .extra_args = {"--worker-fault", "hang@" + stage + ":stuck,once=" + marker,
                                "--kill-grace-ms", std::to_string(kGraceMs)}});
  const std::string weights = daemon.add_adapter("stuck", {}) + "/adapter_model.safetensors";
  Client waiter = daemon.connect();
  Result<Lease> first = Status(Errc::internal, "not run");
  std::thread t([&] { first = waiter.acquire("stuck"); });
  JoinOnExit join_t{t};
  pid_t stuck = -1;
  ASSERT_TRUE(eventually([&] { return (stuck = pid_in(marker)) > 0; }));
  const ProcessRef old = ref_of(stuck);
  ASSERT_EQ(::kill(stuck, SIGSTOP), 0);
  ASSERT_TRUE(eventually([&] { return process_state(stuck) == 'T'; }));
  Client control = daemon.connect();
  auto list = control.list();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].state, "loading");
  EXPECT_EQ(daemon.stat("queue_depth"), 0u);  // the job runs: it is not merely queued

  const auto unloaded_at = SteadyClock::now();
  auto unloaded = control.unload("stuck");
  ASSERT_TRUE(unloaded.ok()) << unloaded.status().to_string();
  EXPECT_EQ(unloaded->outcome, "cancelled");
  // The reload, at once (the once= marker keeps the fault from firing again).
  Client reloader = daemon.connect();
  Result<Lease> second = Status(Errc::internal, "not run");
  std::thread r([&] { second = reloader.acquire("stuck"); });
  JoinOnExit join_r{r};
  t.join();
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.code(), Errc::cancelled) << first.status().to_string();

  // Stopped and reaped within the kill grace plus a generous liveness margin
  // (the job's own deadline is 60 s away).
  EXPECT_TRUE(eventually([&] { return reaped(old); }, 20000)) << "the hung worker is still there";
  const auto stop_ms =
      std::chrono::duration_cast<milliseconds>(SteadyClock::now() - unloaded_at).count();
  EXPECT_LT(stop_ms, kGraceMs + 4000) << "the hung worker outlived its cancellation";

  r.join();
  ASSERT_TRUE(second.ok()) << second.status().to_string() << "\n" << daemon.log();
  expect_file_bytes(*second, weights);

  // One load at a time: the reload's probe was sent to a worker only after
  // the old worker was stopped and reaped (both lines are logged by the
  // pool; the second is written after the reap, which the old flight waits
  // for before it ends, and the reload waits for that).
  const std::string log = daemon.log();
  const std::string probe_sent = "got job 'probe " + weights + "'";
  const std::size_t stopped = log.find("worker pid " + std::to_string(stuck) + " stopped (");
  ASSERT_NE(stopped, std::string::npos) << log;
  const std::size_t second_probe = nth(log, probe_sent, 1);
  ASSERT_NE(second_probe, std::string::npos) << log;
  EXPECT_EQ(nth(log, probe_sent, 2), std::string::npos) << log;  // no retry either
  EXPECT_LT(stopped, second_probe) << "the reload ran beside the old load:\n" << log;
  EXPECT_NE(log.find("was cancelled while worker pid " + std::to_string(stuck)), std::string::npos)
      << log;

  EXPECT_EQ(daemon.stat("loads_started"), 2u);
  EXPECT_EQ(daemon.stat("loads_cancelled"), 1u);
  EXPECT_EQ(daemon.stat("loads_completed"), 1u);
  EXPECT_EQ(daemon.stat("loads_failed"), 0u);
  EXPECT_EQ(daemon.stat("load_retries"), 0u);
  // The old range is back (only the reload's published copy remains) and
  // the stopped worker is replaced; nobody was blamed.
  EXPECT_TRUE(eventually([&] { return daemon.stat("bytes_reserved") == 0u; }));
  EXPECT_TRUE(eventually([&] { return daemon.stat("workers_alive") == 2u; }));
  EXPECT_EQ(daemon.stat("worker_restarts"), 1u);
  EXPECT_EQ(daemon.stat("worker_timeouts"), 0u);
  EXPECT_EQ(daemon.stat("worker_crashes"), 0u);
  EXPECT_EQ(daemon.stat("quarantined"), 0u);
  EXPECT_EQ(breaker_state(daemon), "closed");
  auto health = control.health();
  ASSERT_TRUE(health.ok());
  EXPECT_TRUE(health->healthy) << health->reason;
  second->release();
  ASSERT_TRUE(eventually([&] { return daemon.stat("leases_active") == 0u; }));
  ASSERT_TRUE(control.unload("stuck").ok());
  EXPECT_EQ(daemon.stat("bytes_resident"), 0u);
  EXPECT_EQ(daemon.stat("bytes_reserved"), 0u);
}

TEST(Cancellation, UnloadDuringAHungFillStopsItsWorkerAndTheReloadRunsAlone) {
  unload_stops_a_hung_job("fill");
}

TEST(Cancellation, UnloadDuringAHungProbeStopsItsWorkerAndTheReloadRunsAlone) {
  unload_stops_a_hung_job("probe");
}

// A job still queued (the only worker is busy) is taken out of the queue by
// the unload that cancels its load; the busy worker is left alone.
TEST(Cancellation, UnloadOfALoadWhoseJobIsQueuedWithdrawsTheJob) {
  const ScratchDir dir = marker_dir();
  const std::string marker = dir / "fired";
  Daemon daemon({.workers = 1,
                 .load_timeout_ms = 60000,
                 .extra_args = {"--worker-fault", "hang@probe:stuck,once=" + marker}});
  daemon.add_adapter("stuck", {});
  const std::string weights = daemon.add_adapter("queued", {}) + "/adapter_model.safetensors";
  Client a = daemon.connect();
  Result<Lease> stuck_lease = Status(Errc::internal, "not run");
  std::thread ta([&] { stuck_lease = a.acquire("stuck"); });
  JoinOnExit join_a{ta};
  pid_t busy = -1;
  ASSERT_TRUE(eventually([&] { return (busy = pid_in(marker)) > 0; }));
  const ProcessRef busy_ref = ref_of(busy);

  Client b = daemon.connect();
  Result<Lease> queued_lease = Status(Errc::internal, "not run");
  std::thread tb([&] { queued_lease = b.acquire("queued"); });
  JoinOnExit join_b{tb};
  ASSERT_TRUE(eventually([&] { return daemon.stat("queue_depth") == 1u; }));

  Client control = daemon.connect();
  auto unloaded = control.unload("queued");
  ASSERT_TRUE(unloaded.ok()) << unloaded.status().to_string();
  EXPECT_EQ(unloaded->outcome, "cancelled");
  // Withdrawn by the unload itself, before it replied.
  EXPECT_EQ(daemon.stat("queue_depth"), 0u);
  tb.join();
  ASSERT_FALSE(queued_lease.ok());
  EXPECT_EQ(queued_lease.code(), Errc::cancelled);
  EXPECT_NE(daemon.log().find("'probe " + weights + "' cancelled while queued; withdrawn"),
            std::string::npos)
      << daemon.log();
  EXPECT_EQ(daemon.log().find("got job 'probe " + weights + "'"), std::string::npos);
  EXPECT_TRUE(alive(busy_ref));  // no worker was stopped for it
  EXPECT_EQ(daemon.stat("worker_restarts"), 0u);
  EXPECT_TRUE(eventually([&] { return daemon.stat("loads_cancelled") == 1u; }));

  // Now the hung one: its worker is stopped, and both load again.
  ASSERT_TRUE(control.unload("stuck").ok());
  ta.join();
  EXPECT_EQ(stuck_lease.code(), Errc::cancelled);
  EXPECT_TRUE(eventually([&] { return reaped(busy_ref); }, 20000));
  EXPECT_TRUE(control.acquire("queued").ok());
  EXPECT_TRUE(control.acquire("stuck").ok());
  EXPECT_EQ(daemon.stat("loads_cancelled"), 2u);
  EXPECT_EQ(daemon.stat("loads_completed"), 2u);
  EXPECT_EQ(daemon.stat("worker_timeouts") + daemon.stat("worker_crashes"), 0u);
  EXPECT_EQ(daemon.stat("quarantined"), 0u);
}

// --- Deadlines judge the worker, not the clock -----------------------------

enum class Pause {
  // Only genomed is stopped; its worker answers meanwhile, and the reply
  // waits on the socket past the job's deadline.
  supervisor,
  // genomed and its worker are stopped together, as in a VM pause: when
  // genomed runs again the deadline has passed and the worker has not
  // answered yet.
  supervisor_and_worker,
};

// The daemon's only worker, stopped while idle: a job sent to it waits.
void stop_the_only_worker(const Daemon& daemon, pid_t* worker) {
  const auto kids = children_of(daemon.pid());
  ASSERT_EQ(kids.size(), 1u);
  *worker = kids[0];
  ASSERT_EQ(::kill(*worker, SIGSTOP), 0);
  ASSERT_TRUE(eventually([&] { return process_state(*worker) == 'T'; }));
}

// Stops genomed, every thread of it.
void stop_supervisor(pid_t genomed) {
  ASSERT_EQ(::kill(genomed, SIGSTOP), 0);
  ASSERT_TRUE(eventually([&] { return all_threads_stopped(genomed); }));
}

// Continues the stopped worker and waits until it has replied: it has run
// since its stop (a voluntary switch) and sleeps in recvmsg on its job
// socket again.
void let_the_worker_reply(pid_t worker) {
  const std::uint64_t switches = voluntary_switches(worker);
  ASSERT_EQ(::kill(worker, SIGCONT), 0);
  ASSERT_TRUE(eventually(
      [&] { return voluntary_switches(worker) > switches && waiting_for_a_job(worker); }));
}

// A load of "steady" whose probe is in flight while genomed is SIGSTOPped
// for longer than the job deadline, then resumed. It must succeed with no
// worker killed and no strike.
void load_across_a_pause(Pause pause) {
  constexpr int kDeadlineMs = 1500;
  Daemon daemon({.workers = 1, .load_timeout_ms = kDeadlineMs});
  const std::string adapter = daemon.add_adapter("steady", {});
  const pid_t genomed = daemon.pid();
  pid_t worker = -1;
  // 1. The worker is stopped while idle, so the probe sent to it waits.
  ASSERT_NO_FATAL_FAILURE(stop_the_only_worker(daemon, &worker));
  Client client = daemon.connect();
  Result<Lease> lease = Status(Errc::internal, "not run");
  std::thread t([&] { lease = client.acquire("steady"); });
  // 2. The probe is on the worker's socket (logged once sent), its deadline
  //    at most kDeadlineMs from now. Stop genomed, every thread of it.
  const std::string sent = "worker pid " + std::to_string(worker) + " got job 'probe ";
  ASSERT_TRUE(eventually([&] { return daemon.log().find(sent) != std::string::npos; }));
  const auto stopped_at = SteadyClock::now();
  ASSERT_NO_FATAL_FAILURE(stop_supervisor(genomed));

  if (pause == Pause::supervisor) {
    // 3a. The worker runs the probe and replies while genomed is stopped.
    ASSERT_NO_FATAL_FAILURE(let_the_worker_reply(worker));
  }
  // 4. The probe's deadline passes by genomed's clock while it is stopped:
  //    the one wait on time itself, which is what this test is about.
  std::this_thread::sleep_until(stopped_at + milliseconds(kDeadlineMs + 300));
  ASSERT_EQ(::kill(genomed, SIGCONT), 0);
  if (pause == Pause::supervisor_and_worker) {
    ASSERT_EQ(::kill(worker, SIGCONT), 0);
  }

  t.join();
  ASSERT_TRUE(lease.ok()) << lease.status().to_string() << "\n" << daemon.log();
  expect_file_bytes(*lease, adapter + "/adapter_model.safetensors");
  EXPECT_EQ(daemon.stat("worker_timeouts"), 0u);
  EXPECT_EQ(daemon.stat("worker_crashes"), 0u);
  EXPECT_EQ(daemon.stat("worker_restarts"), 0u);
  EXPECT_EQ(daemon.stat("load_retries"), 0u);
  EXPECT_EQ(daemon.stat("quarantined"), 0u);
  EXPECT_EQ(children_of(genomed), std::vector<pid_t>{worker}) << "the worker was replaced";
  EXPECT_NE(daemon.log().find("genomed did not run for"), std::string::npos);
}

TEST(Supervision, SupervisorPausedPastADeadlineTakesTheReplyWaitingOnTheSocket) {
  load_across_a_pause(Pause::supervisor);
}

TEST(Supervision, PauseOfSupervisorAndWorkerTogetherIsNotChargedToTheWorker) {
  load_across_a_pause(Pause::supervisor_and_worker);
}

// As measured on the former code (issue 19): genomed stopped for 5 s with a
// 2 s job deadline; the only worker finished its job meanwhile, and the load
// queued behind it failed with `timeout` (3 runs of 3) although nobody was
// slow but genomed. Both loads must succeed: the reply waiting on the socket
// is taken, and the queued probe's wait did not count while genomed was
// stopped (genomed's RunClock).
TEST(Supervision, ALoadQueuedWhileTheSupervisorIsPausedPastItsDeadlineSucceeds) {
  constexpr int kDeadlineMs = 2000;
  constexpr int kPauseMs = 5000;
  Daemon daemon({.workers = 1, .load_timeout_ms = kDeadlineMs});
  const std::string running = daemon.add_adapter("running", {});
  const std::string queued = daemon.add_adapter("queued", {});
  const pid_t genomed = daemon.pid();
  pid_t worker = -1;
  // The worker is stopped while idle: the first probe waits on its socket,
  // the second in the pool's queue.
  ASSERT_NO_FATAL_FAILURE(stop_the_only_worker(daemon, &worker));
  Client a = daemon.connect();
  Client b = daemon.connect();
  Result<Lease> first = Status(Errc::internal, "not run");
  Result<Lease> second = Status(Errc::internal, "not run");
  std::thread ta([&] { first = a.acquire("running"); });
  JoinOnExit join_a{ta};
  const std::string sent = "worker pid " + std::to_string(worker) + " got job 'probe ";
  ASSERT_TRUE(eventually([&] { return daemon.log().find(sent) != std::string::npos; }));
  std::thread tb([&] { second = b.acquire("queued"); });
  JoinOnExit join_b{tb};
  ASSERT_TRUE(eventually([&] { return daemon.stat("queue_depth") == 1u; }));

  // genomed stops; its worker answers meanwhile.
  const auto stopped_at = SteadyClock::now();
  ASSERT_NO_FATAL_FAILURE(stop_supervisor(genomed));
  ASSERT_NO_FATAL_FAILURE(let_the_worker_reply(worker));
  // The pause itself, longer than the deadline: the one wait on time, which
  // is the condition under test.
  std::this_thread::sleep_until(stopped_at + milliseconds(kPauseMs));
  ASSERT_EQ(::kill(genomed, SIGCONT), 0);

  ta.join();
  tb.join();
  ASSERT_TRUE(first.ok()) << first.status().to_string() << "\n" << daemon.log();
  ASSERT_TRUE(second.ok()) << "the queued load was failed by genomed's own pause: "
                           << second.status().to_string() << "\n"
                           << daemon.log();
  expect_file_bytes(*first, running + "/adapter_model.safetensors");
  expect_file_bytes(*second, queued + "/adapter_model.safetensors");
  EXPECT_EQ(daemon.stat("worker_timeouts"), 0u);
  EXPECT_EQ(daemon.stat("worker_restarts"), 0u);
  EXPECT_EQ(daemon.stat("load_retries"), 0u);
  EXPECT_EQ(daemon.stat("quarantined"), 0u);
  EXPECT_EQ(children_of(genomed), std::vector<pid_t>{worker}) << "the worker was replaced";
  EXPECT_NE(daemon.log().find("genomed did not run for"), std::string::npos) << daemon.log();
}

}  // namespace
}  // namespace genomed::testing
