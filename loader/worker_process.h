// One genome-worker process and the supervisor's end of its socketpair. This
// is the only translation unit that includes Boost.Process (heavy headers;
// one place to reason about fork/exec and reaping).
//
// Reaping: the pool thread that owns a WorkerProcess is its only reaper; it
// calls reap() once it has seen EOF on the socket (the process' end closes
// when it exits, so death is learnt from the process itself, not guessed) or
// after kill(). No SIGCHLD handler exists anywhere in genomed.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace genomed::loader {

struct WorkerSpawnSpec {
  std::string executable;               // path of genome-worker
  int arena_fd = -1;                    // becomes fd 4 in the worker (read-write)
  std::vector<std::string> extra_args;  // test-only fault injection, etc.
};

class WorkerProcess {
 public:
  // Forks and execs the worker with its socket as fd 3 and the arena as fd 4;
  // every other descriptor is closed in the child, signals are unblocked.
  static Result<std::unique_ptr<WorkerProcess>> spawn(const WorkerSpawnSpec& spec);

  // Closes the socket (the worker exits on EOF), waits up to a short grace,
  // then SIGKILLs and reaps. Never leaves a zombie.
  ~WorkerProcess();

  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return pid_; }
  int fd() const { return fd_; }

  // Sends `sig` to the worker (no-op once reaped).
  void kill(int sig);
  // Blocks until the process has exited and reaps it. Returns how it ended,
  // e.g. "exit code 3" or "signal SIGKILL". Idempotent.
  std::string reap();
  bool reaped() const { return reaped_; }

 private:
  struct Impl;
  WorkerProcess(std::unique_ptr<Impl> impl, pid_t pid, int fd);
  std::unique_ptr<Impl> impl_;
  pid_t pid_;
  int fd_;
  bool reaped_ = false;
  std::string exit_description_;
};

}  // namespace genomed::loader
