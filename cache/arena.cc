// Creation, sealing, reservation and teardown of the shared-memory arena.
// Everything that can fail does so here, at start-up, with a message saying
// what to change; after create() succeeds no access to the arena can raise
// SIGBUS.
#include "cache/arena.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <utility>

#include "common/huge_pages.h"
#include "common/size_parse.h"

namespace genomed::cache {
namespace {

std::string errno_text(int err) { return std::strerror(err); }

// What this host can give the arena: MemAvailable, and the room left under
// the memory limit of genomed's cgroup (v2) when there is one. A memfd is
// not bounded by /dev/shm's size: memory is what runs out, and past it
// posix_fallocate would wake the OOM killer rather than fail.
struct MemoryRoom {
  std::uint64_t bytes = std::numeric_limits<std::uint64_t>::max();
  std::string what;  // where the figure comes from, for the message
};

std::optional<std::uint64_t> meminfo_bytes(const char* key) {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (!line.starts_with(key)) continue;
    std::istringstream fields(line.substr(std::strlen(key)));
    std::uint64_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return std::nullopt;
}

std::optional<std::uint64_t> file_u64(const std::string& path) {
  std::ifstream in(path);
  std::uint64_t v = 0;
  if (in >> v) return v;
  return std::nullopt;  // absent, or "max"
}

MemoryRoom memory_room() {
  MemoryRoom room;
  if (auto avail = meminfo_bytes("MemAvailable:")) {
    room = {*avail, "MemAvailable in /proc/meminfo"};
  }
  std::ifstream cg("/proc/self/cgroup");
  for (std::string line; std::getline(cg, line);) {
    if (!line.starts_with("0::")) continue;  // the v2 hierarchy
    const std::string dir = "/sys/fs/cgroup" + line.substr(3);
    const auto max = file_u64(dir + "/memory.max");
    const auto current = file_u64(dir + "/memory.current");
    if (max && current) {
      const std::uint64_t left = *max > *current ? *max - *current : 0;
      if (left < room.bytes) room = {left, "memory.max - memory.current of cgroup " + dir};
    }
  }
  return room;
}

Status no_room(const MemoryRoom& room, std::uint64_t size) {
  return Status(Errc::no_space, "the arena needs " + format_size(size) + " of memory, the host has " +
                                    format_size(room.bytes) + " (" + room.what +
                                    "): lower --budget or give genomed more memory");
}

// Faults in every page of [p, p + length) of a read-only mapping.
void populate_read(void* p, std::uint64_t length) {
  if (length == 0) return;
#ifdef MADV_POPULATE_READ
  if (::madvise(p, length, MADV_POPULATE_READ) == 0) return;
#endif
  const long page = ::sysconf(_SC_PAGESIZE);
  const volatile std::byte* bytes = static_cast<const std::byte*>(p);
  for (std::uint64_t i = 0; i < length; i += static_cast<std::uint64_t>(page)) (void)bytes[i];
}

Status failed(const char* call, std::uint64_t size, int err) {
  return Status(Errc::environment,
                std::string(call) + " of the " + format_size(size) + " arena: " + errno_text(err));
}

// Gives every page of the arena its memory now, as 4 KiB pages: a
// fallocate has no mapping to ask for more. The background prefault()
// collapses them into huge pages afterwards. (Until issue 24's last part,
// under shmem_enabled `advise` this populated a huge-page mapping instead:
// huge pages from the start, but 3.0-3.2 s of start-up for a 1.25 GiB
// arena, and none under `never`.)
Status reserve_pages(int fd, std::uint64_t size) {
  if (const int err = ::posix_fallocate(fd, 0, static_cast<off_t>(size)); err != 0) {
    if (err == ENOSPC || err == ENOMEM) return no_room(memory_room(), size);
    return failed("posix_fallocate", size, err);
  }
  return Status::Ok();
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
  if (const MemoryRoom room = memory_room(); room.bytes < size) {
    return Result<Arena>(no_room(room, size));
  }

  Arena arena;  // closes whatever it holds if a step below fails
  arena.size_ = size;
  const std::string name = name_prefix + std::to_string(::getpid());
  arena.rw_fd_ = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (arena.rw_fd_ == -1) return Result<Arena>(failed("memfd_create", size, errno));
  if (::ftruncate(arena.rw_fd_, static_cast<off_t>(size)) != 0) {
    return Result<Arena>(failed("ftruncate", size, errno));
  }
  // The size is final: no one can shrink it under a mapping (SIGBUS), grow
  // it, or lift these seals, whatever descriptor they hold.
  if (::fcntl(arena.rw_fd_, F_ADD_SEALS, kSeals) != 0) {
    return Result<Arena>(failed("fcntl(F_ADD_SEALS)", size, errno));
  }
  // A second open file description, read-only: mmap checks the mode of the
  // description, so its holders can never map the arena writable.
  const std::string self = "/proc/self/fd/" + std::to_string(arena.rw_fd_);
  arena.ro_fd_ = ::open(self.c_str(), O_RDONLY | O_CLOEXEC);
  if (arena.ro_fd_ == -1) return Result<Arena>(failed("open(/proc/self/fd) read-only", size, errno));
  // A memfd is created mode 0777: anyone holding the read-only descriptor
  // could reopen it writable through /proc/self/fd. 0400 refuses that to
  // every other uid (and to genomed's own uid unless it chmods first).
  if (::fchmod(arena.rw_fd_, 0400) != 0) return Result<Arena>(failed("fchmod", size, errno));

  // Memory is lent lazily: without this, the first touch of a page the host
  // cannot supply raises SIGBUS in whichever process touches it.
  GENOMED_RETURN_IF_ERROR(reserve_pages(arena.rw_fd_, size));

  void* map = map_shared_aligned(arena.ro_fd_, size, PROT_READ);
  if (map == MAP_FAILED) return Result<Arena>(failed("mmap", size, errno));
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

Status Arena::give_to_root() const {
  if (::fchown(rw_fd_, 0, 0) != 0) return failed("fchown to root", size_, errno);
  return Status::Ok();
}

// posix_fallocate gave every page a tmpfs page, but the kernel zeroes a
// fallocated page only on its first fault; that zeroing (plus the allocation
// bookkeeping) is what makes first-touch fills slow. So each 64 MiB chunk
// is mapped read-only for a moment (2 MiB-aligned) and either collapsed
// into huge pages (MADV_COLLAPSE, which zeroes what was never written while
// it copies) or, where the kernel refuses that, faulted in by a read
// populate; then the mapping is dropped: no page is written, the
// supervisor's page tables do not stay inflated, and nothing here can race
// with a worker's fill (the kernel collapses or skips a page a worker is
// writing, and maps the huge page into the worker's window on its next
// touch). Measured on the project VM (512 MiB): a later memcpy fill ran at
// ~0.4-2.5 GB/s without the fault-in and ~3.3 GB/s after it; the collapse
// of 256 MiB took 77 ms, after which a client's first touch of every page
// took 0.9 ms.
std::uint64_t Arena::prefault(const std::atomic<bool>* stop) const {
  constexpr std::uint64_t kChunk = 64ull << 20;  // a multiple of every page size
  std::uint64_t huge = 0;
  for (std::uint64_t offset = 0; offset < size_; offset += kChunk) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) break;
    const std::uint64_t length = std::min(kChunk, size_ - offset);
    void* map = map_shared_aligned(ro_fd_, length, PROT_READ, offset);
    if (map == MAP_FAILED) {
      // Fall back to one read per page through the long-lived mapping.
      const long page = ::sysconf(_SC_PAGESIZE);
      const volatile std::byte* p = data_ + offset;
      for (std::uint64_t i = 0; i < length; i += static_cast<std::uint64_t>(page)) (void)p[i];
      continue;
    }
    // Whole huge pages only: a tail under 2 MiB stays in 4 KiB pages.
    const std::uint64_t whole = length / kHugePageBytes * kHugePageBytes;
    if (whole > 0 && collapse_to_huge_pages(map, whole)) {
      huge += whole;
    } else {
      populate_read(map, whole);
    }
    populate_read(static_cast<std::byte*>(map) + whole, length - whole);
    ::munmap(map, length);
  }
  return huge;
}

}  // namespace genomed::cache
