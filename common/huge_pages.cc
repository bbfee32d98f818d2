#include "common/huge_pages.h"

#include <sys/mman.h>
#include <sys/utsname.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

namespace genomed {

ShmemHugePages parse_shmem_enabled(std::string_view text) {
  const auto open = text.find('[');
  const auto close = text.find(']', open);
  if (open == std::string_view::npos || close == std::string_view::npos) {
    return ShmemHugePages::unknown;
  }
  const std::string_view chosen = text.substr(open + 1, close - open - 1);
  if (chosen == "never") return ShmemHugePages::never;
  if (chosen == "advise") return ShmemHugePages::advise;
  if (chosen == "always") return ShmemHugePages::always;
  if (chosen == "within_size") return ShmemHugePages::within_size;
  if (chosen == "deny") return ShmemHugePages::deny;
  if (chosen == "force") return ShmemHugePages::force;
  return ShmemHugePages::unknown;
}

std::string_view shmem_huge_pages_name(ShmemHugePages policy) {
  switch (policy) {
    case ShmemHugePages::never: return "never";
    case ShmemHugePages::advise: return "advise";
    case ShmemHugePages::always: return "always";
    case ShmemHugePages::within_size: return "within_size";
    case ShmemHugePages::deny: return "deny";
    case ShmemHugePages::force: return "force";
    case ShmemHugePages::unknown: break;
  }
  return "unknown";
}

ShmemHugePages shmem_huge_pages() {
  static const ShmemHugePages policy = [] {
    std::ifstream in("/sys/kernel/mm/transparent_hugepage/shmem_enabled");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return parse_shmem_enabled(text);
  }();
  return policy;
}

bool shmem_huge_pages_possible(ShmemHugePages policy) {
  return policy == ShmemHugePages::advise || policy == ShmemHugePages::always ||
         policy == ShmemHugePages::within_size || policy == ShmemHugePages::force;
}

void* map_shared_aligned(int fd, std::size_t size, int prot, std::uint64_t offset) {
  const auto at = static_cast<off_t>(offset);
  if (size < kHugePageBytes) return ::mmap(nullptr, size, prot, MAP_SHARED, fd, at);
  // Reserve size + 2 MiB of address space, put the mapping at its first
  // aligned address, and give back the ends.
  const std::size_t span = size + kHugePageBytes;
  void* reserved = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (reserved == MAP_FAILED) return ::mmap(nullptr, size, prot, MAP_SHARED, fd, at);
  const auto base = reinterpret_cast<std::uintptr_t>(reserved);
  const std::uintptr_t aligned = (base + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  void* p = ::mmap(reinterpret_cast<void*>(aligned), size, prot, MAP_SHARED | MAP_FIXED, fd, at);
  if (p == MAP_FAILED) {
    const int err = errno;
    ::munmap(reserved, span);
    errno = err;
    return MAP_FAILED;
  }
  if (aligned > base) ::munmap(reserved, aligned - base);
  const std::uintptr_t end = aligned + size;
  if (base + span > end) ::munmap(reinterpret_cast<void*>(end), base + span - end);
#ifdef MADV_HUGEPAGE
  if (shmem_huge_pages_possible(shmem_huge_pages())) {
    (void)::madvise(p, size, MADV_HUGEPAGE);  // refused: 4 KiB pages, as without it
  }
#endif
  return p;
}

bool huge_pages_collapsible() {
  const ShmemHugePages policy = shmem_huge_pages();
  if (policy == ShmemHugePages::deny || policy == ShmemHugePages::unknown) return false;
  struct utsname u {};
  if (::uname(&u) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(u.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 1);
}

bool collapse_to_huge_pages(void* addr, std::size_t length) {
#ifndef MADV_COLLAPSE
  constexpr int MADV_COLLAPSE = 25;  // Linux 6.1; older headers lack the name
#endif
  return ::madvise(addr, length, MADV_COLLAPSE) == 0;
}

}  // namespace genomed
