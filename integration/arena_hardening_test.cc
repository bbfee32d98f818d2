// The arena against a process of genomed's own uid (issue 9, item 8): it
// could reopen the arena read-write through /proc/<genomed>/fd and truncate
// it, killing every client with SIGBUS and the workers with it. The arena's
// size is sealed now. Since issue 19 genomed and its workers are not
// dumpable, so /proc/<pid>/fd, /proc/<pid>/mem and ptrace are closed to that
// uid (root still passes, as in the first test); what that uid can still do
// is in docs/architecture.md ("Threat model").
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

TEST(ArenaHardening, ReopeningTheDaemonsArenaWritableCannotTruncateIt) {
  Daemon daemon;
  daemon.add_adapter("victim", {});
  Client client = daemon.connect();
  auto lease = client.acquire("victim");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string();
  const std::string before(reinterpret_cast<const char*>(lease->tensors()[0].data.data()),
                           lease->tensors()[0].data.size());

  // The attack as measured: the same uid (here root, which also passes the
  // 0400 mode) opens the daemon's descriptor writable.
  const int fd = open_arena_writable(daemon.pid());
  ASSERT_NE(fd, -1) << "no read-write memfd arena among genomed's descriptors";
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0400u);
  EXPECT_NE(::ftruncate(fd, 0), 0) << "the arena could be truncated";
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(fd, st.st_size + 4096), 0) << "the arena could be grown";
  ::close(fd);

  // The client reads its lease without SIGBUS; the daemon and its workers
  // still serve.
  const std::string after(reinterpret_cast<const char*>(lease->tensors()[0].data.data()),
                          lease->tensors()[0].data.size());
  EXPECT_EQ(after, before);
  daemon.add_adapter("next", {});
  auto next = client.acquire("next");
  ASSERT_TRUE(next.ok()) << next.status().to_string();
  EXPECT_EQ(daemon.stat("workers_alive"), 2u);
}

