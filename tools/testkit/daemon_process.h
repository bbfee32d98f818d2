// Starts a genomed process and waits for its readiness notification
// (--ready-fd: "ready\n" once it accepts clients, EOF if it dies first): no
// polling of the socket, no sleeps. Shared by the integration tests' Daemon
// fixture and genome-bench.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace genomed::testkit {

struct DaemonProcess {
  pid_t pid = -1;
  double ready_ms = 0;  // from fork to the readiness notification
  // The kernel SIGKILLs the daemon when its spawner dies (see start_genomed).
  bool dies_with_spawner = false;
};

// Runs `argv` (argv[0]: the genomed binary; `--ready-fd 3` is appended),
// with stderr, and stdout unless `stdout_too` is false, going to `log_path`.
// Fails with the daemon's log if it exits or stays silent for `timeout`;
// the child is then killed and reaped.
//
// Called on the process's main thread, the daemon dies with its spawner: a
// test or genome-bench SIGKILLed (ctest's timeout, a sanitizer abort) would
// otherwise leave a daemon and its workers running, with their arena, for
// ever. The child sets PR_SET_PDEATHSIG = SIGKILL before exec, and exits at
// once if the spawner already died between fork and prctl. SIGKILL rather
// than SIGTERM: the spawner is gone, so no one waits for a clean stop, and a
// SIGTERM would stay pending in a daemon a test had SIGSTOPped (or that a
// drain holds up); genomed's workers have SIGKILL as their parent-death
// signal too, so they follow it, and the arena goes with the last of them.
// The kernel sends the signal when the *thread* that forked exits, not the
// process: called on any other thread, the daemon is not tied to its
// spawner (it would die with that thread), and dies_with_spawner says so.
// Every current caller (the integration tests' Daemon, genome-bench,
// genome-stress --spawn) starts daemons on its main thread.
// With `user`, the daemon runs as that uid and gid with no supplementary
// groups (the caller must be root), and with `ambient_caps` (CAP_CHOWN,
// CAP_LEASE, ...) as ambient capabilities, as systemd's
// AmbientCapabilities= and `setpriv --inh-caps --ambient-caps` start it.
struct User {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<int> ambient_caps;
};
Result<DaemonProcess> start_genomed(std::vector<std::string> argv, const std::string& log_path,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                    bool stdout_too = true, std::optional<User> user = {});

}  // namespace genomed::testkit
