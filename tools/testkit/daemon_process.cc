#include "tools/testkit/daemon_process.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

namespace genomed::testkit {
namespace {

// The child's exit code when its spawner died between fork and prctl.
constexpr int kSpawnerGoneExit = 125;
// ... when it could not take the user's credentials.
constexpr int kCannotBecomeUserExit = 124;

}  // namespace

Result<DaemonProcess> start_genomed(std::vector<std::string> argv, const std::string& log_path,
                                    std::chrono::milliseconds timeout, bool stdout_too,
                                    std::optional<User> user) {
  const auto t0 = std::chrono::steady_clock::now();
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0)
    return Status(Errc::environment, std::string("pipe2: ") + std::strerror(errno));
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    ::close(ready[0]);
    ::close(ready[1]);
    return Status(Errc::environment, "open " + log_path + ": " + std::strerror(errno));
  }
  argv.push_back("--ready-fd");
  argv.push_back("3");
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);

  // Read before the fork: the child calls only async-signal-safe functions
  // (the spawner may have other threads).
  const pid_t spawner = ::getpid();
  const bool tie_to_spawner = ::gettid() == spawner;  // the main thread (see the header)
  // The user's capabilities: kept across setuid (PR_SET_KEEPCAPS), then
  // made effective, inheritable and ambient, so they survive the exec.
  const std::vector<int> caps = user ? user->ambient_caps : std::vector<int>{};
  __user_cap_header_struct cap_header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct cap_data[_LINUX_CAPABILITY_U32S_3]{};
  for (const int cap : caps) {
    const std::uint32_t bit = 1u << (cap % 32);
    cap_data[cap / 32].effective |= bit;
    cap_data[cap / 32].permitted |= bit;
    cap_data[cap / 32].inheritable |= bit;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Before the prctl: a change of credentials clears the parent-death signal.
    if (user && ((!caps.empty() && ::prctl(PR_SET_KEEPCAPS, 1) != 0) ||
                 ::setgroups(0, nullptr) != 0 || ::setgid(user->gid) != 0 ||
                 ::setuid(user->uid) != 0)) {
      ::_exit(kCannotBecomeUserExit);
    }
    if (!caps.empty()) {
      if (::syscall(SYS_capset, &cap_header, cap_data) != 0) ::_exit(kCannotBecomeUserExit);
      for (const int cap : caps) {
        if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
          ::_exit(kCannotBecomeUserExit);
      }
    }
    if (tie_to_spawner &&
        (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != spawner)) {
      ::_exit(kSpawnerGoneExit);  // the spawner died before the guard held
    }
    ::dup2(ready[1], 3);  // dup2 clears O_CLOEXEC on the copy
    ::dup2(log_fd, 2);
    // Never the caller's stdout: a daemon (or a worker) that outlives a test
    // process killed by a sanitizer would hold ctest's output pipe open, and
    // ctest would wait for it until its timeout.
    if (stdout_too) {
      ::dup2(log_fd, 1);
    } else if (const int null = ::open("/dev/null", O_WRONLY); null >= 0) {
      ::dup2(null, 1);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(ready[1]);
  ::close(log_fd);
  if (pid < 0) {
    ::close(ready[0]);
    return Status(Errc::environment, std::string("fork: ") + std::strerror(errno));
  }
  char buf[16] = {};
  pollfd p{ready[0], POLLIN, 0};
  const bool got = ::poll(&p, 1, static_cast<int>(timeout.count())) == 1 &&
                   ::read(ready[0], buf, sizeof buf) > 0;
  ::close(ready[0]);
  if (!got) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    std::ifstream in(log_path);
    std::stringstream log;
    log << in.rdbuf();
    return Status(Errc::not_connected,
                  argv[0] + " did not become ready (exited or silent); its log:\n" + log.str());
  }
  return DaemonProcess{
      pid,
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(),
      tie_to_spawner};
}

}  // namespace genomed::testkit
