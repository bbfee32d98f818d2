// Starts a genomed process and waits for its readiness notification
// (--ready-fd: "ready\n" once it accepts clients, EOF if it dies first): no
// polling of the socket, no sleeps. Shared by the integration tests' Daemon
// fixture and genome-bench.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace genomed::testkit {

struct DaemonProcess {
  pid_t pid = -1;
  double ready_ms = 0;  // from fork to the readiness notification
};

// Runs `argv` (argv[0]: the genomed binary; `--ready-fd 3` is appended),
// with stderr, and stdout unless `stdout_too` is false, going to `log_path`.
// Fails with the daemon's log if it exits or stays silent for `timeout`;
// the child is then killed and reaped.
Result<DaemonProcess> start_genomed(std::vector<std::string> argv, const std::string& log_path,
                                    std::chrono::milliseconds timeout = std::chrono::seconds(60),
                                    bool stdout_too = true);

}  // namespace genomed::testkit
