// Transparent huge pages for the arena (issue 24): a fill and every
// client's first touch fault per 2 MiB instead of per 4 KiB where shared
// memory is held in huge pages. Two ways get it there:
//  - the host's policy (/sys/kernel/mm/transparent_hugepage/shmem_enabled):
//    `always` and `within_size` allocate huge pages for every mapping that
//    can hold them, `advise` only for mappings that ask with
//    madvise(MADV_HUGEPAGE), `never` and `deny` for none;
//  - collapse_to_huge_pages(): MADV_COLLAPSE (Linux 6.1) copies a range's
//    pages into huge ones on request, whatever the policy says except
//    `deny` (the kernel's documented switch that forbids it). genomed
//    collapses its arena in the background after start-up, so the default
//    `never` of many hosts (this project's VM among them) still gets them.
// Either way a mapping can only map a huge page whole at a 2 MiB-aligned
// address, which mmap does not promise: map_shared_aligned() asks for it.
// Everything here is best effort: where huge pages are refused, the same
// mappings work with 4 KiB pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace genomed {

inline constexpr std::uint64_t kHugePageBytes = 2ull << 20;

enum class ShmemHugePages { never, advise, always, within_size, deny, force, unknown };

// The bracketed choice of a shmem_enabled text ("always within_size advise
// [never] deny force"); unknown if none is bracketed or it is not one of
// these.
ShmemHugePages parse_shmem_enabled(std::string_view text);

// The policy as shmem_enabled spells it ("unknown" for unknown).
std::string_view shmem_huge_pages_name(ShmemHugePages policy);

// This host's choice, read once per process (unknown where the file is
// missing: no THP support).
ShmemHugePages shmem_huge_pages();

// Whether madvise(MADV_HUGEPAGE) on a shared mapping can give it huge pages
// here (advise, always, within_size, force).
bool shmem_huge_pages_possible(ShmemHugePages policy);

// mmap(nullptr, size, prot, MAP_SHARED, fd, offset), but at a 2 MiB-aligned
// address (from 2 MiB up: the file may hold huge pages whatever the policy,
// collapsed ones), and with madvise(MADV_HUGEPAGE) where the host's policy
// lets that matter. REQUIRES: offset a multiple of kHugePageBytes for the
// alignment to help. MAP_FAILED with errno set, as mmap.
void* map_shared_aligned(int fd, std::size_t size, int prot, std::uint64_t offset = 0);

// Asks the kernel to hold the pages behind [addr, addr + length) of a
// shared mapping in huge pages now (MADV_COLLAPSE): it allocates each huge
// page, copies the small pages into it (a page never written reads as
// zeros) and maps it in every process that maps the range, each on its next
// touch. Safe while other processes read and write the range. False where
// the kernel refuses (before 6.1, shmem_enabled `deny`, no memory free for
// a huge page, an unaligned range): the pages then stay as they were.
bool collapse_to_huge_pages(void* addr, std::size_t length);

// Whether collapse_to_huge_pages() can succeed on this host: a kernel from
// 6.1 with transparent huge pages, and shmem_enabled other than `deny`.
bool huge_pages_collapsible();

}  // namespace genomed
