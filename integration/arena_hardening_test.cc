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
#include <linux/capability.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "integration/daemon_fixture.h"
#include "integration/process_helpers.h"
#include "ipc/framing.h"
#include "ipc/protocol.h"

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

// What a client of `user` does with the arena descriptor HELLO gives it, as
// the attack goes: change the inode's mode (it may if it owns the inode),
// reopen it read-write through /proc/self/fd, map it writable. Runs in a
// child of the test that becomes `user` and connects; each step is tried
// whatever the one before gave.
struct ClientAttempt {
  int connected = 0;       // HELLO answered with one descriptor
  int owner = -1;          // the inode's owner, as fstat says
  int fchmod_errno = -1;   // 0: fchmod(0600) succeeded
  int reopen_errno = -1;   // 0: open(/proc/self/fd/N, O_RDWR) succeeded
  int map_write_errno = -1;  // 0: mmap(PROT_WRITE, MAP_SHARED) of the descriptor succeeded
  int map_read = 0;        // mmap(PROT_READ) succeeded: it can read the arena at all
};

ClientAttempt attempt_arena_write(const testkit::User& user, const std::string& socket_path) {
  int out[2];
  EXPECT_EQ(::pipe(out), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(out[0]);
    ClientAttempt a;
    if (::setgroups(0, nullptr) != 0 || ::setgid(user.gid) != 0 || ::setuid(user.uid) != 0)
      ::_exit(2);
    const int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
    ipc::Request hello;
    hello.op = ipc::Op::hello;
    hello.version = ipc::kProtocolVersion;
    hello.client = "same-uid";
    if (::connect(sock, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        !ipc::write_frame(sock, ipc::encode_request(hello)).ok())
      ::_exit(3);
    auto reply = ipc::read_frame(sock, ipc::kMaxReplyFrame, std::nullopt, /*max_fds=*/1);
    if (reply && reply->fds.size() == 1) {
      a.connected = 1;
      const int fd = reply->fds[0];
      struct stat st {};
      if (::fstat(fd, &st) == 0) a.owner = static_cast<int>(st.st_uid);
      a.fchmod_errno = ::fchmod(fd, 0600) == 0 ? 0 : errno;
      const std::string self = "/proc/self/fd/" + std::to_string(fd);
      const int rw = ::open(self.c_str(), O_RDWR | O_CLOEXEC);
      a.reopen_errno = rw >= 0 ? 0 : errno;
      void* w = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, rw >= 0 ? rw : fd, 0);
      a.map_write_errno = w != MAP_FAILED ? 0 : errno;
      void* r = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
      a.map_read = r != MAP_FAILED;
    }
    if (::write(out[1], &a, sizeof a) != sizeof a) ::_exit(4);
    ::_exit(0);
  }
  ::close(out[1]);
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "2: could not become the user, 3: could not connect; status " << status;
  ClientAttempt a;
  EXPECT_EQ(::read(out[0], &a, sizeof a), static_cast<ssize_t>(sizeof a));
  ::close(out[0]);
  return a;
}

// Whether any thread of `pid` has `cap` in its effective or permitted set.
bool any_thread_has(pid_t pid, int cap) {
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  for (const auto& task : std::filesystem::directory_iterator(tasks)) {
    std::istringstream status(read_file(task.path().string() + "/status"));
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("CapEff:", 0) != 0 && line.rfind("CapPrm:", 0) != 0) continue;
      if ((std::stoull(line.substr(7), nullptr, 16) >> cap) & 1) return true;
    }
  }
  return false;
}

