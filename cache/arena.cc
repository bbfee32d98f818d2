// Creation, reservation and teardown of the shared-memory arena. Everything
// that can fail does so here, at start-up, with a message saying what to
// change; after create() succeeds no access to the arena can raise SIGBUS.
#include "cache/arena.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/permissions.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string_view>
#include <utility>

#include "common/size_parse.h"

namespace genomed::cache {
namespace {

namespace bip = boost::interprocess;

constexpr const char* kShmDir = "/dev/shm";

std::string errno_text(int err) { return std::strerror(err); }

// The message for every way /dev/shm can be too small: a person must be able
// to act on it without reading the source.
Status shm_too_small(std::uint64_t free_bytes, std::uint64_t size) {
  return Status(Errc::no_space, std::string(kShmDir) + " has " + format_size(free_bytes) +
                                    " free, the budget needs " + format_size(size) +
                                    ": lower --budget or enlarge /dev/shm (docker run "
                                    "--shm-size, or mount -o remount,size=...)");
}

// Removes segments named `<prefix><pid>-...` whose pid no longer exists. Names
// live only for an instant, so these are left by daemons killed mid-create.
// Best effort: a failure leaves the stale segment, never fails the start.
void remove_stale_segments(const std::string& prefix) {
  DIR* dir = ::opendir(kShmDir);
  if (dir == nullptr) return;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string_view name(entry->d_name);
    if (!name.starts_with(prefix)) continue;
    const std::string_view rest = name.substr(prefix.size());
    const std::size_t dash = rest.find('-');
    if (dash == 0 || dash == std::string_view::npos || dash > 9) continue;
    pid_t pid = 0;
    bool digits = true;
    for (char c : rest.substr(0, dash)) {
      if (c < '0' || c > '9') digits = false;
      pid = pid * 10 + (c - '0');
    }
    if (!digits || pid <= 0) continue;
    if (::kill(pid, 0) == -1 && errno == ESRCH) {
      ::shm_unlink(("/" + std::string(name)).c_str());
    }
  }
  ::closedir(dir);
}

std::string unique_name(const std::string& prefix) {
  std::random_device rd;
  const std::uint64_t r = (std::uint64_t{rd()} << 32) | rd();
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(r));
  return prefix + std::to_string(::getpid()) + "-" + suffix;
}

// A close-on-exec duplicate: the Boost objects close their own descriptors,
// and a worker must receive the rw descriptor only by explicit inheritance.
Result<int> dup_cloexec(int fd) {
  const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy == -1)
    return Result<int>(Errc::environment,
                       "fcntl(F_DUPFD_CLOEXEC) of the arena descriptor: " + errno_text(errno));
  return copy;
}

}  // namespace