// The routes to the arena that /proc and ptrace gave every process of
// genomed's uid (issue 19, item 2), tried by such a process: genomed and a
// worker run as `nobody`, and so does the attacker, forked by the test.
// Each must fail: genomed and its workers are not dumpable. On the former
// code the first one (chmod of genomed's arena descriptor through /proc,
// which the owner may do, then open it read-write) succeeded, as did every
// other. The control (its /proc/<pid>/stat) shows the attacker can see the
// processes at all.
TEST(ArenaHardening, AProcessOfGenomedsUidCannotReachTheArenaThroughProcOrPtrace) {
  if (::geteuid() != 0) GTEST_SKIP() << "runs genomed as another user: needs root (CI runs as root)";
  constexpr testkit::User kNobody{65534, 65534};
  Daemon daemon({.workers = 1, .user = kNobody});
  daemon.add_adapter("victim", {});
  Client client = daemon.connect();
  auto lease = client.acquire("victim");  // a worker has mapped the arena and written it
  ASSERT_TRUE(lease.ok()) << lease.status().to_string() << daemon.log();
  const pid_t genomed = daemon.pid();
  const auto workers = children_of(genomed);
  ASSERT_EQ(workers.size(), 1u);
  // Every path made before the fork: the attacker only makes system calls.
  const std::string proc = "/proc/" + std::to_string(genomed);
  const std::string worker_proc = "/proc/" + std::to_string(workers[0]);
  const std::string genomed_mem = proc + "/mem", genomed_stat = proc + "/stat";
  const std::string worker_fds = worker_proc + "/fd", worker_mem = worker_proc + "/mem",
                    worker_stat = worker_proc + "/stat";
  const std::string arena_fd = arena_rw_fd_path(genomed);  // root can look
  ASSERT_FALSE(arena_fd.empty()) << "no read-write memfd arena among genomed's descriptors";

  struct Attempt {
    const char* what;
    std::function<bool()> succeeds;  // runs in the attacker
  };
  const auto opens = [](const std::string& path, int flags) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
    if (fd >= 0) ::close(fd);
    return fd >= 0;
  };
  const auto seizes = [](pid_t pid) { return ::ptrace(PTRACE_SEIZE, pid, 0, 0) == 0; };
  const std::vector<Attempt> attempts = {
      {"chmod and open genomed's arena descriptor read-write",
       [&] {
         (void)::chmod(arena_fd.c_str(), 0600);  // it owns the inode
         return opens(arena_fd, O_RDWR);
       }},
      {"open genomed's memory read-write", [&] { return opens(genomed_mem, O_RDWR); }},
      {"ptrace genomed", [&] { return seizes(genomed); }},
      {"list the worker's descriptors", [&] { return opens(worker_fds, O_RDONLY); }},
      {"open the worker's memory read-write", [&] { return opens(worker_mem, O_RDWR); }},
      {"ptrace the worker", [&] { return seizes(workers[0]); }},
  };
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const pid_t attacker = ::fork();
  ASSERT_GE(attacker, 0);
  if (attacker == 0) {
    ::close(out[0]);
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody.gid) != 0 || ::setuid(kNobody.uid) != 0)
      ::_exit(2);
    if (!opens(genomed_stat, O_RDONLY) || !opens(worker_stat, O_RDONLY)) ::_exit(3);
    for (const Attempt& a : attempts) {
      const char verdict = a.succeeds() ? 'Y' : 'n';
      if (::write(out[1], &verdict, 1) != 1) ::_exit(4);
    }
    ::_exit(0);
  }
  ::close(out[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(attacker, &status, 0), attacker);
  std::string verdicts(attempts.size(), '?');
  ASSERT_EQ(::read(out[0], verdicts.data(), verdicts.size()),  // written before it exited
            static_cast<ssize_t>(verdicts.size()));
  ::close(out[0]);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "2: could not become nobody, 3: cannot see the processes; status " << status;
  for (std::size_t i = 0; i < attempts.size(); ++i)
    EXPECT_EQ(verdicts[i], 'n') << "a process of genomed's uid could " << attempts[i].what;

  // genomed and its worker still serve.
  daemon.add_adapter("next", {});
  EXPECT_TRUE(client.acquire("next").ok());
  EXPECT_EQ(daemon.stat("worker_restarts"), 0u);
}

// The worker's window between its exec and its prctl (issue 19): a process
// of genomed's uid that copied the worker's socket then (pidfd_getfd) could
// read what genomed sent there, the arena's read-write descriptor once. Now
// genomed sends the arena only on a channel the worker offers, and only if
// the worker itself made it. Here the first worker offers one a child of its
// own made instead (--worker-fault impostor@start), as a process holding a
// copy of its socket would: genomed must not send the arena there, must say
// so, and must serve with the worker that replaces it. With the check taken
// out of WorkerProcess::open_channel, the impostor reports "arena".
TEST(ArenaHardening, AChannelTheWorkerDidNotMakeGetsNoArena) {
  const ScratchDir scratch("genomed-impostor");
  const std::string marker = scratch / "impostor";
  Daemon daemon({.workers = 1, .extra_args = {"--worker-fault", "impostor@start,once=" + marker}});
  // The marker holds the worker's pid, then what the impostor's end received
  // once genomed answered or closed it.
  std::string report;
  ASSERT_TRUE(eventually([&] {
    report = read_file(marker);
    return std::count(report.begin(), report.end(), '\n') == 2;
  })) << report << daemon.log();
  const pid_t worker = pid_in(marker);
  EXPECT_EQ(report.substr(report.find('\n') + 1), "refused\n")
      << "genomed answered a channel its worker did not make";
  const std::string log = daemon.log();
  EXPECT_NE(log.find("worker pid " + std::to_string(worker) + " offered a channel created by pid "),
            std::string::npos)
      << log;

  // Its replacement loads and serves.
  daemon.add_adapter("after", {});
  Client client = daemon.connect();
  auto lease = client.acquire("after");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string() << daemon.log();
  EXPECT_EQ(daemon.stat("worker_restarts"), 1u);
  EXPECT_EQ(daemon.stat("workers_alive"), 1u);
}

}  // namespace
}  // namespace genomed::testing
