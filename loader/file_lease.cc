#include "loader/file_lease.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "common/mutex.h"
#include "common/safe_text.h"

namespace genomed::loader {
namespace {

// Watchers running (0 or 1 in genomed; tests may start one after another).
std::atomic<int> g_watchers{0};

// The descriptors holding a lease, with the file (dev, ino) each was taken
// on. A break's signal names a descriptor number (ssi_fd) that may have been
// closed since and reused; F_GETLEASE reads F_UNLCK on any descriptor
// without a lease, so only a registered number still open on its file is a
// break. Held across the watcher's look and release, so that release_lease()
// (before every close of a leased descriptor) cannot close it in between.
Mutex g_leased_mu;
std::map<int, std::pair<dev_t, ino_t>> g_leased GUARDED_BY(g_leased_mu);

// Why leases were unavailable, each logged once per process.
enum Reason { kNoWatcher, kNotOwner, kNotSupported, kOther, kReasons };
std::atomic<bool> g_logged[kReasons];

void log_unavailable_once(int error, const std::string& label) {
  const Reason reason = error == ENOTSUP  ? kNoWatcher
                        : error == EACCES ? kNotOwner
                        : error == EINVAL ? kNotSupported
                                          : kOther;
  if (g_logged[reason].exchange(true)) return;
  const char* why = reason == kNoWatcher ? "no lease-break watcher runs"
                    : reason == kNotOwner
                        ? "genomed neither owns the file nor has CAP_LEASE"
                    : reason == kNotSupported ? "its file system does not support leases"
                                              : "the kernel refused it";
  spdlog::warn(
      "no read lease on {} ({}: {}): a rewrite in place during a load is detected by the "
      "file's timestamps only (docs/failure-model.md); logged once per cause",
      printable(label), why, std::strerror(error));
}

}  // namespace

int LeaseBreakWatcher::signal_number() { return SIGRTMIN + 1; }

void LeaseBreakWatcher::block_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signal_number());
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

LeaseAttempt take_read_lease(int fd, const std::string& label) {
  LeaseAttempt out;
  struct stat st {};
  // Registered under the lock it is taken under: a break signalled at once
  // waits for the watcher to find it registered.
  MutexLock lock(g_leased_mu);
  if (g_watchers.load(std::memory_order_acquire) == 0) {
    out.error = ENOTSUP;
  } else if (::fstat(fd, &st) != 0 ||
             ::fcntl(fd, F_SETSIG, LeaseBreakWatcher::signal_number()) != 0 ||
             ::fcntl(fd, F_SETLEASE, F_RDLCK) != 0) {
    out.error = errno;
  } else {
    g_leased[fd] = {st.st_dev, st.st_ino};
    out.taken = LeaseTaken::held;
    return out;
  }
  if (out.error == EAGAIN) {
    out.taken = LeaseTaken::busy;
  } else {
    log_unavailable_once(out.error, label);
  }
  return out;
}

bool lease_intact(int fd) { return ::fcntl(fd, F_GETLEASE) == F_RDLCK; }

void release_lease(int fd) {
  MutexLock lock(g_leased_mu);
  g_leased.erase(fd);
  (void)::fcntl(fd, F_SETLEASE, F_UNLCK);
}

Result<std::unique_ptr<LeaseBreakWatcher>> LeaseBreakWatcher::start() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, signal_number());
  sigset_t blocked;
  pthread_sigmask(SIG_BLOCK, nullptr, &blocked);
  if (sigismember(&blocked, signal_number()) != 1) {
    return Status(Errc::environment,
                  "the lease-break signal is not blocked (LeaseBreakWatcher::block_signal)");
  }
  Fd signals(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  Fd stop(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!signals.valid() || !stop.valid()) {
    return Status(Errc::environment,
                  std::string("cannot watch for lease breaks: ") + std::strerror(errno));
  }
  std::unique_ptr<LeaseBreakWatcher> w(new LeaseBreakWatcher(std::move(signals), std::move(stop)));
  g_watchers.fetch_add(1, std::memory_order_release);
  return w;
}

LeaseBreakWatcher::LeaseBreakWatcher(Fd signals, Fd stop)
    : signals_(std::move(signals)), stop_(std::move(stop)), thread_([this] { run(); }) {}

LeaseBreakWatcher::~LeaseBreakWatcher() {
  // No new lease from here on; a break of one still held is left to
  // lease-break-time (the load it belongs to fails its check all the same).
  g_watchers.fetch_sub(1, std::memory_order_release);
  const std::uint64_t one = 1;
  (void)!::write(stop_.get(), &one, sizeof one);
  thread_.join();
}

void LeaseBreakWatcher::run() {
  for (;;) {
    pollfd fds[2] = {{signals_.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;  // EINTR
    if (fds[1].revents != 0) return;
    signalfd_siginfo info[16];
    const ssize_t got = ::read(signals_.get(), info, sizeof info);
    if (got <= 0) continue;
    for (std::size_t i = 0; i < static_cast<std::size_t>(got) / sizeof info[0]; ++i) {
      // ssi_fd is the descriptor the lease was taken on. It may have been
      // closed since and its number reused: only a registered descriptor
      // still open on the file it was leased on counts, and only once its
      // lease is being broken (F_GETLEASE reads F_UNLCK while a break is
      // pending); an intact lease on a file that reused the number is left
      // alone.
      const int fd = static_cast<int>(info[i].ssi_fd);
      MutexLock lock(g_leased_mu);
      const auto it = g_leased.find(fd);
      if (it == g_leased.end()) continue;
      struct stat st {};
      if (::fstat(fd, &st) != 0 || std::pair(st.st_dev, st.st_ino) != it->second) {
        g_leased.erase(it);  // closed without release_lease and reused
        continue;
      }
      if (::fcntl(fd, F_GETLEASE) == F_UNLCK) {
        // Counted before the lease is let go: the writer the break holds up
        // returns only after the release, and must find the break counted.
        breaks_.fetch_add(1, std::memory_order_seq_cst);
        g_leased.erase(it);
        (void)::fcntl(fd, F_SETLEASE, F_UNLCK);
      }
    }
  }
}

}  // namespace genomed::loader
