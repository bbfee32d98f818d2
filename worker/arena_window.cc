#include "worker/arena_window.h"

#include "common/huge_pages.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace genomed::jobs {

Result<ArenaWindow> ArenaWindow::map(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    return Status(Errc::environment,
                  std::string("cannot size the arena descriptor: ") + std::strerror(errno));
  }
  // genomed always passes its whole, sized arena: an empty one is a bug.
  if (st.st_size <= 0) return Status(Errc::internal, "the arena descriptor holds no bytes");
  const auto size = static_cast<std::uint64_t>(st.st_size);
  // 2 MiB-aligned and advised for huge pages where the host allows them
  // (common/huge_pages.h): a fill then faults per 2 MiB.
  void* p = map_shared_aligned(fd, size, PROT_NONE);
  if (p == MAP_FAILED)
    return Status(Errc::environment, std::string("cannot map the arena: ") + std::strerror(errno));
  return ArenaWindow(static_cast<std::byte*>(p), size);
}

ArenaWindow::ArenaWindow(ArenaWindow&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      open_(other.open_) {}

ArenaWindow::~ArenaWindow() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

Result<std::span<std::byte>> ArenaWindow::open(std::uint64_t offset, std::uint64_t length) {
  if (offset > size_ || length > size_ - offset || length == 0) {
    return Status(Errc::internal, "assigned range [" + std::to_string(offset) + ", +" +
                                      std::to_string(length) + ") lies outside the arena of " +
                                      std::to_string(size_) + " bytes");
  }
  // Whole pages: parts of one adapter filled by two workers may share the
  // page at their boundary (each writes only its own bytes of it).
  const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  const std::uint64_t first = offset / page * page;
  const std::uint64_t last = std::min(size_, (offset + length + page - 1) / page * page);
  std::byte* start = base_ + first;
  if (::mprotect(start, last - first, PROT_READ | PROT_WRITE) != 0) {
    return Status(Errc::environment,
                  std::string("cannot open the assigned range: ") + std::strerror(errno));
  }
  // The pages are not populated here: the fill's reader populates them on
  // a thread of its own, ahead of its copy and while its reads are in
  // flight (worker/format/read_into.cc); before, this populate took a
  // quarter of a 512 MiB fill before its first read.
  open_ = std::span<std::byte>(start, last - first);
  return std::span<std::byte>(base_ + offset, length);
}

void ArenaWindow::close() {
  if (open_.empty()) return;
  ::mprotect(open_.data(), open_.size(), PROT_NONE);
  open_ = {};
}

}  // namespace genomed::jobs
