// Transparent huge pages for the arena (issue 24): a fill and every
// client's first touch fault per 2 MiB instead of per 4 KiB where the kernel
// gives shared memory huge pages. Which it does is the host's choice
// (/sys/kernel/mm/transparent_hugepage/shmem_enabled): `always` and
// `within_size` give them to every mapping that can hold them, `advise` only
// to mappings that ask with madvise(MADV_HUGEPAGE), `never` and `deny` to
// none. Either way a mapping can only hold a huge page at a 2 MiB-aligned
// address, which mmap does not promise: map_shared_aligned() asks for it.
// Everything here is best effort: where huge pages are refused, the same
// mapping works with 4 KiB pages.
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

// mmap(nullptr, size, prot, MAP_SHARED, fd, 0), but at a 2 MiB-aligned
// address, and with madvise(MADV_HUGEPAGE) where the host's policy lets it
// matter. MAP_FAILED with errno set, as mmap.
void* map_shared_aligned(int fd, std::size_t size, int prot);

}  // namespace genomed
