#include "loader/worker_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/process/args.hpp>
#include <boost/process/child.hpp>
#include <boost/process/exe.hpp>
#include <boost/process/extend.hpp>
#include <chrono>
#include <cstring>
#include <thread>

#include "common/fd.h"
#include "ipc/framing.h"
#include "jobs/job_protocol.h"
#include "loader/access_control.h"

namespace bp = boost::process;

namespace genomed::loader {

struct WorkerProcess::Impl {
  bp::child child;
};

namespace {

constexpr int kWorkerIpcFd = 3;
// Exit code of a child that found its supervisor gone before it could exec.
constexpr int kOrphanedExit = 120;

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return std::string("signal SIG") + (name ? name : std::to_string(WTERMSIG(status)).c_str());
  }
  return "status " + std::to_string(status);
}

}  // namespace

WorkerProcess::WorkerProcess(std::unique_ptr<Impl> impl, pid_t pid, int fd)
    : impl_(std::move(impl)), pid_(pid), fd_(fd) {}

Result<std::unique_ptr<WorkerProcess>> WorkerProcess::spawn(const WorkerSpawnSpec& spec) {
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
    return Status(Errc::environment, std::string("socketpair: ") + std::strerror(errno));
  }
  const int child_end = pair[1];
  // Everything the child needs is prepared here: between fork and exec the
  // child runs only async-signal-safe calls (prctl, getppid, dup2,
  // sigprocmask, close_range, _exit).
  std::vector<std::string> args = {"--ipc-fd", std::to_string(kWorkerIpcFd)};
  args.insert(args.end(), spec.extra_args.begin(), spec.extra_args.end());

  // The worker must die with the supervisor, or a worker stuck in a job when
  // genomed is SIGKILLed is reparented to init and keeps the whole arena
  // alive for ever. The child asks for SIGKILL at its parent's death and then
  // re-checks its parent: genomed may have died between fork and the prctl,
  // in which case the child was already reparented and no signal will come.
  //
  // Done here, in the child between fork and exec, rather than at the top of
  // genome-worker's main() (with a --parent-pid argument), because:
  // - it leaves no window: the guard holds from the fork on, also while the
  //   dynamic loader and static constructors of the worker run (a worker
  //   binary on a hung filesystem could stay in exec or ld.so indefinitely);
  // - it does not depend on the executable at --worker-path cooperating;
  // - it is safe after fork in a multi-threaded process: prctl, getppid and
  //   _exit are plain system calls (no allocation, no lock), and the
  //   expected parent pid is read here, before the fork.
  // The setting survives execve (it is cleared only by exec of a set-user-ID,
  // set-group-ID or file-capability binary, which genome-worker must not be).
  // The kernel's "parent" is the spawning thread: workers are spawned only by
  // the thread that calls Pool::start (genomed's main thread) and by the
  // pool's slot threads, which all live until Pool::stop().
  const pid_t supervisor = ::getpid();
  auto setup = [child_end, supervisor](auto&) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != supervisor)
      ::_exit(kOrphanedExit);
    // Moved above 3 first, so the dup2 never targets itself (which would
    // keep CLOEXEC), then placed at 3 (dup2 clears CLOEXEC).
    ::dup2(::fcntl(child_end, F_DUPFD, 10), kWorkerIpcFd);
    // CLOEXEC rather than close: Boost.Process reports a failed execve
    // through a close-on-exec pipe of its own, which must stay open until
    // exec so that a wrong worker path is an error at spawn.
    ::syscall(SYS_close_range, kWorkerIpcFd + 1, ~0U, CLOSE_RANGE_CLOEXEC);
    // The supervisor blocks SIGINT/SIGTERM for sigwait(); the mask survives
    // exec, so the worker must get a clean one.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
  };

  std::error_code ec;
  auto impl = std::make_unique<Impl>();
  impl->child =
      bp::child(bp::exe = spec.executable, bp::args = args, bp::extend::on_exec_setup = setup, ec);
  ::close(child_end);
  if (ec) {
    ::close(pair[0]);
    return Status(Errc::environment,
                  "cannot start worker '" + spec.executable + "': " + ec.message());
  }
  const pid_t pid = impl->child.id();
  auto worker = std::unique_ptr<WorkerProcess>(new WorkerProcess(std::move(impl), pid, pair[0]));
  // On failure the worker is killed and reaped by its destructor.
  GENOMED_RETURN_IF_ERROR(worker->open_channel(spec.arena_fd));
  return worker;
}