Result<Arena> Arena::create(std::uint64_t size, const std::string& name_prefix) {
  if (size == 0) return Result<Arena>(Errc::bad_request, "the arena size must be positive");
  if (size > static_cast<std::uint64_t>(std::numeric_limits<off_t>::max())) {
    return Result<Arena>(Errc::too_large, "an arena of " + std::to_string(size) +
                                              " bytes exceeds the largest file size");
  }
  if (name_prefix.empty() || name_prefix.find('/') != std::string::npos) {
    return Result<Arena>(Errc::bad_request,
                         "the shared-memory name prefix must be non-empty and contain no '/'");
  }

  remove_stale_segments(name_prefix);

  struct statvfs fs {};
  if (::statvfs(kShmDir, &fs) == 0) {
    const std::uint64_t free_bytes = std::uint64_t{fs.f_bavail} * fs.f_frsize;
    if (free_bytes < size) return Result<Arena>(shm_too_small(free_bytes, size));
  }

  Arena arena;
  arena.size_ = size;
  const std::string name = unique_name(name_prefix);
  try {
    bip::shared_memory_object rw(bip::create_only, name.c_str(), bip::read_write,
                                 bip::permissions(0600));
    // From here on the name must go, whatever fails.
    struct Unlink {
      const std::string& name;
      ~Unlink() { bip::shared_memory_object::remove(name.c_str()); }
    } unlink{name};
    rw.truncate(static_cast<bip::offset_t>(size));
    bip::shared_memory_object ro(bip::open_only, name.c_str(), bip::read_only);

    auto rw_fd = dup_cloexec(rw.get_mapping_handle().handle);
    if (!rw_fd) return Result<Arena>(rw_fd.status());
    arena.rw_fd_ = *rw_fd;
    auto ro_fd = dup_cloexec(ro.get_mapping_handle().handle);
    if (!ro_fd) return Result<Arena>(ro_fd.status());
    arena.ro_fd_ = *ro_fd;
  } catch (const bip::interprocess_exception& e) {
    return Result<Arena>(Errc::environment, std::string("cannot create the shared-memory arena ") +
                                                kShmDir + "/" + name + ": " + e.what());
  }

  // tmpfs is sparse: without this, the first touch of a page /dev/shm cannot
  // supply raises SIGBUS in whichever process touches it.
  if (const int err = ::posix_fallocate(arena.rw_fd_, 0, static_cast<off_t>(size)); err != 0) {
    if (err == ENOSPC) {
      std::uint64_t free_bytes = 0;
      if (::statvfs(kShmDir, &fs) == 0) free_bytes = std::uint64_t{fs.f_bavail} * fs.f_frsize;
      return Result<Arena>(shm_too_small(free_bytes, size));
    }
    return Result<Arena>(Errc::environment, "posix_fallocate of the " + format_size(size) +
                                                " arena: " + errno_text(err));
  }

  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, arena.ro_fd_, 0);
  if (map == MAP_FAILED) {
    return Result<Arena>(Errc::environment,
                         "mmap of the " + format_size(size) + " arena: " + errno_text(errno));
  }
  arena.data_ = static_cast<const std::byte*>(map);
  return arena;
}

Arena::Arena(Arena&& other) noexcept
    : size_(std::exchange(other.size_, 0)),
      rw_fd_(std::exchange(other.rw_fd_, -1)),
      ro_fd_(std::exchange(other.ro_fd_, -1)),
      data_(std::exchange(other.data_, nullptr)) {}

Arena& Arena::operator=(Arena&& other) noexcept {
  if (this != &other) {
    Arena old(std::move(*this));  // released at the end of this scope
    size_ = std::exchange(other.size_, 0);
    rw_fd_ = std::exchange(other.rw_fd_, -1);
    ro_fd_ = std::exchange(other.ro_fd_, -1);
    data_ = std::exchange(other.data_, nullptr);
  }
  return *this;
}

Arena::~Arena() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  if (rw_fd_ != -1) ::close(rw_fd_);
  if (ro_fd_ != -1) ::close(ro_fd_);
}

// posix_fallocate gave every page a tmpfs page, but the kernel zeroes a
// fallocated page only on its first fault; that zeroing (plus the allocation
// bookkeeping) is what makes first-touch fills slow. A read fault completes
// it just as a write would, so this populates a temporary read-only shared
// mapping (MAP_POPULATE) chunk by chunk and drops it: no page is written, the
// supervisor's page tables do not stay inflated, and nothing here can race
// with a worker's fill (a page a worker already wrote is simply skipped by
// the kernel). Chunks keep each call short and the transient mapping small.
// Measured on the project VM (512 MiB): a later memcpy fill ran at ~0.4-2.5
// GB/s without this and ~3.3 GB/s after it, the same as after a write touch.
void Arena::prefault(const std::atomic<bool>* stop) const {
  constexpr std::uint64_t kChunk = 64ull << 20;  // a multiple of every page size
  for (std::uint64_t offset = 0; offset < size_; offset += kChunk) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) return;
    const std::uint64_t length = std::min(kChunk, size_ - offset);
    void* map = ::mmap(nullptr, length, PROT_READ, MAP_SHARED | MAP_POPULATE, ro_fd_,
                       static_cast<off_t>(offset));
    if (map == MAP_FAILED) {
      // Fall back to one read per page through the long-lived mapping.
      const long page = ::sysconf(_SC_PAGESIZE);
      const volatile std::byte* p = data_ + offset;
      for (std::uint64_t i = 0; i < length; i += static_cast<std::uint64_t>(page)) (void)p[i];
      continue;
    }
    ::munmap(map, length);
  }
}

}  // namespace genomed::cache
