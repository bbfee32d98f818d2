// genome-test-spawner LOG GENOMED [ARGS...]: starts genomed with
// testkit::start_genomed (as the integration tests and genome-bench do),
// prints "PID DIES_WITH_SPAWNER" on stdout once it is ready, then waits for
// stdin to close. Integration tests SIGKILL it to check that a spawner's
// death takes its daemon along (SpawnedDaemon.*).
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tools/testkit/daemon_process.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: genome-test-spawner LOG GENOMED [ARGS...]\n");
    return 2;
  }
  const std::vector<std::string> daemon_argv(argv + 2, argv + argc);
  auto started = genomed::testkit::start_genomed(daemon_argv, argv[1]);
  if (!started) {
    std::fprintf(stderr, "%s\n", started.status().to_string().c_str());
    return 1;
  }
  std::printf("%d %d\n", static_cast<int>(started->pid), started->dies_with_spawner ? 1 : 0);
  std::fflush(stdout);
  char byte;
  while (::read(0, &byte, 1) > 0) {
  }
  return 0;
}
