// genomed under systemd: the unit files in dist/systemd/ pass
// `systemd-analyze verify`; the daemon tells a NOTIFY_SOCKET READY=1 once
// serving and STOPPING=1 when it stops; and it serves on a listening socket
// passed by socket activation (LISTEN_FDS / LISTEN_PID), as systemd would;
// the CAP_LEASE the unit grants stays with genomed, out of its workers, and
// its CAP_CHOWN is dropped once used.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "integration/daemon_fixture.h"
#include "tools/testkit/eventually.h"
#include "tools/testkit/proc.h"

namespace genomed::testing {
namespace {

namespace fs = std::filesystem;

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  return addr;
}


TEST(Systemd, UnitFilesPassSystemdAnalyzeVerify) {
  ASSERT_TRUE(fs::exists("/usr/bin/systemd-analyze"))
      << "systemd-analyze is missing: scripts/install-deps.sh installs the systemd package";
  const ScratchDir dir("genomed-sd");
  const std::string src = std::string(GENOMED_SOURCE_DIR) + "/dist/systemd/";
  // ExecStart= must name an existing executable: this build's genomed.
  std::string service = read_file(src + "genomed.service");
  ASSERT_NE(service.find("ExecStart=/usr/bin/genomed "), std::string::npos);
  service = std::regex_replace(service, std::regex("/usr/bin/genomed "), binary("genomed") + " ");
  std::ofstream(dir.path() + "/genomed.service") << service;
  fs::copy_file(src + "genomed.socket", dir.path() + "/genomed.socket");
  const std::string before = fs::current_path();
  fs::current_path(dir.path());
  const auto r =
      run_command({"/usr/bin/systemd-analyze", "verify", "genomed.service", "genomed.socket"});
  fs::current_path(before);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // verify exits 0 on some mistakes (an unknown Type=, a misspelt key) and
  // only warns: any output is a failure.
  EXPECT_EQ(r.err, "") << r.err;
  EXPECT_EQ(r.out, "") << r.out;
  // The drain fits in the stop timeout (docs/operations.md, "Signals").
  std::smatch drain, stop;
  ASSERT_TRUE(std::regex_search(service, drain, std::regex("--drain-timeout (\\d+)s")));
  ASSERT_TRUE(std::regex_search(service, stop, std::regex("TimeoutStopSec=(\\d+)s")));
  EXPECT_LT(std::stoi(drain[1]) + 5, std::stoi(stop[1]));
  EXPECT_NE(service.find("Type=notify"), std::string::npos);
}

// A datagram socket standing in for systemd's notification socket.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    const sockaddr_un addr = unix_address(path);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0)
        << std::strerror(errno);
    timeval tv{30, 0};  // a liveness bound, not a timing assertion
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() { ::close(fd_); }
  // The next message ("" if none came within the bound).
  std::string next() {
    char buf[4096];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
  }

 private:
  std::string path_;
  int fd_ = -1;
};

TEST(Systemd, NotifiesReadyOnceServingAndStoppingOnSigterm) {
  const ScratchDir dir("genomed-sd");
  NotifySocket notify(dir.path() + "/notify");
  ::setenv("NOTIFY_SOCKET", (dir.path() + "/notify").c_str(), 1);
  Daemon d;
  ::unsetenv("NOTIFY_SOCKET");
  const std::string ready = notify.next();
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
  EXPECT_NE(ready.find("STATUS=serving on " + d.socket_path()), std::string::npos) << ready;
  // READY=1 came once the socket accepts clients.
  EXPECT_TRUE(d.connect().health().ok());
  EXPECT_EQ(d.stop(), 0);
  const std::string stopping = notify.next();
  EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << stopping << d.log();
}

// Forks a "service manager": the child puts `fds` at 3, 4, ..., sets
// LISTEN_FDS and LISTEN_PID to its own pid (which exec keeps), and execs
// genomed, whose readiness comes on a pipe at the next descriptor.
pid_t start_activated(const std::vector<int>& fds, const std::string& socket_path,
                      const std::string& root, const std::string& log, int* ready_read) {
  int pipe_fds[2];
  EXPECT_EQ(::pipe(pipe_fds), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(log_fd, 2);
    // Out of the way of 3.. first, then into place.
    const int ready_fd = ::fcntl(pipe_fds[1], F_DUPFD, 100);
    std::vector<int> high;
    for (int fd : fds) high.push_back(::fcntl(fd, F_DUPFD, 110 + static_cast<int>(high.size())));
    for (std::size_t i = 0; i < high.size(); ++i) ::dup2(high[i], 3 + static_cast<int>(i));
    const int ready_at = 3 + static_cast<int>(high.size());
    ::dup2(ready_fd, ready_at);
    ::setenv("LISTEN_FDS", std::to_string(fds.size()).c_str(), 1);
    ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1);
    const std::string genomed = binary("genomed");
    const std::string ready = std::to_string(ready_at);
    ::execl(genomed.c_str(), genomed.c_str(), "--socket", socket_path.c_str(), "--root",
            root.c_str(), "--workers", "1", "--budget", "16M", "--ready-fd", ready.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(pipe_fds[1]);
  *ready_read = pipe_fds[0];
  return pid;
}

int listening_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un addr = unix_address(path);
  EXPECT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  EXPECT_EQ(::listen(fd, 16), 0);
  return fd;
}

