// The one shared-memory arena that holds every resident adapter. Created by the
// supervisor at start, sized to the budget, and reused for the daemon's life.
//
// It is a memfd: it never has a name anyone could open, and it dies with the
// last process that holds a descriptor or a mapping of it, so no crash can
// leak it. Its size is sealed (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), so
// nobody, not even a process of genomed's uid that reopens it writable, can
// truncate it under the mappings of others (a SIGBUS in every client). Its
// inode mode is 0400, so a client of another uid cannot reopen its read-only
// descriptor writable through /proc/self/fd; once given to root
// (give_to_root) neither can one of the daemon's own uid. What such a
// process can still do is written in docs/architecture.md ("Threat model").
#pragma once

#include <fcntl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace genomed::cache {

// Thread-safety: immutable after create() (no lock needed), so prefault()
// may run on its own thread while other threads read data().
class Arena {
 public:
  // Creates the memfd (named `<name_prefix><pid>` in /proc/PID/maps and
  // /proc/PID/fd, for people and tests looking for it), sizes and seals it,
  // and reserves its pages with posix_fallocate so that too little memory
  // for the budget is a clear error now (Errc::no_space, naming what is
  // available and `--budget`), never a SIGBUS or an OOM kill later.
  static Result<Arena> create(std::uint64_t size, const std::string& name_prefix);

  // The seals every arena carries (F_GET_SEALS of any of its descriptors).
  static constexpr int kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW;

  Arena(Arena&&) noexcept;
  Arena& operator=(Arena&&) noexcept;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();

  std::uint64_t size() const { return size_; }
  // Read-write descriptor: inherited by workers, never sent to clients.
  int rw_fd() const { return rw_fd_; }
  // Read-only descriptor (O_RDONLY): passed to clients with SCM_RIGHTS.
  int ro_fd() const { return ro_fd_; }
  // The supervisor's read-only mapping of the whole arena (for verifying
  // resident headers after a fill).
  const std::byte* data() const { return data_; }

  // Makes root the inode's owner (and group), mode 0400 kept: a process of
  // genomed's uid holding the read-only descriptor can then neither change
  // the mode (it is not the owner) nor reopen it writable (the mode). The
  // descriptors and mappings that exist keep their access (an open file's
  // access mode is fixed at open, and mmap checks that, not the inode), so
  // genomed, its workers and clients go on as before. Needs CAP_CHOWN
  // (Errc::environment without it); loader/arena_owner.h decides.
  Status give_to_root() const;

  // Faults every page in once so later fills find them ready, collapsing
  // them into 2 MiB pages where the kernel allows (common/huge_pages.h).
  // Returns how many bytes it collapsed. Safe to run on a background thread
  // while fills happen; returns early (between 64 MiB chunks) once `*stop`
  // becomes true.
  std::uint64_t prefault(const std::atomic<bool>* stop = nullptr) const;

 private:
  Arena() = default;
  std::uint64_t size_ = 0;
  int rw_fd_ = -1;
  int ro_fd_ = -1;
  const std::byte* data_ = nullptr;
};

}  // namespace genomed::cache
