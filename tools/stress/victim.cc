#include "tools/stress/victim.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "genomed/client.h"

extern char** environ;

namespace genomed::stress {

int victim_main(const Options& options) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the harness
  if (::getppid() == 1) return 1;
  auto client = Client::connect(options.socket, "genome-stress victim");
  std::string line;
  std::optional<Lease> lease;
  if (client) {
    (void)!::write(1, "C\n", 2);  // connected: from now on it may wait for a load
    auto l = client->acquire(options.victim_adapter);
    if (l) {
      lease.emplace(std::move(*l));
      line = "H\n";
    } else {
      line = "E " + std::string(errc_name(l.code())) + "\n";
    }
  } else {
    line = "E " + std::string(errc_name(client.code())) + "\n";
  }
  (void)!::write(1, line.data(), line.size());
  if (!lease) return 0;
  for (;;) ::pause();  // holds the lease until killed
}

Result<Victim> spawn_victim(const std::string& self_exe, const std::string& socket,
                            const std::string& adapter) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    return Status(Errc::environment, std::string("pipe2: ") + std::strerror(errno));
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
  std::vector<std::string> args = {self_exe, "--victim", socket, adapter};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, self_exe.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipefd[1]);
  if (rc != 0) {
    ::close(pipefd[0]);
    return Status(Errc::environment, "posix_spawn " + self_exe + ": " + std::strerror(rc));
  }
  ::fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
  Victim v;
  v.pid = pid;
  v.out = pipefd[0];
  v.started = std::chrono::steady_clock::now();
  return v;
}

void poll_victim(Victim& v) {
  char buf[64];
  const ssize_t n = ::read(v.out, buf, sizeof buf);
  for (ssize_t i = 0; i < n; ++i) {
    if (buf[i] == 'C' && !v.connected) {
      v.connected = true;
      v.kill_at += std::chrono::steady_clock::now() - v.started;
    }
    if (buf[i] == 'H') v.held = true;
    if (buf[i] == 'E') v.ended = true;
  }
}

void kill_victim(Victim& v) {
  if (v.pid > 0) {
    ::kill(v.pid, SIGKILL);
    ::waitpid(v.pid, nullptr, 0);
    v.pid = -1;
  }
  if (v.out >= 0) ::close(v.out);
  v.out = -1;
}

}  // namespace genomed::stress