TEST(Systemd, ServesOnAnActivatedSocketAndLeavesItsFileInPlace) {
  const ScratchDir dir("genomed-sd");
  fs::create_directory(dir.path() + "/root");
  const std::string path = dir.path() + "/activated.sock";
  const int listen_fd = listening_socket(path);
  // A client may connect before genomed runs: systemd queues it on the socket.
  int ready_fd = -1;
  const pid_t pid =
      start_activated({listen_fd}, path, dir.path() + "/root", dir.path() + "/log", &ready_fd);
  ::close(listen_fd);
  char buf[16] = {};
  const ssize_t n = ::read(ready_fd, buf, sizeof buf);  // EOF if it died
  ::close(ready_fd);
  ASSERT_GT(n, 0) << read_file(dir.path() + "/log");
  auto c = Client::connect(path, "activation-test");
  ASSERT_TRUE(c.ok()) << c.status().to_string();
  auto h = c->health();
  ASSERT_TRUE(h.ok()) << h.status().to_string();
  EXPECT_TRUE(h->healthy) << h->reason;
  EXPECT_NE(read_file(dir.path() + "/log").find("socket-activated"), std::string::npos);
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(dir.path() + "/log");
  // The socket file is systemd's (RemoveOnStop=): genomed leaves it.
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
}

TEST(Systemd, TwoActivatedSocketsAreRefusedAtStart) {
  const ScratchDir dir("genomed-sd");
  fs::create_directory(dir.path() + "/root");
  const int a = listening_socket(dir.path() + "/a.sock");
  const int b = listening_socket(dir.path() + "/b.sock");
  int ready_fd = -1;
  const pid_t pid = start_activated({a, b}, dir.path() + "/a.sock", dir.path() + "/root",
                                    dir.path() + "/log", &ready_fd);
  ::close(a);
  ::close(b);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(ready_fd);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << status;
  EXPECT_NE(read_file(dir.path() + "/log").find("genomed takes exactly one"), std::string::npos)
      << read_file(dir.path() + "/log");
}

// A capability set of /proc/PID/status ("CapEff", "CapAmb", ...).
std::uint64_t capabilities(pid_t pid, const std::string& set) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(set + ":", 0) == 0) return std::stoull(line.substr(set.size() + 1), nullptr, 16);
  }
  return ~0ull;  // gone: no set would match what the test expects
}

TEST(Systemd, TheAmbientCapLeaseOfTheUnitStaysWithGenomedAndNotItsWorkers) {
  // As the unit runs it: a user of its own, CAP_LEASE and CAP_CHOWN as
  // ambient capabilities (setpriv does what AmbientCapabilities= does).
  // genomed needs CAP_LEASE for the read leases on files other users write,
  // and CAP_CHOWN once, to give the arena to root; its workers, which parse
  // untrusted files, must have neither.
  if (::geteuid() != 0) GTEST_SKIP() << "switching to another user needs root";
  ASSERT_TRUE(fs::exists("/usr/bin/setpriv")) << "setpriv (util-linux) is missing";
  const ScratchDir dir("genomed-caps");
  fs::create_directory(dir.path() + "/root");
  fs::permissions(dir.path(), fs::perms::all);  // its socket is made there by user 65534
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const std::string genomed = binary("genomed");
  const std::string socket_path = dir.path() + "/s.sock";
  const std::string root = dir.path() + "/root";
  const std::string log = dir.path() + "/log";
  const std::string ready_fd = std::to_string(ready[1]);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(ready[0]);
    ::dup2(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600), 2);
    ::execl("/usr/bin/setpriv", "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
            "--inh-caps=+lease,+chown", "--ambient-caps=+lease,+chown", genomed.c_str(), "--socket",
            socket_path.c_str(), "--root", root.c_str(), "--workers", "1", "--budget", "16M",
            "--ready-fd", ready_fd.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(ready[1]);
  char buf[16] = {};
  const ssize_t n = ::read(ready[0], buf, sizeof buf);  // EOF if it died
  ::close(ready[0]);
  ASSERT_GT(n, 0) << read_file(log);
  // CAP_CHOWN was used once (the arena given to root) and dropped.
  const std::uint64_t lease = 1ull << CAP_LEASE;
  EXPECT_EQ(capabilities(pid, "CapEff"), lease) << read_file(log);
  EXPECT_EQ(capabilities(pid, "CapPrm"), lease) << read_file(log);
  std::vector<pid_t> workers;
  EXPECT_TRUE(testkit::eventually([&] { return !(workers = testkit::children_of(pid)).empty(); }));
  for (const pid_t w : workers) {
    EXPECT_EQ(capabilities(w, "CapEff"), 0u) << "worker " << w;
    EXPECT_EQ(capabilities(w, "CapPrm"), 0u) << "worker " << w;
    EXPECT_EQ(capabilities(w, "CapAmb"), 0u) << "worker " << w;
  }
  ::kill(pid, SIGTERM);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << read_file(log);
}

}  // namespace
}  // namespace genomed::testing
