// One genome-worker process and the supervisor's end of the channel to it. This
// is the only translation unit that includes Boost.Process (heavy headers;
// one place to reason about fork/exec and reaping).
//
// Reaping: the pool thread that owns a WorkerProcess is its only reaper; it
// calls reap() once it has seen EOF on the socket (the process' end closes
// when it exits, so death is learnt from the process itself, not guessed) or
// after kill(). No SIGCHLD handler exists anywhere in genomed.
//
// Lifetime: a worker never outlives the supervisor. It is spawned with
// PR_SET_PDEATHSIG = SIGKILL, so the kernel kills it when genomed dies by any
// means (SIGKILL, a crash), and it then holds no arena mapping or descriptor.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace genomed::loader {

// How a reaped worker ended.
struct WorkerExit {
  bool known = false;     // false if the wait status could not be obtained
  bool signaled = false;  // killed by `signal`; otherwise exited with `code`
  int signal = 0;
  int code = 0;
  // True if the supervisor itself had sent `signal` to it (kill()).
  bool signal_sent_by_us = false;
};

// How long spawn() waits for a new worker's channel. The worker offers it
// first thing (its dynamic loading and a prctl: milliseconds); the wait
// ends at once if the worker dies.
inline constexpr std::chrono::milliseconds kWorkerChannelTimeout{10000};

struct WorkerSpawnSpec {
  std::string executable;               // path of genome-worker
  int arena_fd = -1;                    // read-write; sent on the worker's channel (spawn())
  std::vector<std::string> extra_args;  // test-only fault injection, etc.
};

class WorkerProcess {
 public:
  // Forks and execs the worker with its socket as fd 3; every other
  // descriptor is closed in the child, signals are unblocked. Then waits
  // (up to kChannelTimeout) for the worker's channel and hands it the arena
  // there.
  //
  // Why a channel: from the exec until the worker's prctl(PR_SET_DUMPABLE,
  // 0) its /proc/<worker>/fd is open to every process of the uid, so the
  // socket it was started with may have been copied (pidfd_getfd) and
  // whatever genomed writes there read by the copy. So the worker, once
  // non-dumpable, makes a socketpair and offers one end on that socket
  // (jobs::kChannelFrame); genomed takes it only if SO_PEERCRED says the
  // worker itself created it (a socketpair carries its creator's pid and
  // uid: one an intruder made names the intruder), sends the arena's
  // read-write descriptor there (jobs::kArenaFrame), closes the first
  // socket and talks to the worker only on the channel from then on.
  //
  // Errors: Errc::environment if it cannot start it (a wrong executable
  // path, no socketpair, no process); Errc::worker_protocol if the worker
  // offered no channel in time, or one it did not make (the worker is then
  // killed and reaped).
  static Result<std::unique_ptr<WorkerProcess>> spawn(const WorkerSpawnSpec& spec);

  // Closes the socket (the worker exits on EOF), waits up to a short grace,
  // then SIGKILLs and reaps. Never leaves a zombie.
  ~WorkerProcess();

  WorkerProcess(const WorkerProcess&) = delete;
  WorkerProcess& operator=(const WorkerProcess&) = delete;

  pid_t pid() const { return pid_; }
  // The channel to the worker (once spawn() returned it: the one the
  // worker made after its prctl).
  int fd() const { return fd_; }

  // Sends `sig` to the worker (no-op once reaped), remembering that the
  // supervisor sent it.
  void kill(int sig);
  // Blocks until the process has exited and reaps it. Returns how it ended,
  // e.g. "exit code 3" or "signal SIGKILL". Idempotent.
  std::string reap();
  bool reaped() const { return reaped_; }
  // How it ended; meaningful once reaped.
  const WorkerExit& exit() const { return exit_; }

 private:
  struct Impl;
  WorkerProcess(std::unique_ptr<Impl> impl, pid_t pid, int fd);
  // spawn()'s hand-over on the socket the worker was started with (fd_):
  // takes the worker's channel, checks who made it, sends the arena there
  // and makes it fd_.
  Status open_channel(int arena_fd);
  std::unique_ptr<Impl> impl_;
  pid_t pid_;
  int fd_;
  bool reaped_ = false;
  std::string exit_description_;
  WorkerExit exit_;
  std::uint64_t signals_sent_ = 0;  // bit n-1 set: signal n was sent by kill()
};

}  // namespace genomed::loader
