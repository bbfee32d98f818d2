#include "run_cleanup.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace genomed::bench {
namespace {

std::vector<pid_t> g_daemons;
std::string g_scratch[2];  // indexed by Scratch

}  // namespace

void track_daemon(pid_t pid) { g_daemons.push_back(pid); }

void untrack_daemon(pid_t pid) { std::erase(g_daemons, pid); }

void remove_on_failure(Scratch which, std::string dir) {
  g_scratch[static_cast<int>(which)] = std::move(dir);
}

void die(const std::string& what) {
  std::fprintf(stderr, "genome-bench: %s\n", what.c_str());
  std::fflush(stderr);
  for (pid_t pid : g_daemons) {
    ::kill(pid, SIGTERM);
    for (int i = 0; i < 500 && ::waitpid(pid, nullptr, WNOHANG) == 0; ++i) ::usleep(10'000);
    if (::waitpid(pid, nullptr, WNOHANG) == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  for (const std::string& dir : g_scratch) {
    std::error_code ec;
    if (!dir.empty()) std::filesystem::remove_all(dir, ec);
  }
  std::_Exit(1);
}

}  // namespace genomed::bench
