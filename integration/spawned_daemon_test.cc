// A daemon started by tools/testkit dies with its spawner: a test process
// SIGKILLed by ctest's timeout must not leave genomed, its workers and its
// arena behind (testkit::start_genomed ties the daemon to it with
// PR_SET_PDEATHSIG).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"

namespace genomed::testing {
namespace {

// Runs genome-test-spawner with `daemon_argv`; returns its pid and what it
// printed once genomed was ready (an empty line if it failed to say).
struct Spawner {
  pid_t pid = -1;
  std::string line;
};
Spawner run_spawner(const std::string& log, const std::vector<std::string>& daemon_argv,
                    int* stdin_keep) {
  std::vector<std::string> args = {GENOMED_TEST_SPAWNER, log};
  args.insert(args.end(), daemon_argv.begin(), daemon_argv.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int out[2], in[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(in, O_CLOEXEC) != 0) return {};
  Spawner s;
  s.pid = ::fork();
  if (s.pid == 0) {  // only async-signal-safe calls until exec
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  *stdin_keep = in[1];  // the spawner waits for EOF here: it never ends on its own
  pollfd p{out[0], POLLIN, 0};
  char buf[64] = {};
  if (::poll(&p, 1, 60000) == 1) {
    const ssize_t n = ::read(out[0], buf, sizeof buf - 1);
    if (n > 0) s.line.assign(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  return s;
}

TEST(SpawnedDaemon, DiesWithItsWorkersAndArenaWhenItsSpawnerIsSigkilled) {
  const ScratchDir dir("genomed-spawner");
  ASSERT_EQ(::mkdir((dir / "root").c_str(), 0755), 0);
  int keep = -1;
  const Spawner spawner =
      run_spawner(dir / "genomed.log",
                  {binary("genomed"), "--socket", dir / "genomed.sock", "--root", dir / "root",
                   "--budget", "8M", "--workers", "2", "--worker-path", binary("genome-worker")},
                  &keep);
  ASSERT_GT(spawner.pid, 0);
  pid_t daemon_pid = -1;
  int tied = -1;
  std::istringstream(spawner.line) >> daemon_pid >> tied;
  if (daemon_pid <= 0) {
    ::kill(spawner.pid, SIGKILL);
    ::waitpid(spawner.pid, nullptr, 0);
    FAIL() << "the spawner did not report a ready genomed; its log:\n"
           << read_file(dir / "genomed.log");
  }
  EXPECT_EQ(tied, 1) << "start_genomed on the main thread ties the daemon to its spawner";

  const ProcessRef daemon = ref_of(daemon_pid);
  std::vector<ProcessRef> workers;
  for (pid_t w : children_of(daemon_pid)) workers.push_back(ref_of(w));
  const std::string arena = arena_path_of(daemon_pid);
  ASSERT_TRUE(alive(daemon));
  EXPECT_EQ(workers.size(), 2u);
  EXPECT_FALSE(arena.empty()) << "no arena mapping in /proc/" << daemon_pid << "/maps";

  ASSERT_EQ(::kill(spawner.pid, SIGKILL), 0);
  ASSERT_EQ(::waitpid(spawner.pid, nullptr, 0), spawner.pid);
  ::close(keep);

  // The kernel delivers the parent-death signal asynchronously: bounded wait.
  // (Reparented, the daemon is reaped by init, or stays a zombie, which
  // alive() does not count: it holds no memory, descriptor or socket.)
  const auto gone = [](const ProcessRef& p) { return !alive(p); };
  EXPECT_TRUE(eventually([&] { return gone(daemon); }, 20000))
      << "genomed " << daemon_pid << " outlived its SIGKILLed spawner; its log:\n"
      << read_file(dir / "genomed.log");
  EXPECT_TRUE(eventually([&] { return std::all_of(workers.begin(), workers.end(), gone); }, 20000))
      << "a worker outlived the daemon";
  if (!arena.empty()) {
    EXPECT_TRUE(eventually([&] { return holders_of(arena).empty(); }, 20000))
        << "pid " << holders_of(arena).front() << " still maps or holds " << arena;
  }
  auto client = Client::connect(dir / "genomed.sock", "spawned-daemon-test");
  EXPECT_FALSE(client.ok()) << "something still serves the dead spawner's socket";

  // Do not leave a failing run's orphans behind.
  for (const ProcessRef& p : workers)
    if (alive(p)) ::kill(p.pid, SIGKILL);
  if (alive(daemon)) ::kill(daemon.pid, SIGKILL);
}

}  // namespace
}  // namespace genomed::testing
