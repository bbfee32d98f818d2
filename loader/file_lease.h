// Read leases on a load's open files: the proof that no one wrote them while
// the load read them. File identities (file_identity.h) miss a write whose
// timestamp update came before the load's fstat but whose bytes were copied
// after it (a large pwrite updates the times first, then copies page by
// page), and writes within one tick of a coarse clock. A read lease
// (fcntl F_SETLEASE F_RDLCK) does not depend on timestamps:
//
//  - it is refused (EAGAIN) while anyone has the file open for writing (or
//    mapped writable): a write may be in progress, so the load is refused
//    with `file_changed` rather than read it;
//  - once held, anyone opening the file for writing, or truncating it by
//    name, first *breaks* it: the kernel signals the holder and holds the
//    opener back until the holder lets go (or /proc/sys/fs/lease-break-time
//    passes). So no byte of the file changes while the lease is intact, and
//    a lease still intact (F_GETLEASE == F_RDLCK) after the last read means
//    every read of the load saw one version.
//
// The lease belongs to the open file description genomed opened, which the
// workers share (the descriptors passed with each job), so one lease covers
// the probe and every part of the fill, in whichever worker they run.
//
// Breaks are reported with a real-time signal (F_SETSIG), blocked in every
// thread and read from a signalfd by the LeaseBreakWatcher's thread, which
// lets a broken lease go at once (F_UNLCK) so the writer is not held up.
// The signal names a descriptor number: only one registered by
// take_read_lease(), not released since and still open on the file it was
// leased on is acted on (a number closed and reused is not a break);
// the load learns of the break from F_GETLEASE after its last read and
// fails with `file_changed`. Leases are taken only while a watcher runs
// (the signal's default action would end the process).
//
// Limits (docs/failure-model.md): the lease needs genomed to own the file or
// to have CAP_LEASE (else EACCES), and a file system that supports leases
// (NFS, FUSE, some overlayfs setups answer EINVAL). Without one the load
// falls back to the identity check alone, and the first such file is logged.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "common/fd.h"
#include "common/status.h"

namespace genomed::loader {

// How taking a read lease on a file went.
enum class LeaseTaken {
  held,         // intact until someone opens the file for writing or truncates it
  busy,         // the file is open for writing (or mapped writable) now: EAGAIN
  unavailable,  // no lease possible: `error` says why (no watcher, EACCES, EINVAL...)
};

struct LeaseAttempt {
  LeaseTaken taken = LeaseTaken::unavailable;
  int error = 0;  // errno when unavailable; 0 and no watcher: ENOTSUP is reported
};

// Takes a read lease on `fd` (open O_RDONLY), reported with the watcher's
// signal, and registers `fd` with its file's (dev, ino): the watcher acts
// only on a registered descriptor still open on that file. `label` names the
// file in the one warning logged when leases are unavailable for a reason
// not seen before.
LeaseAttempt take_read_lease(int fd, const std::string& label);

// True while the lease taken on `fd` is intact: nobody opened the file for
// writing or truncated it since. False once broken, released or never held.
bool lease_intact(int fd);

// Lets the lease on `fd` go (if any) and unregisters `fd`. Call it before
// closing a leased descriptor: the lease may outlive it (the workers hold
// the open file too), and its number may be reused.
void release_lease(int fd);

// The thread that lets broken leases go. One per process (the signal is the
// process's); leases are taken only while it runs.
class LeaseBreakWatcher {
 public:
  // The real-time signal breaks are reported with.
  static int signal_number();
  // Blocks that signal in the calling thread; call it in main() before any
  // thread starts, so that every thread inherits the mask.
  static void block_signal();

  // Starts the watcher: Errc::environment if the signal is not blocked in
  // the calling thread or the signalfd cannot be made.
  static Result<std::unique_ptr<LeaseBreakWatcher>> start();
  ~LeaseBreakWatcher();
  LeaseBreakWatcher(const LeaseBreakWatcher&) = delete;
  LeaseBreakWatcher& operator=(const LeaseBreakWatcher&) = delete;

  // Breaks let go of so far.
  std::uint64_t breaks() const { return breaks_.load(std::memory_order_seq_cst); }

 private:
  LeaseBreakWatcher(Fd signals, Fd stop);
  void run();

  Fd signals_;  // signalfd of signal_number()
  Fd stop_;     // eventfd: readable when the watcher is to end
  std::atomic<std::uint64_t> breaks_{0};
  std::thread thread_;
};

}  // namespace genomed::loader