// A client of genomed's own uid (issue 19): it owned the arena's inode, so
// it could fchmod its read-only descriptor and reopen it writable through
// /proc/self/fd. With CAP_CHOWN (as the systemd unit runs it: a user of its
// own, CAP_CHOWN and CAP_LEASE ambient) genomed gives the inode to root and
// drops the capability: the same steps fail, while genomed's and the
// workers' own access is untouched (a worker killed and replaced maps the
// arena and fills it). On the former code fchmod succeeded, and so did the
// reopen and the writable mapping after it.
TEST(ArenaHardening, AClientOfGenomedsUidCannotMakeTheArenaWritableWhenGenomedHasCapChown) {
  if (::geteuid() != 0) GTEST_SKIP() << "runs genomed as another user: needs root (CI runs as root)";
  const testkit::User nobody{65534, 65534, {CAP_CHOWN, CAP_LEASE}};
  Daemon daemon({.workers = 1, .user = nobody});
  daemon.add_adapter("victim", {});
  Client client = daemon.connect();
  auto lease = client.acquire("victim");
  ASSERT_TRUE(lease.ok()) << lease.status().to_string() << daemon.log();
  const std::string before = bytes_of(lease->tensors()[0].data);

  const ClientAttempt a = attempt_arena_write(nobody, daemon.socket_path());
  ASSERT_EQ(a.connected, 1);
  EXPECT_EQ(a.owner, 0) << "the arena's inode is not root's";
  EXPECT_EQ(a.fchmod_errno, EPERM) << "a client of genomed's uid could change the arena's mode";
  EXPECT_NE(a.reopen_errno, 0) << "a client of genomed's uid could reopen the arena read-write";
  EXPECT_NE(a.map_write_errno, 0) << "a client of genomed's uid could map the arena writable";
  EXPECT_EQ(a.map_read, 1) << "the client cannot even read the arena";
  EXPECT_NE(daemon.log().find("arena given to root"), std::string::npos) << daemon.log();
  // CAP_CHOWN was used once and let go of, by every thread; CAP_LEASE stays.
  EXPECT_FALSE(any_thread_has(daemon.pid(), CAP_CHOWN));
  EXPECT_TRUE(any_thread_has(daemon.pid(), CAP_LEASE));

  // genomed and a replacement worker still fill the arena.
  const auto workers = children_of(daemon.pid());
  ASSERT_EQ(workers.size(), 1u);
  ::kill(workers[0], SIGKILL);
  ASSERT_TRUE(eventually([&] { return daemon.stat("worker_restarts") == 1; })) << daemon.log();
  const std::string dir = daemon.add_adapter("after-kill", megabyte_adapter(7));
  auto next = client.acquire("after-kill");
  ASSERT_TRUE(next.ok()) << next.status().to_string() << daemon.log();
  expect_file_bytes(*next, dir + "/adapter_model.safetensors");
  EXPECT_EQ(bytes_of(lease->tensors()[0].data), before);
}

// Without CAP_CHOWN genomed cannot give the arena away: it says so once at
// start-up, naming the uid and what to do, and serves. The limit it names
// is real: a client of its uid changes the arena's mode.
TEST(ArenaHardening, WithoutCapChownGenomedWarnsThatItsUidCanMakeTheArenaWritable) {
  if (::geteuid() != 0) GTEST_SKIP() << "runs genomed as another user: needs root (CI runs as root)";
  const testkit::User nobody{65534, 65534, {CAP_LEASE}};
  Daemon daemon({.workers = 1, .user = nobody});
  const std::string log = daemon.log();
  const auto at = log.find(
      "the arena's inode belongs to uid 65534, genomed's own (genomed has no CAP_CHOWN): any "
      "process of uid 65534 that connects can make the arena writable");
  ASSERT_NE(at, std::string::npos) << log;
  const auto begin = log.rfind('\n', at) + 1;  // 0 on the first line
  const std::string line = log.substr(begin, log.find('\n', at) - begin);
  EXPECT_NE(line.find("warning"), std::string::npos) << line;
  EXPECT_NE(line.find("grant it CAP_CHOWN"), std::string::npos) << line;
  const ClientAttempt a = attempt_arena_write(nobody, daemon.socket_path());
  ASSERT_EQ(a.connected, 1);
  EXPECT_EQ(a.owner, 65534);
  EXPECT_EQ(a.fchmod_errno, 0);
  daemon.add_adapter("served", {});
  EXPECT_TRUE(daemon.connect().acquire("served").ok()) << daemon.log();
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