namespace {

// Whether `channel` is a Unix stream socket that worker `pid` created: a
// socketpair's SO_PEERCRED is its creator's pid and uid, fixed when it was
// made, so no other process can offer one that names the worker.
Status check_channel_creator(int channel, pid_t pid) {
  const std::string worker = "worker pid " + std::to_string(pid);
  const auto option = [channel](int name) {
    int value = -1;
    socklen_t len = sizeof value;
    return ::getsockopt(channel, SOL_SOCKET, name, &value, &len) == 0 ? value : -1;
  };
  if (option(SO_DOMAIN) != AF_UNIX || option(SO_TYPE) != SOCK_STREAM) {
    return Status(Errc::worker_protocol,
                  worker + " offered a channel that is not a Unix stream socket");
  }
  auto creator = peer_credentials(channel);
  if (!creator) {
    return Status(Errc::worker_protocol,
                  worker + " offered a channel whose creator cannot be read: " +
                      creator.status().message());
  }
  if (creator->pid != pid || creator->uid != ::geteuid()) {
    return Status(Errc::worker_protocol,
                  worker + " offered a channel created by pid " + std::to_string(creator->pid) +
                      " uid " + std::to_string(creator->uid) +
                      ", not by the worker itself: refused, no arena sent (a process of "
                      "genomed's uid may hold a copy of the socket the worker was started with)");
  }
  return Status::Ok();
}

}  // namespace

Status WorkerProcess::open_channel(int arena_fd) {
  const std::string worker = "worker pid " + std::to_string(pid_);
  // The worker offers its channel as soon as it is non-dumpable, before it
  // reads anything. A pause of genomed longer than the timeout does not fail
  // it: poll looks at the socket once more when its time is up.
  pollfd p{fd_, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, static_cast<int>(kWorkerChannelTimeout.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) {
    return Status(Errc::worker_protocol,
                  worker + " offered no channel within " +
                      std::to_string(kWorkerChannelTimeout.count()) + " ms of its start");
  }
  // The deadline bounds a frame left half-sent (by whoever holds a copy of
  // the worker's socket).
  auto frame = ipc::read_frame(fd_, jobs::kChannelFrame.size(),
                               std::chrono::steady_clock::now() + kWorkerChannelTimeout,
                               /*max_fds=*/1);
  if (!frame) {
    return Status(Errc::worker_protocol,
                  worker + " offered no channel: " + frame.status().message());
  }
  std::vector<Fd> fds;
  for (int fd : frame->fds) fds.emplace_back(fd);
  if (frame->body != jobs::kChannelFrame || fds.size() != 1) {
    return Status(Errc::worker_protocol,
                  worker + "'s first frame is not a channel with one descriptor");
  }
  GENOMED_RETURN_IF_ERROR(check_channel_creator(fds[0].get(), pid_));
  // Only the worker can read this: it holds the channel's other end.
  if (Status sent = ipc::write_frame(fds[0].get(), jobs::kArenaFrame, arena_fd,
                                     std::chrono::steady_clock::now() + kWorkerChannelTimeout);
      !sent.ok()) {
    return Status(Errc::worker_protocol,
                  "cannot hand the arena to " + worker + ": " + sent.message());
  }
  // Nothing more goes over the socket it was started with.
  ::close(fd_);
  fd_ = fds[0].release();
  return Status::Ok();
}

void WorkerProcess::kill(int sig) {
  if (reaped_) return;
  if (sig > 0 && sig <= 64) signals_sent_ |= std::uint64_t{1} << (sig - 1);
  ::kill(pid_, sig);
}

std::string WorkerProcess::reap() {
  if (reaped_) return exit_description_;
  std::error_code ec;
  impl_->child.wait(ec);
  reaped_ = true;
  if (ec) {
    exit_description_ = "unknown (" + ec.message() + ")";
    return exit_description_;
  }
  const int status = impl_->child.native_exit_code();
  exit_description_ = describe_status(status);
  exit_.known = WIFEXITED(status) || WIFSIGNALED(status);
  exit_.signaled = WIFSIGNALED(status);
  if (exit_.signaled) {
    exit_.signal = WTERMSIG(status);
    exit_.signal_sent_by_us =
        exit_.signal > 0 && exit_.signal <= 64 && (signals_sent_ >> (exit_.signal - 1) & 1) != 0;
  } else if (WIFEXITED(status)) {
    exit_.code = WEXITSTATUS(status);
  }
  return exit_description_;
}

WorkerProcess::~WorkerProcess() {
  if (fd_ >= 0) ::close(fd_);  // the worker sees EOF and exits
  if (!reaped_) {
    // Grace for a clean exit, then SIGKILL; either way exactly one reap.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
    std::error_code ec;
    while (impl_->child.running(ec) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (!ec && impl_->child.running(ec)) kill(SIGKILL);
    reap();
  }
}

}  // namespace genomed::loader
