// The one shared-memory arena that holds every resident adapter. Created by the
// supervisor at start, sized to the budget, and reused for the daemon's life.
//
// The POSIX name exists only for the instant between create and open: right
// after creating it, the arena opens a second, read-only descriptor and
// removes the name, so no crash of any process can leak the segment, and
// clients can only ever get the read-only descriptor.
#pragma once

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
  // Creates the segment (Boost.Interprocess shared_memory_object), sizes it,
  // and reserves its pages with posix_fallocate so that a /dev/shm too small
  // for the budget is a clear error now (Errc::no_space, naming the free size
  // and `--shm-size`), never a SIGBUS later. `name_prefix` also selects stale
  // segments of earlier crashed daemons to remove (best effort).
  static Result<Arena> create(std::uint64_t size, const std::string& name_prefix);

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

  // Touches every page of the mapping once so later fills find them faulted.
  // Safe to run on a background thread while fills happen; returns early
  // (between 64 MiB chunks) once `*stop` becomes true.
  void prefault(const std::atomic<bool>* stop = nullptr) const;

 private:
  Arena() = default;
  std::uint64_t size_ = 0;
  int rw_fd_ = -1;
  int ro_fd_ = -1;
  const std::byte* data_ = nullptr;
};

}  // namespace genomed::cache
