// The worker's view of the arena: mapped once for the worker's life with no
// access at all, and opened writable one job range at a time. Outside a job
// nothing is writable; during a job only its own range is (a fill's until
// its reply is sent: worker/jobs.h).
//
// Why not map each job's range afresh: profiles of cold loads showed the
// per-job mmap(MAP_POPULATE) and munmap costing as much as the copy itself
// (17% + 7% vs 23% of samples). With one long-lived mapping the page tables
// stay populated across jobs and protection changes are cheap.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/status.h"

namespace genomed::jobs {

class ArenaWindow {
 public:
  // Maps the whole arena behind `fd` (its size from fstat), PROT_NONE.
  // Errc::environment if the descriptor cannot be sized or mapped.
  static Result<ArenaWindow> map(int fd);

  ArenaWindow(ArenaWindow&& other) noexcept;
  ArenaWindow& operator=(ArenaWindow&&) = delete;
  ArenaWindow(const ArenaWindow&) = delete;
  ~ArenaWindow();

  // Makes the pages covering [offset, offset + length) writable and returns
  // that range. REQUIRES: no range is open. Errc::internal if the range lies
  // outside the arena (the supervisor assigned an impossible range: a bug),
  // Errc::environment if the kernel refuses the protection change.
  Result<std::span<std::byte>> open(std::uint64_t offset, std::uint64_t length);
  // Makes the open range inaccessible again.
  void close();
  // [offset, offset + length) of the mapping, without changing protection:
  // only its open part may be touched. REQUIRES: inside the arena.
  std::span<std::byte> view(std::uint64_t offset, std::uint64_t length) const {
    return {base_ + offset, length};
  }

 private:
  ArenaWindow(std::byte* base, std::uint64_t size) : base_(base), size_(size) {}
  std::byte* base_;
  std::uint64_t size_;
  std::span<std::byte> open_;
};

}  // namespace genomed::jobs
